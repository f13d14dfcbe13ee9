// The real personad binary at 10,000 / 100,000 / 1,000,000 jobs, measured from outside as an
// operator (or systemd) sees it: intake of a batch dropped into batches.d and the longest stall
// of the event loop meanwhile, exec → READY=1 with the jobs in the database, resident memory,
// database size, stats latency, wake-ups while nothing is due, and memory after minutes of
// polling. creatify-sim answers the creates and polls.
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "bench_process.hpp"

namespace {

using namespace bench;

struct Settings {
  std::string personad, personactl, sim;
  std::filesystem::path dir;
  int in_flight = 64;
  int idle_seconds = 60;
  int poll_seconds = 120;
  int stats_requests = 2'000;
  int files = 1;
  int intake_timeout_s = 3'600;
  int probe_ms = 10;
};

// Everything measured at one size.
struct SizeResult {
  std::size_t n = 0;
  bool intake_ok = false;
  double batch_mib = 0;
  double ready_empty_s = 0;    // exec → READY=1, empty database
  double to_db_s = 0;          // file in batches.d → every entry a row
  double to_pending_s = 0;     // file in batches.d → every job pending (created on the API)
  double block_max_ms = 0, block_p99_ms = 0;  // /v1/health latency during intake
  double block_max_ran_ms = -1, block_max_waited_ms = -1;  // the loop thread during that probe
  std::size_t probes = 0, probes_over_50ms = 0, probe_failures = 0;
  double intake_cpu_s = 0, intake_peak_mib = 0;
  double idle_after_intake_per_min = -1;
  std::string idle_after_intake_threads;
  double db_mib = 0;
  double ready_s = -1;          // exec → READY=1 with n pending jobs due later
  // After READY the start-up scan of batches.d re-reads the batch file still there (every
  // entry known): RSS is sampled until that scan's `batches_scanned` line (scan_s after READY).
  double rss_ready_mib = 0, rss_settled_mib = 0, peak_start_mib = 0, rss_5s_mib = 0,
         rss_scan_max_mib = 0, scan_s = -1;
  // The same restart with batches.d emptied first (the file moved away once intaken).
  double ready_empty_dir_s = -1, rss_empty_dir_ready_mib = 0, rss_empty_dir_settled_mib = 0,
         peak_empty_dir_mib = 0;
  double stats_p50_us = 0, stats_p99_us = 0, stats_max_us = 0, personactl_stats_ms = 0;
  double metrics_p50_us = 0, metrics_p99_us = 0;  // GET /metrics (the kept counts, the stuck count)
  double idle_per_min = -1;
  std::string idle_threads;
  double poll_s = 0, polls = 0, poll_cpu_s = 0, rss_poll_start_mib = 0, rss_poll_end_mib = 0,
         rss_poll_max_mib = 0;
};

// Samples GET /v1/health every `every` on its own connection: a request's latency is how long
// the daemon's one event loop took to get to it, so the largest is the longest block. The loop
// thread's scheduler times around each request (it runs on the main thread: tid == pid) split
// that latency: the loop ran (handlers, its own work) or waited for a core (two cores shared
// with the store thread, the simulator and this benchmark), which no code of the loop causes.
class LoopProbe {
 public:
  LoopProbe(const DaemonSetup& d, pid_t daemon, std::chrono::milliseconds every)
      : conn_(d.control()), daemon_(daemon), every_(every) {
    thread_ = std::thread([this] { run(); });
  }
  ~LoopProbe() { stop(); }
  void stop() {
    if (stop_.exchange(true)) return;
    thread_.join();
  }
  struct Sample {
    steady::time_point at;
    double ms;  // < 0: the request failed
    double loop_ran_ms, loop_waited_ms;  // the loop thread meanwhile (-1: unreadable)
  };
  std::vector<Sample> samples() {
    std::lock_guard<std::mutex> l(mu_);
    return samples_;
  }

