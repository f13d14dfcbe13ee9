// Measures the tracker end to end: N jobs from enqueue through submitting and pending to done
// against the in-process fake API; jobs/s, transitions/s, peak RSS and time spent inside SQLite.
#include <sqlite3.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <unordered_map>

#include "bench_support.hpp"
#include "fake_api.hpp"
#include "personad/logging.hpp"
#include "personad/store.hpp"
#include "personad/store_runner.hpp"
#include "await.hpp"
#include "personad/tracker.hpp"

namespace {

using namespace personad;
using bench::strf;
using bench::grouped;
using steady = std::chrono::steady_clock;

// ---- Time inside SQLite ---------------------------------------------------------------------
// The store's connection is private, so the profile is attached from outside: an auto-extension
// runs for every connection opened in this process and installs a trace callback. TRACE_STMT
// fires when a statement starts running and TRACE_PROFILE when it finishes; timing between the
// two with our own clock (SQLite's own figure has millisecond resolution) gives the time of
// each statement, fsync included. For a SELECT it also includes the store decoding the row.

struct SqlKind {
  std::int64_t count = 0;
  double seconds = 0;
};

struct SqlProfile {
  std::map<std::string, SqlKind> kinds;
  std::unordered_map<sqlite3_stmt*, std::pair<steady::time_point, std::string>> running;
  void reset() { kinds.clear(); }
  double total(const std::function<bool(const std::string&)>& which) const {
    double s = 0;
    for (const auto& [k, v] : kinds)
      if (which(k)) s += v.seconds;
    return s;
  }
};
SqlProfile g_sql;

// Names a statement by its verb; a write that runs outside BEGIN…COMMIT is its own transaction
// and so carries its own commit (and fsync).
std::string kind_of(sqlite3_stmt* stmt) {
  std::string sql = sqlite3_sql(stmt) ? sqlite3_sql(stmt) : "?";
  std::string verb = sql.substr(0, sql.find(' '));
  if (verb == "BEGIN" && sql.find("IMMEDIATE") != std::string::npos) verb = "BEGIN IMMEDIATE";
  const bool write = verb == "UPDATE" || verb == "INSERT" || verb == "DELETE";
  if (write && sqlite3_get_autocommit(sqlite3_db_handle(stmt))) verb += " (own transaction)";
  return verb;
}

int on_trace(unsigned type, void*, void* p, void*) {
  auto* stmt = static_cast<sqlite3_stmt*>(p);
  if (type == SQLITE_TRACE_STMT) {
    g_sql.running[stmt] = {steady::now(), kind_of(stmt)};
  } else if (type == SQLITE_TRACE_PROFILE) {
    auto it = g_sql.running.find(stmt);
    if (it == g_sql.running.end()) return 0;
    auto& k = g_sql.kinds[it->second.second];
    ++k.count;
    k.seconds += bench::Seconds(steady::now() - it->second.first).count();
    g_sql.running.erase(it);
  }
  return 0;
}

int on_open(sqlite3* db, const char**, const sqlite3_api_routines*) {
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE, on_trace, nullptr);
  return SQLITE_OK;
}

bool is_commit(const std::string& kind) {
  return kind == "COMMIT" || kind.find("own transaction") != std::string::npos;
}

// ---- Event-loop lag -------------------------------------------------------------------------
// A 1 ms timer that records how late it runs: what a control-socket request or a signal would
// wait for while the tracker keeps the one loop busy (SQLite commits block it).
class LagProbe {
 public:
  explicit LagProbe(boost::asio::io_context& ioc) : timer_(ioc) { arm(); }
  void stop() { stopped_ = true; timer_.cancel(); }
  bench::Samples& samples() { return lag_; }

 private:
  void arm() {
    due_ = steady::now() + std::chrono::milliseconds(1);
    timer_.expires_at(due_);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopped_) return;
      lag_.add(std::chrono::duration<double, std::micro>(steady::now() - due_).count());
      arm();
    });
  }
  boost::asio::steady_timer timer_;
  steady::time_point due_;
  bench::Samples lag_;
  bool stopped_ = false;
};

// ---- One run --------------------------------------------------------------------------------

struct RunResult {
  std::size_t jobs = 0;
  std::int64_t finished = 0;  // jobs that reached done
  std::string fs;
  double enqueue_s = 0;
  double wall_s = 0;  // enqueue until the last job is done
  std::int64_t transitions = 0;
  std::int64_t polls = 0;
  double rss_start = 0, peak_rss = 0;
  double sql_s = 0, commit_s = 0;
  std::int64_t commits = 0;
  double lag_p99 = 0, lag_max = 0;
  std::map<std::string, SqlKind> kinds;
};

