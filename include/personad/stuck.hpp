// Stuck jobs ([alerts] stuck_after): a non-final job whose state and remote status have not
// changed for that long. The rule (is_stuck) is the store's `--stuck` filter in plain code, for
// the job field `stuck`; StuckLog decides which stuck jobs the `stuck` log event has not named.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"

namespace personad {

// Non-final, and its state and remote status last changed (Job::status_since, else updated_at)
// at or before now − stuck_after: the same bound as SelectOptions::stuck_before.
bool is_stuck(const Job& job, TimePoint now, Millis stuck_after);

// One `stuck` log event per job and stuck spell: a job is named again only after it changed
// (its status_since moved) and got stuck anew.
class StuckLog {
 public:
  // The jobs of `stuck_now` (every job stuck at this scan) not named before; forgets jobs that
  // are no longer stuck.
  std::vector<Job> newly_stuck(const std::vector<Job>& stuck_now);
  std::size_t named() const { return named_.size(); }

 private:
  std::map<std::int64_t, TimePoint> named_;  // job id → the status_since it was named with
};

}  // namespace personad
