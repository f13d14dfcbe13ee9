// The deterministic simulation of personad: one seed draws a campaign, a fault schedule
// (lost and slow creates, list lag and failed pages, 429s with any Retry-After, 5xx, resets,
// store read and write errors, early 4xx on uploads), operator actions at random moments and
// crashes at random await points; the run checks exactly-once and never-stuck after every
// step of virtual time. The same seed always replays the same run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace personad::simulation {

struct SeedReport {
  std::uint64_t seed = 0;
  std::vector<std::string> violations;  // empty: the seed passed
  std::size_t jobs = 0, creates = 0, requests = 0, crashes = 0, store_failures = 0;
  std::size_t done = 0, failed = 0, expired = 0, cancelled = 0, flagged = 0;
  std::size_t handlers = 0, wakeups = 0;
  std::string scenario;  // what this seed drew, for a reader
  std::string log;       // the daemon's log (when asked for, or when the seed failed)
  bool ok() const { return violations.empty(); }
};

struct SeedOptions {
  bool keep_log = false;  // keep the whole log even when the seed passes
  bool debug_log = false;
};

SeedReport run_seed(std::uint64_t seed, SeedOptions options = {});

// "seed 42: 3 violations: …" and what is needed to replay it.
std::string describe(const SeedReport& report);

}  // namespace personad::simulation
