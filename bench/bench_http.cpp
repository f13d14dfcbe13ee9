// Measures the real HTTP client against the creatify-sim binary on loopback: rate and latency of
// creates, status gets and a paginated list, then the whole tracker over HTTP (jobs/s).
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <thread>

#include "bench_support.hpp"
#include "personad/creatify_client.hpp"
#include "personad/remote_list.hpp"
#include "personad/logging.hpp"
#include "personad/store.hpp"
#include "personad/store_runner.hpp"
#include "await.hpp"
#include "personad/tracker.hpp"

namespace {

namespace asio = boost::asio;
using namespace personad;
using bench::grouped;
using bench::strf;

const Credentials kCredentials{"bench-id", "bench-key", "bench"};

// creatify-sim as a child process on 127.0.0.1 and a free port. The child dies with us
// (PR_SET_PDEATHSIG), so an aborted run leaves no simulator behind.
class Simulator {
 public:
  Simulator(const std::string& binary, const std::filesystem::path& dir, double time_scale,
            const std::string& stage) {
    const auto port_file = (dir / "sim.port").string();
    std::vector<std::string> args{binary, "--listen", "127.0.0.1:0", "--port-file", port_file,
                                  "--time-scale", strf("%.0f", time_scale), "--stage-duration",
                                  stage, "--seed", "1", "--api-id", kCredentials.api_id,
                                  "--api-key", kCredentials.api_key};
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(binary.c_str(), argv.data());
      std::perror("bench_http: exec creatify-sim");
      ::_exit(127);
    }
    // The port file appears (atomically, by rename) once the simulator listens.
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      if (!(in >> port_)) port_ = 0;
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (port_ == 0) {
      std::fprintf(stderr, "bench_http: %s did not start (no port file after 10 s)\n", binary.c_str());
      std::exit(1);
    }
  }
  ~Simulator() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

std::shared_ptr<spdlog::logger> quiet_logger() {
  auto logger = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_st>());
  logger->set_level(spdlog::level::info);
  return logger;
}

std::unique_ptr<CreatifyClient> make_client(asio::io_context& ioc, const std::string& base_url,
                                            int in_flight) {
  ClientOptions o;
  o.base_url = base_url;
  o.max_in_flight = in_flight;
  o.max_requests_per_second = 1e6;  // the limiter still runs, as in production, but never waits
  o.timeout = Millis(10'000);
  auto c = CreatifyClient::create_client(ioc.get_executor(), o, kCredentials, quiet_logger());
  if (!c) {
    std::fprintf(stderr, "bench_http: client: %s\n", c.message().c_str());
    std::exit(1);
  }
  return std::move(*c);
}

struct Load {
  std::size_t ok = 0, failed = 0;
  double seconds = 0;
  bench::Samples latency;  // µs per request, queueing for a pooled connection included
};

// `total` requests made by `concurrency` coroutines, each taking the next index when free.
template <class Request>
Load drive(asio::io_context& ioc, std::size_t total, int concurrency, Request request) {
  Load load;
  load.latency.reserve(total);
  std::size_t next = 0;
  bench::Stopwatch wall;
  for (int w = 0; w < concurrency; ++w) {
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
      while (next < total) {
        std::size_t i = next++;
        bench::Stopwatch one;
        bool ok = co_await request(i);
        load.latency.add(one.micros());
        ++(ok ? load.ok : load.failed);
      }
    }, asio::detached);
  }
  ioc.restart();
  ioc.run();
  load.seconds = wall.seconds();
  return load;
}

std::vector<std::string> load_row(const std::string& name, int concurrency, Load& l) {
  return {name, std::to_string(concurrency), grouped(static_cast<double>(l.ok + l.failed)),
          grouped(static_cast<double>(l.ok + l.failed) / l.seconds),
          strf("%.0f", l.latency.percentile(50)), strf("%.0f", l.latency.percentile(99)),
          grouped(static_cast<double>(l.failed))};
}

void client_figures(const std::string& base_url, std::size_t personas, std::size_t gets) {
  asio::io_context ioc;
  auto client = make_client(ioc, base_url, 64);
  std::vector<std::string> ids(personas);
  auto specs = bench::make_specs(personas);

  bench::Table t({"request", "concurrency", "requests", "requests/s", "p50 µs", "p99 µs", "errors"});
  auto creates = drive(ioc, personas, 64, [&](std::size_t i) -> asio::awaitable<bool> {
    auto r = co_await client->create(specs[i], new_client_ref());
    ids[i] = r.value.id;
    co_return r.outcome == Outcome::ok;
  });
  t.add(load_row("POST /api/personas_v2/ (JSON body)", 64, creates));
  auto get = [&](std::size_t i) -> asio::awaitable<bool> {
    auto r = co_await client->get(ids[i % ids.size()]);
    co_return r.outcome == Outcome::ok;
  };
  auto serial = drive(ioc, gets / 4, 1, get);
  t.add(load_row("GET /api/personas/{id}/", 1, serial));
  auto parallel = drive(ioc, gets, 64, get);
  t.add(load_row("GET /api/personas/{id}/", 64, parallel));
  SystemClock wall_clock;
  auto lists = drive(ioc, 10, 1, [&](std::size_t) -> asio::awaitable<bool> {
    auto r = co_await fetch_listing(*client, wall_clock, ListingOptions{}, [] { return 0.5; });
    co_return r.outcome == Outcome::ok && r.value.items.size() == personas;
  });
  t.add(load_row(strf("GET list, %zu personas (20 a page)", personas), 1, lists));
  client->close();
  std::printf("\n== HTTP client against creatify-sim on loopback (keep-alive pool of 64) ==\n");
  t.print();
}

