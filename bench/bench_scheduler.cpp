// Measures the due-time scheduler: schedule N jobs, reschedule each once, fire them all; reports
// operations per second, resident memory per scheduled job and peak RSS.
#include <boost/asio/io_context.hpp>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <numeric>

#include "bench_support.hpp"
#include "personad/scheduler.hpp"

namespace {

using namespace personad;
using bench::strf;
using bench::grouped;

const TimePoint kStart = from_unix_ms(1'790'000'000'000);
const Millis kWeek{7LL * 24 * 3600 * 1000};

struct Phase {
  std::string name;
  std::size_t ops = 0;
  double seconds = 0;
  double rss_mib = 0;  // resident after the phase
};

std::vector<std::string> row(const Phase& p) {
  return {p.name, grouped(static_cast<double>(p.ops)), strf("%.3f s", p.seconds),
          grouped(static_cast<double>(p.ops) / p.seconds), strf("%.1f MiB", p.rss_mib)};
}

// Random due times over a week, in random id order: how a store full of jobs polled on
// different schedules looks to the scheduler at start-up.
void random_order(std::size_t n) {
  // ManualClock: time moves only when told, so nothing fires until the "fire" phase advances it
  // past every due time; its real_delay is zero, so that phase is not waiting on timers.
  ManualClock clock(kStart);
  boost::asio::io_context ioc;
  std::size_t fired = 0;
  const double rss0 = bench::rss_mib();
  std::vector<Phase> phases;
  {
    Scheduler s(ioc.get_executor(), clock, [&](std::int64_t) { ++fired; });
    std::mt19937_64 rng(1);
    std::uniform_int_distribution<std::int64_t> due_ms(60'000, kWeek.count());
    std::vector<std::int64_t> ids(n);
    std::iota(ids.begin(), ids.end(), 1);
    std::shuffle(ids.begin(), ids.end(), rng);

    bench::Stopwatch w1;
    for (auto id : ids) s.schedule(id, kStart + Millis(due_ms(rng)));
    phases.push_back({"schedule (new ids)", n, w1.seconds(), bench::rss_mib()});
    const double per_job = (phases.back().rss_mib - rss0) * 1024 * 1024 / static_cast<double>(n);

    std::shuffle(ids.begin(), ids.end(), rng);
    bench::Stopwatch w2;
    for (auto id : ids) s.schedule(id, kStart + Millis(due_ms(rng)));
    phases.push_back({"reschedule each once", n, w2.seconds(), bench::rss_mib()});

    clock.set(kStart + kWeek + Millis(1));
    bench::Stopwatch w3;
    ioc.run();  // one timer completion; fire() dispatches everything due
    phases.push_back({"fire all (callback per job)", fired, w3.seconds(), bench::rss_mib()});
    if (fired != n) std::fprintf(stderr, "bench_scheduler: fired %zu of %zu\n", fired, n);

    std::printf("\n== %s jobs, random due times over 7 days, random order ==\n",
                grouped(static_cast<double>(n)).c_str());
    bench::Table t({"phase", "ops", "time", "ops/s", "RSS after"});
    for (const auto& p : phases) t.add(row(p));
    t.print();
    std::printf("resident memory per scheduled job: %.0f B (RSS growth after the schedule phase "
                "/ n; live map + heap)\n", per_job);
    std::printf("peak RSS (VmHWM): %.1f MiB\n", bench::peak_rss_mib());
  }
}

// Due times that only ever get earlier: every schedule moves the heap top, so every one
// re-arms the steady_timer (a cancelled wait plus a new one). The worst case for arm().
void descending_order(std::size_t n) {
  ManualClock clock(kStart);
  boost::asio::io_context ioc;
  std::size_t fired = 0;
  bench::reset_peak_rss();
  const double rss0 = bench::rss_mib();
  Scheduler s(ioc.get_executor(), clock, [&](std::int64_t) { ++fired; });
  bench::Stopwatch w1;
  for (std::size_t i = 0; i < n; ++i)
    s.schedule(static_cast<std::int64_t>(i + 1), kStart + kWeek - Millis(static_cast<std::int64_t>(i)));
  Phase sched{"schedule, each one earlier than the last", n, w1.seconds(), bench::rss_mib()};
  clock.set(kStart + kWeek + Millis(1));
  bench::Stopwatch w2;
  const std::size_t handlers = ioc.run();  // includes every cancelled wait's completion
  Phase fire{"fire all (+ cancelled timer waits)", fired, w2.seconds(), bench::rss_mib()};

  std::printf("\n== worst case for timer re-arming: %s jobs in descending due order ==\n",
              grouped(static_cast<double>(n)).c_str());
  bench::Table t({"phase", "ops", "time", "ops/s", "RSS after"});
  t.add(row(sched));
  t.add(row(fire));
  t.print();
  std::printf("timer completions run by the loop: %s; peak RSS growth during this run: %.1f MiB"
              " (from %.1f MiB)\n",
              grouped(static_cast<double>(handlers)).c_str(), bench::peak_rss_mib() - rss0, rss0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_scheduler: speed and memory of the due-time scheduler"};
  std::size_t n = 1'000'000;
  bool quick = false;
  app.add_flag("--quick", quick, "100,000 jobs instead of 1,000,000");
  app.add_option("--n", n, "number of jobs")->check(CLI::Range(1, 100'000'000));
  CLI11_PARSE(app, argc, argv);
  if (quick && app.count("--n") == 0) n = 100'000;

  std::printf("bench_scheduler: %ld cores; RSS at start %.1f MiB\n",
              ::sysconf(_SC_NPROCESSORS_ONLN), bench::rss_mib());
  random_order(n);
  descending_order(n);
  return 0;
}
