// personad's request rate next to wrk's, on the same creatify-sim endpoint (GET
// /api/personas/{id}/) with the same number of connections, in one run: how close the daemon
// gets to what the simulator can serve, and what each request costs it in CPU.
#include <boost/json/parse.hpp>
#include <CLI/CLI.hpp>
#include <cstdio>

#include "bench_process.hpp"

namespace {

using namespace bench;

struct Window {
  double seconds = 0;
  double requests = 0;
  double subject_cpu = 0;  // CPU seconds of the process making the requests
  double sim_cpu = 0;
};

// wrk's "Requests/sec:" line.
double wrk_rate(const std::string& output) {
  auto at = output.find("Requests/sec:");
  return at == std::string::npos ? 0 : std::atof(output.c_str() + at + 13);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_wrk: personad's requests/s against wrk's on the same simulator endpoint"};
  int connections = 64;
  int seconds = 10;
  int wrk_threads = 2;
  std::size_t jobs = 0;
  bool quick = false;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::string sim_bin = CREATIFY_SIM_BIN, personad_bin = PERSONAD_BIN, wrk_bin = "wrk";
  app.add_flag("--quick", quick, "5 s windows");
  app.add_option("--n", jobs, "jobs personad tracks (default: 16 per connection, at least 1,000)");
  app.add_option("--connections", connections,
                 "wrk's connections = personad's api.max_in_flight (1..256)")
      ->check(CLI::Range(1, 256));
  app.add_option("--seconds", seconds, "length of each measured window")->check(CLI::Range(1, 3600));
  app.add_option("--wrk-threads", wrk_threads, "wrk -t (wrk's default is 2)")->check(CLI::Range(1, 64));
  app.add_option("--dir", dir, "where personad's database goes")->check(CLI::ExistingDirectory);
  app.add_option("--sim", sim_bin, "creatify-sim binary")->check(CLI::ExistingFile);
  app.add_option("--personad", personad_bin, "personad binary")->check(CLI::ExistingFile);
  app.add_option("--wrk", wrk_bin, "wrk binary (Debian: apt-get install wrk)");
  CLI11_PARSE(app, argc, argv);
  if (quick && app.count("--seconds") == 0) seconds = 5;
  if (jobs == 0) jobs = std::max<std::size_t>(1'000, 16 * static_cast<std::size_t>(connections));
  if (wrk_bin.find('/') == std::string::npos) {
    for (const char* d : {"/usr/bin/", "/usr/local/bin/", "/bin/"})
      if (std::filesystem::exists(std::string(d) + wrk_bin)) wrk_bin = d + wrk_bin;
  }
  if (!std::filesystem::exists(wrk_bin)) {
    std::fprintf(stderr, "bench_wrk: no wrk (%s); install it: apt-get install -y wrk\n", wrk_bin.c_str());
    return 1;
  }

  std::printf("bench_wrk: GET /api/personas/{id}/ on creatify-sim, %d connections, %d s windows\n",
              connections, seconds);
  print_machine(dir);
  print_load_note();
  ScratchDir scratch(std::filesystem::absolute(dir), "wrk");
  // Stages of 1000 simulated days: every persona stays in its first status, so personad's polls
  // find nothing new and keep every job due again 1 ms after its answer.
  SimProcess sim(sim_bin, scratch.path(), {"--time-scale", "1", "--stage-duration", "1000d"});

  // One persona for wrk to read.
  auto sim_conn = sim.connect();
  auto created = sim_conn.request(
      "POST", "/api/personas_v2/",
      R"({"gender":"f","creator_name":"Wrk Target","video_scene":"office",)"
      R"("lipsync_input":"https://cdn.example.com/wrk/lipsync.mp4",)"
      R"("consent_video":"https://cdn.example.com/wrk/consent.mp4","labels":["bench"]})");
  if (created.status / 100 != 2) {
    std::fprintf(stderr, "bench_wrk: create on the simulator answered %d: %s\n", created.status,
                 created.body.c_str());
    return 1;
  }
  const std::string id{boost::json::parse(created.body).at("id").as_string()};
  const std::string url = sim.base_url() + "/api/personas/" + id + "/";

  // ---- wrk ----
  Window w;
  {
    const auto out = scratch.path() / "wrk.out";
    const double sim_cpu0 = proc_cpu_seconds(sim.pid());
    Child wrk({wrk_bin, "-t", std::to_string(wrk_threads), "-c", std::to_string(connections), "-d",
               std::to_string(seconds) + "s", "-H", "X-API-ID: " + kSimApiId, "-H",
               "X-API-KEY: " + kSimApiKey, url},
              {}, out.string());
    wrk.wait();
    w.seconds = since(wrk.started());
    w.sim_cpu = proc_cpu_seconds(sim.pid()) - sim_cpu0;
    w.subject_cpu = wrk.cpu_seconds();
    const std::string text = read_file(out);
    w.requests = wrk_rate(text) * seconds;
    if (w.requests <= 0) {
      std::fprintf(stderr, "bench_wrk: no figure from wrk:\n%s\n", text.c_str());
      return 1;
    }
  }

  // ---- personad ----
  DaemonSetup d;
  d.dir = scratch.path() / "personad";
  d.base_url = sim.base_url();
  d.max_in_flight = connections;
  d.first_after = "1ms";
  d.initial_interval = "1ms";
  d.max_interval = "1ms";
  d.write();
  write_batch_file(d.batches() / "bench.toml", jobs, "wrk");
  Child daemon = d.start(personad_bin);
  const auto intake_start = steady::now();
  if (!wait_stats(d, daemon, std::chrono::minutes(10), std::chrono::milliseconds(100),
                  [&](const std::string& body) {
                    return json_int(body, "pending") + json_int(body, "done") >=
                           static_cast<long long>(jobs);
                  })) {
    std::fprintf(stderr, "bench_wrk: personad did not take %zu jobs to pending; its log %s ends:\n%s",
                 jobs, d.log().c_str(), tail_of(d.log()).c_str());
    return 1;
  }
  const double intake_s = since(intake_start);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // past the first burst of polls

  Window p;
  auto control = d.control();
  auto gets = [&] { return static_cast<double>(json_int(sim_conn.request("GET", "/_sim/stats").body, "gets")); };
  auto polls = [&] { return metric(control.request("GET", "/metrics").body, "personad_polls_total"); };
  const double gets0 = gets(), polls0 = polls();
  const double cpu0 = proc_cpu_seconds(daemon.pid()), sim_cpu0 = proc_cpu_seconds(sim.pid());
  const auto t0 = steady::now();
  double in_flight_sum = 0;
  int in_flight_samples = 0;
  // GET /v1/stats every 20 ms through the window: what `personactl stats` waits under a full
  // poll load (every poll a write in a grouped commit).
  Samples stats_us;
  for (int i = 0; since(t0) < seconds; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto asked = steady::now();
    control.request("GET", "/v1/stats");
    stats_us.add(1e6 * since(asked));
    if (i % 25 == 0) {
      in_flight_sum += metric(control.request("GET", "/metrics").body, "personad_in_flight");
      ++in_flight_samples;
    }
  }
  p.seconds = since(t0);
  p.subject_cpu = proc_cpu_seconds(daemon.pid()) - cpu0;
  p.sim_cpu = proc_cpu_seconds(sim.pid()) - sim_cpu0;
  p.requests = gets() - gets0;
  const double personad_polls = polls() - polls0;
  const double rss = proc_rss_mib(daemon.pid());
  daemon.stop();

  const double wrk_rps = w.requests / w.seconds, personad_rps = p.requests / p.seconds;
  std::printf("\n");
  Table t({"client", "requests/s", "client CPU", "CPU µs/request", "sim CPU", "sim CPU µs/request"});
  t.add({strf("wrk -t%d -c%d", wrk_threads, connections), grouped(wrk_rps),
         strf("%.0f%% of a core", 100 * w.subject_cpu / w.seconds),
         strf("%.1f", 1e6 * w.subject_cpu / w.requests),
         strf("%.0f%% of a core", 100 * w.sim_cpu / w.seconds),
         strf("%.1f", 1e6 * w.sim_cpu / w.requests)});
  t.add({strf("personad, max_in_flight %d", connections), grouped(personad_rps),
         strf("%.0f%% of a core", 100 * p.subject_cpu / p.seconds),
         strf("%.1f", 1e6 * p.subject_cpu / p.requests),
         strf("%.0f%% of a core", 100 * p.sim_cpu / p.seconds),
         strf("%.1f", 1e6 * p.sim_cpu / p.requests)});
  t.print();
  std::printf("\nratio personad / wrk: %.2f (goal >= 0.5: %s)\n", personad_rps / wrk_rps,
              personad_rps / wrk_rps >= 0.5 ? "met" : "MISSED");
  std::printf("personad CPU per request: %.1f µs (goal <= 60: %s)\n",
              1e6 * p.subject_cpu / p.requests, 1e6 * p.subject_cpu / p.requests <= 60 ? "met" : "MISSED");
  // The simulator does the same work per GET in both windows, so its CPU per request measures
  // the machine's speed at that moment (it varies by a third from one hour to the next here):
  // personad's CPU per request in units of the simulator's is the figure that compares runs.
  std::printf("personad CPU per request in the simulator's CPU per request (machine speed cancels "
              "out): %.2f\n",
              p.subject_cpu / p.sim_cpu);
  std::printf("personad: %zu jobs (created in %.1f s), %.0f polls/s committed (personad_polls_total), "
              "job steps running (personad_in_flight, up to 4 per request slot) %.1f on average for %d "
              "request slots, RSS %.1f MiB; CPU from /proc/PID/stat (all threads), "
              "requests counted by the simulator\n",
              jobs, intake_s, personad_polls / p.seconds,
              in_flight_samples ? in_flight_sum / in_flight_samples : 0.0, connections, rss);
  // Not the goal's figure (stats <= 1 ms at any size, bench_scale): here the loop is saturated
  // on purpose, and a control request waits its turn behind the polls' completions.
  std::printf("GET /v1/stats during the window (every 20 ms, keep-alive, %zu requests): p50 %.0f µs, "
              "p99 %.0f µs, max %.0f µs, with the event loop saturated by polls\n",
              stats_us.size(), stats_us.percentile(50), stats_us.percentile(99),
              stats_us.percentile(100));
  return 0;
}