// The tracker as in the daemon (store on disk, real client, max_in_flight 64) against the
// simulator, whose personas finish after a few simulated stages.
void tracker_figures(const std::string& base_url, std::size_t n, const std::filesystem::path& dir,
                     double time_scale) {
  auto store = Store::open((dir / "p.db").string(), OpenMode::read_write);
  if (!store) {
    std::fprintf(stderr, "bench_http: %s\n", store.message().c_str());
    std::exit(1);
  }
  asio::io_context ioc;
  auto client = make_client(ioc, base_url, 64);
  EventLog log(quiet_logger(), LogFormat::text);
  ScaledClock clock(time_scale, from_unix_ms(1'790'000'000'000));
  TrackerOptions o;
  o.api.max_in_flight = 64;
  o.api.max_requests_per_second = 1e6;
  o.poll.first_after = o.poll.initial_interval = o.poll.max_interval = Millis(1'000);
  o.poll.multiplier = 1.0;
  o.poll.give_up_after = Millis(3650LL * 24 * 3600 * 1000);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ThreadedStoreRunner runner(std::move(*store));
  Tracker tracker(ioc.get_executor(), runner, *client, clock, log, o, [&] { return unit(rng); });
  if (auto r = tracker.start(); !r) std::exit(1);
  bench::reset_peak_rss();
  bench::Stopwatch wall;
  if (auto r = testing::await(ioc, tracker.enqueue(bench::make_specs(n), "bench")); !r) {
    std::fprintf(stderr, "bench_http: enqueue: %s\n", r.message().c_str());
    std::exit(1);
  }
  auto finished = [&] {
    std::int64_t f = 0;
    for (State s : {State::done, State::failed, State::expired})
      if (auto it = tracker.metrics().transitions.find(s); it != tracker.metrics().transitions.end())
        f += it->second;
    return f >= static_cast<std::int64_t>(n);
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!finished() && std::chrono::steady_clock::now() < deadline &&
         (tracker.in_flight() != 0 || tracker.scheduled() != 0)) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(20));
  }
  const double s = wall.seconds();
  const auto& m = tracker.metrics();
  if (!finished()) std::fprintf(stderr, "bench_http: the tracker did not finish every job\n");
  const double requests = static_cast<double>(m.creates_sent + m.polls + m.api_transient);
  std::printf("\n== Tracker over HTTP: %s jobs, store on %s, max_in_flight 64 ==\n",
              grouped(static_cast<double>(n)).c_str(), bench::filesystem_name(dir).c_str());
  bench::Table t({"wall", "jobs/s", "creates", "polls", "requests/s", "transient errors",
                  "peak RSS"});
  t.add({strf("%.2f s", s), grouped(static_cast<double>(n) / s),
         grouped(static_cast<double>(m.creates_sent)), grouped(static_cast<double>(m.polls)),
         grouped(requests / s), grouped(static_cast<double>(m.api_transient)),
         strf("%.1f MiB", bench::peak_rss_mib())});
  t.print();
  client->close();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_http: the HTTP client and the tracker against creatify-sim"};
  bool quick = false;
  std::size_t n = 1'000;
  std::string sim = CREATIFY_SIM_BIN;
  std::string dir = std::filesystem::temp_directory_path().string();
  app.add_flag("--quick", quick, "200 jobs and 5,000 gets");
  app.add_option("--n", n, "jobs for the tracker run")->check(CLI::Range(1, 1'000'000));
  app.add_option("--sim", sim, "creatify-sim binary")->check(CLI::ExistingFile);
  app.add_option("--dir", dir, "where the database goes")->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);
  std::size_t gets = 20'000;
  if (quick) {
    gets = 5'000;
    if (app.count("--n") == 0) n = 200;
  }

  // Simulated time x10,000 on both sides: a 10 s sim stage is 1 ms, a 1 s poll interval 100 µs,
  // so a persona is seen in a few of its six stages before it is done.
  constexpr double kScale = 10'000;
  bench::ScratchDir scratch(dir, "http");
  Simulator simulator(sim, scratch.path(), kScale, "10s");
  std::printf("bench_http: creatify-sim at %s (time x%.0f)\n", simulator.base_url().c_str(), kScale);
  bench::print_machine(dir);
  std::printf("(client and simulator share the machine's cores)\n");
  client_figures(simulator.base_url(), 200, gets);
  tracker_figures(simulator.base_url(), n, scratch.path(), kScale);
  return 0;
}