struct Settings {
  // Simulated time runs this much faster than real time: the 1 s poll interval below is 100 µs
  // of real time, so a job is always due and the figures are the tracker's cost, not its waits.
  double scale = 10'000;
  // Real time per fake API request. A request that suspends is what the real client does; with
  // 0 every job step runs to its end without suspending (see README: exposes a lost wake-up).
  int api_latency_ms = 1;
  int in_flight = 64;
};

TrackerOptions bench_options(const Settings& settings) {
  TrackerOptions o;
  o.api.max_in_flight = settings.in_flight;
  o.api.max_requests_per_second = 1e6;  // the fake API has no limiter; this only spreads start-up
  o.api.retry_initial = Millis(1'000);
  o.api.retry_max = Millis(10'000);
  o.poll.first_after = Millis(1'000);
  o.poll.initial_interval = Millis(1'000);
  o.poll.multiplier = 1.0;
  o.poll.max_interval = Millis(1'000);
  o.poll.jitter = 0.2;
  o.poll.give_up_after = Millis(3650LL * 24 * 3600 * 1000);  // never expires within a run
  return o;
}

RunResult run(std::size_t n, const std::filesystem::path& base, const Settings& settings) {
  bench::ScratchDir dir(base, "daemon");
  auto opened = Store::open((dir.path() / "p.db").string(), OpenMode::read_write);
  if (!opened) {
    std::fprintf(stderr, "bench_daemon: %s\n", opened.message().c_str());
    std::exit(1);
  }
  auto store = std::move(*opened);
  // Transition lines are formatted as in the daemon at info level, then dropped: the figures
  // should not depend on how fast a terminal scrolls.
  auto logger = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_st>());
  logger->set_level(spdlog::level::info);
  EventLog log(logger, LogFormat::text);

  boost::asio::io_context ioc;
  ScaledClock clock(settings.scale, from_unix_ms(1'790'000'000'000));
  testing::FakeApi api;  // statuses: pending, processing, reviewing, done (is_active)
  api.now = [&] { return clock.now(); };
  api.latency = std::chrono::milliseconds(settings.api_latency_ms);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // As in the daemon: the store on its own thread, commits grouped.
  ThreadedStoreRunner runner(std::move(store));
  Tracker tracker(ioc.get_executor(), runner, api, clock, log, bench_options(settings),
                  [&] { return unit(rng); });
  if (auto r = tracker.start(); !r) {
    std::fprintf(stderr, "bench_daemon: start: %s\n", r.message().c_str());
    std::exit(1);
  }
  auto specs = bench::make_specs(n);

  bench::reset_peak_rss();
  const double rss_start = bench::rss_mib();
  g_sql.reset();
  LagProbe lag(ioc);
  bench::Stopwatch wall;
  // Intake as the daemon does it: chunks of 1,000 entries, one transaction each.
  for (std::size_t first = 0; first < specs.size(); first += 1'000) {
    std::vector<PersonaSpec> chunk(specs.begin() + static_cast<std::ptrdiff_t>(first),
                                   specs.begin() + static_cast<std::ptrdiff_t>(
                                                       std::min(specs.size(), first + 1'000)));
    if (auto r = testing::await(ioc, tracker.enqueue(std::move(chunk), "bench")); !r) {
      std::fprintf(stderr, "bench_daemon: enqueue: %s\n", r.message().c_str());
      std::exit(1);
    }
  }
  RunResult out;
  out.enqueue_s = wall.seconds();
  auto finished = [&] {
    auto it = tracker.metrics().transitions.find(State::done);
    return it == tracker.metrics().transitions.end() ? std::int64_t{0} : it->second;
  };
  auto done = [&] { return finished() >= static_cast<std::int64_t>(n); };
  // A run that stops making progress is reported rather than waited out.
  std::int64_t last_total = -1;
  auto last_progress = steady::now();
  bool idle = false;
  while (!done() && !idle && steady::now() - last_progress < std::chrono::seconds(5)) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(20));
    // Nothing running and nothing scheduled while jobs are unfinished: no event will ever
    // move them again (until a restart reloads the schedule from the store).
    idle = tracker.in_flight() == 0 && tracker.scheduled() == 0;
    std::int64_t total = 0;
    for (const auto& [state, count] : tracker.metrics().transitions) total += count;
    total += tracker.metrics().polls;
    if (total != last_total) {
      last_total = total;
      last_progress = steady::now();
    }
  }
  out.wall_s = wall.seconds();
  lag.stop();
  if (!done()) {
    auto stats = testing::await(ioc, runner.read([](Store& st) { return st.stats(); }));
    std::fprintf(stderr, "bench_daemon: STALLED (%s): in flight %zu, scheduled %zu",
                 idle ? "tracker idle with unfinished jobs: lost wake-ups" : "no progress for 5 s",
                 tracker.in_flight(), tracker.scheduled());
    if (stats)
      for (const auto& [state, count] : stats->counts)
        std::fprintf(stderr, ", %s %lld", std::string(to_string(state)).c_str(),
                     static_cast<long long>(count));
    std::fprintf(stderr, "\n");
  }

  out.jobs = n;
  out.finished = finished();
  out.fs = bench::filesystem_name(dir.path());
  for (const auto& [state, count] : tracker.metrics().transitions) out.transitions += count;
  out.polls = tracker.metrics().polls;
  out.rss_start = rss_start;
  out.peak_rss = bench::peak_rss_mib();
  out.kinds = g_sql.kinds;
  out.sql_s = g_sql.total([](const std::string&) { return true; });
  out.commit_s = g_sql.total(is_commit);
  for (const auto& [k, v] : g_sql.kinds)
    if (is_commit(k)) out.commits += v.count;
  out.lag_p99 = lag.samples().percentile(99);
  out.lag_max = lag.samples().percentile(100);
  if (tracker.metrics().store_errors != 0)
    std::fprintf(stderr, "bench_daemon: %lld store errors\n",
                 static_cast<long long>(tracker.metrics().store_errors));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_daemon: end-to-end throughput of the tracker against an in-process fake API"};
  bool quick = false;
  std::vector<std::size_t> sizes{2'000, 10'000};
  std::optional<std::size_t> n;
  Settings settings;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::string compare_dir;
  app.add_flag("--quick", quick, "one run of 1,000 jobs");
  app.add_option("--n", n, "one run of N jobs instead of 2,000 and 10,000")->check(CLI::Range(1, 10'000'000));
  app.add_option("--time-scale", settings.scale, "simulated seconds per real second")
      ->check(CLI::PositiveNumber);
  app.add_option("--api-latency-ms", settings.api_latency_ms, "real time the fake API takes per request");
  app.add_option("--in-flight", settings.in_flight, "api.max_in_flight")->check(CLI::Range(1, 4096));
  app.add_option("--dir", dir, "where the database goes (its disk decides the fsync cost)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--compare-dir", compare_dir,
                 "run the smallest size again with the database here (e.g. /dev/shm: no fsync cost)")
      ->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);
  if (quick) sizes = {1'000};
  if (n) sizes = {*n};

  // Installed before any connection opens, so the store's connection is profiled.
  sqlite3_auto_extension(reinterpret_cast<void (*)()>(&on_open));

  std::printf("bench_daemon: tracker + store + fake API (%d ms a request), max_in_flight=%d, "
              "simulated time x%.0f\n", settings.api_latency_ms, settings.in_flight, settings.scale);
  bench::print_machine(dir);
  std::printf("each job: queued → submitting → pending (created) → 4 polls (pending, processing, "
              "reviewing, done) → done\n");

  std::vector<RunResult> results;
  for (auto size : sizes) results.push_back(run(size, dir, settings));
  if (!compare_dir.empty()) results.push_back(run(sizes.front(), compare_dir, settings));

  std::printf("\n");
  bench::Table t({"jobs", "done", "db on", "wall", "jobs/s", "transitions/s", "polls/s", "enqueue",
                  "SQLite time", "in commits", "commits/job", "loop lag p99/max", "RSS start → peak"});
  for (const auto& r : results) {
    t.add({grouped(static_cast<double>(r.jobs)), grouped(static_cast<double>(r.finished)), r.fs,
           strf("%.2f s", r.wall_s), grouped(static_cast<double>(r.finished) / r.wall_s),
           grouped(static_cast<double>(r.transitions) / r.wall_s),
           grouped(static_cast<double>(r.polls) / r.wall_s), strf("%.0f ms", r.enqueue_s * 1e3),
           strf("%.0f%%", 100 * r.sql_s / r.wall_s), strf("%.0f%%", 100 * r.commit_s / r.wall_s),
           strf("%.1f", static_cast<double>(r.commits) / static_cast<double>(r.jobs)),
           strf("%.1f / %.1f ms", r.lag_p99 / 1e3, r.lag_max / 1e3),
           strf("%.1f → %.1f MiB", r.rss_start, r.peak_rss)});
  }
  t.print();
  std::printf("(SQLite time and commits: share of wall time inside SQLite statements, and inside "
              "COMMIT plus single-statement writes, which each wait for an fsync)\n");

  const RunResult& big = results[sizes.size() - 1];
  std::printf("\nSQLite statements during the %s-job run (%s):\n",
              grouped(static_cast<double>(big.jobs)).c_str(), big.fs.c_str());
  bench::Table k({"statement", "count", "per job", "total", "mean µs", "share of wall"});
  for (const auto& [kind, v] : big.kinds) {
    k.add({kind, grouped(static_cast<double>(v.count)),
           strf("%.1f", static_cast<double>(v.count) / static_cast<double>(big.jobs)),
           strf("%.2f s", v.seconds), strf("%.0f", v.seconds * 1e6 / static_cast<double>(v.count)),
           strf("%.0f%%", 100 * v.seconds / big.wall_s)});
  }
  k.print();
  return 0;
}
