// personad-simulate: runs seeds of the deterministic simulation and reports the failing ones.
//   personad-simulate --seeds 100000 [--first 1]   many seeds; exit 1 if any fails
//   personad-simulate --seed 42 --log               one seed, with the daemon's log
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "simulation.hpp"

int main(int argc, char** argv) {
  CLI::App app{"personad's deterministic simulation"};
  std::uint64_t seeds = 500, first = 1;
  std::optional<std::uint64_t> one;
  bool log = false, debug = false, verbose = false;
  app.add_option("--seeds", seeds, "how many seeds to run");
  app.add_option("--first", first, "the first seed");
  app.add_option("--seed", one, "run this one seed");
  app.add_flag("--log", log, "print the daemon's log of the seed");
  app.add_flag("--debug", debug, "log at debug level");
  app.add_flag("--verbose", verbose, "one line per seed");
  CLI11_PARSE(app, argc, argv);

  using personad::simulation::describe;
  using personad::simulation::run_seed;
  if (one) {
    auto r = run_seed(*one, {log, debug});
    if (log) std::cout << r.log;
    std::cout << describe(r) << '\n';
    return r.ok() ? 0 : 1;
  }
  auto start = std::chrono::steady_clock::now();
  std::uint64_t failed = 0;
  std::size_t crashes = 0, creates = 0, jobs = 0, flagged = 0;
  for (std::uint64_t s = first; s < first + seeds; ++s) {
    auto r = run_seed(s, {false, false});
    crashes += r.crashes;
    creates += r.creates;
    jobs += r.jobs;
    flagged += r.flagged;
    if (!r.ok()) {
      ++failed;
      std::cout << describe(r) << '\n';
    } else if (verbose) {
      std::cout << describe(r) << '\n';
    }
    if ((s - first + 1) % 1000 == 0)
      std::fprintf(stderr, "… %llu seeds, %llu failed\n",
                   static_cast<unsigned long long>(s - first + 1),
                   static_cast<unsigned long long>(failed));
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%llu seeds (%llu..%llu): %llu failed; %zu jobs, %zu creates, %zu crashes, %zu "
              "flagged for the operator; %.1f s\n",
              static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(first),
              static_cast<unsigned long long>(first + seeds - 1),
              static_cast<unsigned long long>(failed), jobs, creates, crashes, flagged, secs);
  return failed == 0 ? 0 : 1;
}