 private:
  void run() {
    auto next = steady::now();
    while (!stop_) {
      const SchedTimes before = thread_sched_times(daemon_, daemon_);
      const auto t = steady::now();
      auto a = conn_.request("GET", "/v1/health");
      const double ms = a.status == 200 ? Seconds(steady::now() - t).count() * 1e3 : -1;
      const SchedTimes after = thread_sched_times(daemon_, daemon_);
      const bool known = before.ran_ms >= 0 && after.ran_ms >= 0;
      {
        std::lock_guard<std::mutex> l(mu_);
        samples_.push_back({t, ms, known ? after.ran_ms - before.ran_ms : -1,
                            known ? after.waited_ms - before.waited_ms : -1});
      }
      next += every_;
      if (next < steady::now()) next = steady::now();
      std::this_thread::sleep_until(next);
    }
  }
  HttpConn conn_;
  pid_t daemon_;
  std::chrono::milliseconds every_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Sample> samples_;
  std::thread thread_;
};

// Context switches of every thread over `seconds` with nothing due: each one is a wake-up.
std::pair<double, std::string> idle_wakeups(pid_t pid, int seconds) {
  auto before = proc_switches(pid);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  auto after = proc_switches(pid);
  std::string threads;
  for (const auto& [name, n] : after.by_thread) {
    long was = before.by_thread.count(name) ? before.by_thread[name] : 0;
    if (n != was) threads += (threads.empty() ? "" : ", ") + name + " " + std::to_string(n - was);
  }
  return {static_cast<double>(after.total() - before.total()) * 60.0 / seconds,
          threads.empty() ? "none" : threads};
}

// Lines of a text file that contain `what` (0 if it cannot be read).
std::size_t count_in_file(const std::filesystem::path& p, const std::string& what) {
  std::ifstream in(p);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(what) != std::string::npos;
  return n;
}

// GET /metrics until `done(text)` holds; false if the daemon exited or `timeout` passed.
template <class Done>
bool wait_metrics(const DaemonSetup& d, Child& daemon, std::chrono::milliseconds timeout,
                  std::chrono::milliseconds every, Done done) {
  auto conn = d.control();
  const auto end = steady::now() + timeout;
  while (steady::now() < end) {
    if (!daemon.running()) return false;
    auto a = conn.request("GET", "/metrics");
    if (a.status == 200 && done(a.body)) return true;
    std::this_thread::sleep_for(every);
  }
  return false;
}

// The time of READY=1 after exec, or -1 if the daemon exited first or took over `timeout`.
double wait_ready(NotifyListener& notify, Child& daemon, std::chrono::milliseconds timeout) {
  auto at = notify.wait_for("READY=1", timeout, [&] { return daemon.running(); });
  return at ? Seconds(*at - daemon.started()).count() : -1;
}

// Every pending job due now: the next start polls them all (the daemon has no time scale).
bool make_all_due(const std::filesystem::path& db) {
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) return false;
  sqlite3_busy_timeout(h, 10'000);
  sqlite3_stmt* st = nullptr;
  bool ok = sqlite3_prepare_v2(h, "UPDATE jobs SET next_poll_at = ? WHERE state = 'pending'", -1,
                               &st, nullptr) == SQLITE_OK;
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  ok = ok && sqlite3_bind_int64(st, 1, now_ms) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  sqlite3_close(h);
  return ok;
}

void fail(const std::string& what, const DaemonSetup& d) {
  std::fprintf(stderr, "bench_scale: %s; the daemon's log %s ends:\n%s", what.c_str(),
               d.log().c_str(), tail_of(d.log()).c_str());
}

SizeResult run_size(std::size_t n, const Settings& s) {
  SizeResult r;
  r.n = n;
  std::printf("\n==== %s jobs ====\n", grouped(static_cast<double>(n)).c_str());
  std::fflush(stdout);
  ScratchDir scratch(s.dir, "scale");
  // Stages of 1000 simulated days: personas stay in their first status, nothing finishes.
  SimProcess sim(s.sim, scratch.path(), {"--time-scale", "1", "--stage-duration", "1000d"});
  DaemonSetup d;
  d.dir = scratch.path() / "personad";
  d.base_url = sim.base_url();
  d.max_in_flight = s.in_flight;
  d.write();  // first poll a day after the create: after intake, nothing is due
  NotifyListener notify(scratch.path() / "notify.sock");

  // ---- intake ----
  {
    Child daemon = d.start(s.personad, {notify.env()});
    r.ready_empty_s = wait_ready(notify, daemon, std::chrono::seconds(60));
    if (r.ready_empty_s < 0) return fail("personad did not start", d), r;
    // The batch is written beside batches.d and renamed in: the watcher sees a whole file.
    const auto staging = scratch.path() / "staging";
    std::filesystem::create_directories(staging);
    std::vector<std::filesystem::path> files;
    for (int f = 0; f < s.files; ++f) {
      const std::size_t first = n * f / s.files, last = n * (f + 1) / s.files;
      files.push_back(staging / strf("batch-%02d.toml", f));
      write_batch_file(files.back(), last - first, "scale", first);
      r.batch_mib += static_cast<double>(std::filesystem::file_size(files.back())) / (1 << 20);
    }
    std::printf("batch: %s entries, %.1f MiB in %d file(s); exec → READY (empty database) %.0f ms\n",
                grouped(static_cast<double>(n)).c_str(), r.batch_mib, s.files, r.ready_empty_s * 1e3);
    std::fflush(stdout);
    LoopProbe probe(d, daemon.pid(), std::chrono::milliseconds(s.probe_ms));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const double cpu0 = proc_cpu_seconds(daemon.pid());
    const auto t0 = steady::now();
    for (const auto& f : files) std::filesystem::rename(f, d.batches() / f.filename());
    bool in_db = false;
    long long last_pending = -1;
    auto last_report = steady::now();
    // Progress from /metrics' per-state gauges, not GET /v1/stats: stats computes the campaign
    // ETA from every active job (0.6 s at 100,000 on the store thread), which would starve the
    // very intake measured here; /metrics reads the kept counts (7-28 ms at 100,000).
    r.intake_ok = wait_metrics(d, daemon, std::chrono::seconds(s.intake_timeout_s),
                               std::chrono::milliseconds(50), [&](const std::string& text) {
      long long total = 0;
      for (const char* st : {"queued", "submitting", "pending", "done", "failed", "expired", "cancelled"})
        total += std::max(0LL, static_cast<long long>(metric(text, strf("personad_jobs{state=\"%s\"}", st))));
      const auto pending = static_cast<long long>(metric(text, "personad_jobs{state=\"pending\"}"));
      if (!in_db && total >= static_cast<long long>(n)) {
        in_db = true;
        r.to_db_s = since(t0);
      }
      if (since(last_report) >= 30 && pending != last_pending) {
        std::printf("  … %.0f s: %lld rows, %lld pending\n", since(t0), total, pending);
        std::fflush(stdout);
        last_report = steady::now();
        last_pending = pending;
      }
      return pending >= static_cast<long long>(n);
    });
    r.to_pending_s = since(t0);
    r.intake_cpu_s = proc_cpu_seconds(daemon.pid()) - cpu0;
    r.intake_peak_mib = proc_peak_rss_mib(daemon.pid());
    probe.stop();
    Samples lat;
    for (const auto& p : probe.samples()) {
      if (p.at < t0) continue;
      if (p.ms < 0) {
        ++r.probe_failures;
        continue;
      }
      lat.add(p.ms);
      r.probes_over_50ms += p.ms > 50;
      if (p.ms > r.block_max_ms) {
        r.block_max_ms = p.ms;
        r.block_max_ran_ms = p.loop_ran_ms;
        r.block_max_waited_ms = p.loop_waited_ms;
      }
    }
    r.probes = lat.size();
    r.block_p99_ms = lat.percentile(99);  // the max, and the loop's split of it, came above
    if (!r.intake_ok) {
      fail(strf("intake did not reach %zu pending jobs within %d s", n, s.intake_timeout_s), d);
      return r;
    }
    std::printf("intake: all rows in %.1f s, all pending in %.1f s (%s creates/s); /v1/health "
                "every %d ms: max %.1f ms (the loop thread ran %.1f ms of it and waited %.1f ms "
                "for a core), p99 %.1f ms, %zu of %zu over 50 ms; CPU %.1f s; peak RSS %.0f MiB\n",
                r.to_db_s, r.to_pending_s, grouped(static_cast<double>(n) / r.to_pending_s).c_str(),
                s.probe_ms, r.block_max_ms, r.block_max_ran_ms, r.block_max_waited_ms,
                r.block_p99_ms, r.probes_over_50ms, r.probes, r.intake_cpu_s, r.intake_peak_mib);
    std::fflush(stdout);
    if (s.idle_seconds > 0) {
      // The daemon as it stays after the intake: keep-alive connections to the simulator are
      // open (the simulator closes them after 30 s idle), nothing is due for a day.
      std::this_thread::sleep_for(std::chrono::seconds(2));
      auto [rate, threads] = idle_wakeups(daemon.pid(), s.idle_seconds);
      r.idle_after_intake_per_min = rate;
      r.idle_after_intake_threads = threads;
      std::printf("idle after intake (%d s, pooled connections open): %.1f wake-ups/min (%s)\n",
                  s.idle_seconds, rate, threads.c_str());
    }
    if (!daemon.stop()) std::fprintf(stderr, "bench_scale: personad needed SIGKILL\n");
  }
  r.db_mib = static_cast<double>(database_bytes(d.db())) / (1 << 20);

  // ---- restart with the jobs in the database ----
  {
    notify.clear();
    const std::size_t scans_before = count_in_file(d.log(), "batches_scanned");
    Child daemon = d.start(s.personad, {notify.env()});
    r.ready_s = wait_ready(notify, daemon, std::chrono::seconds(600));
    if (r.ready_s < 0) return fail("personad did not restart", d), r;
    r.rss_ready_mib = proc_rss_mib(daemon.pid());
    {
      // RSS every 50 ms until the start-up scan of batches.d has logged its end (at most 120 s),
      // then 1 s more: the peak is the scan's, the last sample what stays.
      const auto t_ready = steady::now();
      while (daemon.running() && since(t_ready) < 120) {
        r.rss_scan_max_mib = std::max(r.rss_scan_max_mib, proc_rss_mib(daemon.pid()));
        if (r.rss_5s_mib == 0 && since(t_ready) >= 5) r.rss_5s_mib = proc_rss_mib(daemon.pid());
        if (r.scan_s < 0 && count_in_file(d.log(), "batches_scanned") > scans_before) {
          r.scan_s = since(t_ready);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
      if (r.rss_5s_mib == 0) {
        std::this_thread::sleep_until(t_ready + std::chrono::seconds(5));
        r.rss_5s_mib = proc_rss_mib(daemon.pid());
      }
      r.rss_settled_mib = proc_rss_mib(daemon.pid());
    }
    r.peak_start_mib = proc_peak_rss_mib(daemon.pid());
    std::printf("restart (the batch file still in batches.d): exec → READY %.0f ms; RSS at READY %.1f "
                "MiB, max %.1f MiB during the start-up scan of batches.d (it ends %.1f s after READY), "
                "5 s after READY %.1f MiB, after the scan %.1f MiB, peak (VmHWM) %.1f MiB; database "
                "%.1f MiB\n",
                r.ready_s * 1e3, r.rss_ready_mib, r.rss_scan_max_mib, r.scan_s, r.rss_5s_mib,
                r.rss_settled_mib, r.peak_start_mib, r.db_mib);

    Samples st;
    {
      // Closed before the idle window: the daemon's idle timeout on a control connection kept
      // open would otherwise count as the daemon's own wake-up.
      auto conn = d.control();
      for (int i = 0; i < s.stats_requests; ++i) {
        Stopwatch w;
        auto a = conn.request("GET", "/v1/stats");
        if (a.status != 200) return fail("GET /v1/stats failed", d), r;
        st.add(w.micros());
      }
      Samples mt;
      for (int i = 0; i < s.stats_requests / 4; ++i) {
        Stopwatch w;
        auto a = conn.request("GET", "/metrics");
        if (a.status != 200) return fail("GET /metrics failed", d), r;
        mt.add(w.micros());
      }
      r.metrics_p50_us = mt.percentile(50);
      r.metrics_p99_us = mt.percentile(99);
    }
    r.stats_p50_us = st.percentile(50);
    r.stats_p99_us = st.percentile(99);
    r.stats_max_us = st.percentile(100);
    Samples ctl;
    for (int i = 0; i < 20; ++i) {
      Child c({s.personactl, "-c", d.config().string(), "stats"}, {});
      c.wait();
      ctl.add(since(c.started()) * 1e3);
    }
    r.personactl_stats_ms = ctl.percentile(50);
    std::printf("stats: GET /v1/stats (keep-alive, %d requests) p50 %.0f µs, p99 %.0f µs, max %.0f µs; "
                "`personactl stats` wall p50 %.1f ms; GET /metrics (%d requests) p50 %.0f µs, p99 %.0f µs\n",
                s.stats_requests, r.stats_p50_us, r.stats_p99_us, r.stats_max_us, r.personactl_stats_ms,
                s.stats_requests / 4, r.metrics_p50_us, r.metrics_p99_us);
    std::fflush(stdout);
    if (s.idle_seconds > 0) {
      // Past the last control answer's write limit (control.hpp request_timeout, 30 s): Asio's
      // epoll reactor leaves its timerfd armed for a cancelled timer's deadline, so the daemon
      // wakes once, 30 s after the last control request, and re-arms for nothing. That is
      // activity's echo, not what idle costs.
      std::this_thread::sleep_for(std::chrono::seconds(32));
      auto [rate, threads] = idle_wakeups(daemon.pid(), s.idle_seconds);
      r.idle_per_min = rate;
      r.idle_threads = threads;
      std::printf("idle after restart (%d s from 32 s after the last control request, nothing due "
                  "for a day): %.1f wake-ups/min (%s)\n",
                  s.idle_seconds, rate, threads.c_str());
    }
    daemon.stop();
  }

  // ---- restart once more with batches.d emptied: what the jobs alone cost ----
  {
    const auto moved = d.dir / "intaken";
    std::filesystem::create_directories(moved);
    for (const auto& f : std::filesystem::directory_iterator(d.batches()))
      std::filesystem::rename(f.path(), moved / f.path().filename());
    notify.clear();
    Child daemon = d.start(s.personad, {notify.env()});
    r.ready_empty_dir_s = wait_ready(notify, daemon, std::chrono::seconds(600));
    if (r.ready_empty_dir_s < 0) return fail("personad did not restart", d), r;
    r.rss_empty_dir_ready_mib = proc_rss_mib(daemon.pid());
    std::this_thread::sleep_for(std::chrono::seconds(5));
    r.rss_empty_dir_settled_mib = proc_rss_mib(daemon.pid());
    r.peak_empty_dir_mib = proc_peak_rss_mib(daemon.pid());
    std::printf("restart (batches.d emptied): exec → READY %.0f ms; RSS at READY %.1f MiB, 5 s later "
                "%.1f MiB, peak (VmHWM) %.1f MiB\n",
                r.ready_empty_dir_s * 1e3, r.rss_empty_dir_ready_mib, r.rss_empty_dir_settled_mib,
                r.peak_empty_dir_mib);
    std::fflush(stdout);
    daemon.stop();
    for (const auto& f : std::filesystem::directory_iterator(moved))
      std::filesystem::rename(f.path(), d.batches() / f.path().filename());
  }

  // ---- minutes of polling: memory after many polls (the daemon has no time scale) ----
  if (s.poll_seconds > 0) {
    if (!make_all_due(d.db())) return fail("could not make the jobs due", d), r;
    d.first_after = d.initial_interval = d.max_interval = "1s";
    d.write();
    notify.clear();
    Child daemon = d.start(s.personad, {notify.env()});
    if (wait_ready(notify, daemon, std::chrono::seconds(600)) < 0) return fail("personad did not restart", d), r;
    auto conn = d.control();
    auto polls = [&] { return metric(conn.request("GET", "/metrics").body, "personad_polls_total"); };
    r.rss_poll_start_mib = proc_rss_mib(daemon.pid());
    const double polls0 = polls(), cpu0 = proc_cpu_seconds(daemon.pid());
    const auto t0 = steady::now();
    while (since(t0) < s.poll_seconds && daemon.running()) {
      std::this_thread::sleep_for(std::chrono::seconds(5));
      r.rss_poll_max_mib = std::max(r.rss_poll_max_mib, proc_rss_mib(daemon.pid()));
    }
    r.poll_s = since(t0);
    r.polls = polls() - polls0;
    r.poll_cpu_s = proc_cpu_seconds(daemon.pid()) - cpu0;
    r.rss_poll_end_mib = proc_rss_mib(daemon.pid());
    std::printf("polling %.0f s (every job due, 1 s intervals, max_in_flight %d): %s polls (%s/s, "
                "%.0f µs CPU each; %.1f hours of the default 5 requests/s); RSS %.1f → %.1f MiB "
                "(max %.1f)\n",
                r.poll_s, s.in_flight, grouped(r.polls).c_str(), grouped(r.polls / r.poll_s).c_str(),
                r.polls > 0 ? 1e6 * r.poll_cpu_s / r.polls : 0.0, r.polls / 5 / 3600,
                r.rss_poll_start_mib, r.rss_poll_end_mib, r.rss_poll_max_mib);
    daemon.stop();
  }
  std::fflush(stdout);
  return r;
}

const char* verdict(bool met) { return met ? "met" : "MISSED"; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_scale: the personad binary at 10k / 100k / 1M jobs, measured from outside"};
  Settings s;
  s.personad = PERSONAD_BIN;
  s.personactl = PERSONACTL_BIN;
  s.sim = CREATIFY_SIM_BIN;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::vector<std::size_t> sizes{10'000, 100'000};
  std::optional<std::size_t> n;
  bool quick = false;
  app.add_flag("--quick", quick, "2,000 jobs, 10 s idle and polling windows");
  app.add_option("--n", n, "one size (e.g. 1000000)")->check(CLI::Range(1, 100'000'000));
  app.add_option("--sizes", sizes, "sizes to run (default 10000 100000)")->delimiter(',');
  app.add_option("--dir", dir, "where databases and batch files go (their disk decides the fsync cost)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--in-flight", s.in_flight, "api.max_in_flight")->check(CLI::Range(1, 256));
  app.add_option("--idle-seconds", s.idle_seconds, "window for idle wake-ups (0: skip)");
  app.add_option("--poll-seconds", s.poll_seconds, "polling window for memory (0: skip)");
  app.add_option("--stats-requests", s.stats_requests, "GET /v1/stats requests timed")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--files", s.files, "split the batch into this many files")->check(CLI::Range(1, 1000));
  app.add_option("--intake-timeout", s.intake_timeout_s, "seconds the intake may take");
  app.add_option("--probe-ms", s.probe_ms, "GET /v1/health interval during intake")->check(CLI::Range(1, 1000));
  app.add_option("--personad", s.personad, "personad binary")->check(CLI::ExistingFile);
  app.add_option("--personactl", s.personactl, "personactl binary")->check(CLI::ExistingFile);
  app.add_option("--sim", s.sim, "creatify-sim binary")->check(CLI::ExistingFile);
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    sizes = {2'000};
    if (app.count("--idle-seconds") == 0) s.idle_seconds = 10;
    if (app.count("--poll-seconds") == 0) s.poll_seconds = 10;
  }
  if (n) sizes = {*n};
  s.dir = std::filesystem::absolute(dir);  // the config names paths; relative ones would be the config's

  std::printf("bench_scale: personad (%s) against creatify-sim, api.max_in_flight %d, rate limit "
              "out of the way\n", s.personad.c_str(), s.in_flight);
  print_machine(dir);
  print_load_note();

  std::vector<SizeResult> results;
  for (auto size : sizes) results.push_back(run_size(size, s));

  std::printf("\n");
  Table t({"jobs", "intake → rows", "intake → pending", "longest loop block", "exec → READY",
           "RSS: READY / scan max / after scan", "RSS, batches.d emptied: READY / 5 s / peak",
           "database", "stats p50/p99", "/metrics p50/p99", "idle wake-ups/min", "RSS after polling"});
  for (const auto& r : results) {
    t.add({grouped(static_cast<double>(r.n)), strf("%.1f s", r.to_db_s),
           r.intake_ok ? strf("%.1f s", r.to_pending_s) : std::string("did not finish"),
           strf("%.0f ms", r.block_max_ms), r.ready_s >= 0 ? strf("%.0f ms", r.ready_s * 1e3) : "-",
           strf("%.1f / %.1f / %.1f MiB", r.rss_ready_mib, r.rss_scan_max_mib, r.rss_settled_mib),
           strf("%.1f / %.1f / %.1f MiB", r.rss_empty_dir_ready_mib, r.rss_empty_dir_settled_mib,
                r.peak_empty_dir_mib),
           strf("%.0f MiB", r.db_mib),
           strf("%.0f / %.0f µs", r.stats_p50_us, r.stats_p99_us),
           strf("%.0f / %.0f µs", r.metrics_p50_us, r.metrics_p99_us),
           r.idle_per_min >= 0 ? strf("%.0f", r.idle_per_min) : "-",
           r.polls > 0 ? strf("%.1f MiB (%s polls)", r.rss_poll_end_mib, grouped(r.polls).c_str()) : "-"});
  }
  t.print();

  std::printf("\nGoals (issue 12, 2 cores):\n");
  for (const auto& r : results) {
    const std::string size = grouped(static_cast<double>(r.n));
    if (r.n == 100'000) {
      std::printf("  100,000 pending: READY %.2f s <= 1 s: %s; RSS <= 64 MiB: after the start-up scan "
                  "%.1f MiB %s, its max %.1f MiB %s (batches.d emptied: peak %.1f MiB %s)\n",
                  r.ready_s, verdict(r.ready_s >= 0 && r.ready_s <= 1), r.rss_settled_mib,
                  verdict(r.rss_settled_mib <= 64), r.rss_scan_max_mib, verdict(r.rss_scan_max_mib <= 64),
                  r.peak_empty_dir_mib, verdict(r.peak_empty_dir_mib <= 64));
      std::printf("  intake of 100,000 to pending %.1f s <= 20 s: %s; longest loop block %.0f ms <= 50 ms: %s\n",
                  r.to_pending_s, verdict(r.intake_ok && r.to_pending_s <= 20), r.block_max_ms,
                  verdict(r.block_max_ms <= 50));
    }
    if (r.n == 1'000'000)
      std::printf("  1,000,000 pending: READY %.2f s <= 5 s: %s; RSS <= 256 MiB: after the start-up scan "
                  "%.1f MiB %s, its max %.1f MiB %s (batches.d emptied: peak %.1f MiB %s)\n",
                  r.ready_s, verdict(r.ready_s >= 0 && r.ready_s <= 5), r.rss_settled_mib,
                  verdict(r.rss_settled_mib <= 256), r.rss_scan_max_mib, verdict(r.rss_scan_max_mib <= 256),
                  r.peak_empty_dir_mib, verdict(r.peak_empty_dir_mib <= 256));
    std::printf("  %s jobs: stats p99 %.0f µs <= 1 ms: %s (/metrics p99 %.0f µs: %s); idle wake-ups "
                "%.0f/min == 0: %s\n",
                size.c_str(), r.stats_p99_us, verdict(r.stats_p99_us <= 1000), r.metrics_p99_us,
                verdict(r.metrics_p99_us <= 1000), r.idle_per_min, verdict(r.idle_per_min == 0));
  }
  return 0;
}
