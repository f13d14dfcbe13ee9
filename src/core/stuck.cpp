// Stuck jobs (see stuck.hpp).
#include "personad/stuck.hpp"

namespace personad {

bool is_stuck(const Job& job, TimePoint now, Millis stuck_after) {
  if (is_final(job.state)) return false;
  const TimePoint since = job.status_since.value_or(job.updated_at);
  return since <= add_saturating(now, Millis(-stuck_after.count()));
}

std::vector<Job> StuckLog::newly_stuck(const std::vector<Job>& stuck_now) {
  std::map<std::int64_t, TimePoint> next;
  std::vector<Job> fresh;
  for (const Job& j : stuck_now) {
    const TimePoint since = j.status_since.value_or(j.updated_at);
    auto it = named_.find(j.id);
    if (it == named_.end() || it->second != since) fresh.push_back(j);
    next.emplace(j.id, since);
  }
  named_ = std::move(next);
  return fresh;
}

}  // namespace personad
