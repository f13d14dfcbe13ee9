// Capacity preflight (api.check_capacity): before a create, GET /api/personas_v2/count/ says how
// many avatars the workspace holds and may hold. While it is full, queued jobs wait with a
// waiting_reason and look again every api.capacity_recheck; capacity never fails a job. A count
// endpoint that is missing (404/405) or answers another shape turns the check off, with one
// warning. A transient failure of the count lets creates go on (the create itself is the check).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "personad/clock.hpp"
#include "personad/creatify_api.hpp"

namespace personad {

// "avatar capacity full (N of N)"
std::string capacity_full_reason(const AvatarCapacity& c);

class CapacityGate {
 public:
  CapacityGate(bool enabled, Millis recheck) { configure(enabled, recheck); }
  void configure(bool enabled, Millis recheck);
  // Configured on and not turned off by the API's answers.
  bool active() const { return configured_ && !turned_off_; }
  // Whether a create at `now` needs a fresh count first (none yet, or the last one is older
  // than the recheck interval).
  bool needs_count(TimePoint now) const;
  // Takes a count's answer; returns the warning to log when it turns the check off.
  // `taken_before`: taken() when the count was asked (places taken since are added to it).
  std::optional<std::string> record(const ApiResult<AvatarCapacity>& r, TimePoint now,
                                    std::uint64_t taken_before);
  // Places taken so far (take()).
  std::uint64_t taken() const { return taken_; }
  // The waiting reason while the workspace is full, else nullopt (go ahead).
  std::optional<std::string> hold() const;
  // hold(), and when there is room takes one place (one avatar more until the next count says
  // otherwise, whether or not the create then succeeds).
  std::optional<std::string> take();
  // When a held job looks again.
  TimePoint next_check(TimePoint now) const;
  // Avatars the workspace can still take (nullopt: not known or the check is off).
  std::optional<std::int64_t> remaining() const;

 private:
  bool configured_ = true;
  bool turned_off_ = false;
  Millis recheck_{600'000};
  std::optional<AvatarCapacity> known_;
  TimePoint checked_at_{};
  std::uint64_t taken_ = 0;
};

}  // namespace personad
