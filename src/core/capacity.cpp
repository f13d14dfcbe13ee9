// Capacity preflight (see capacity.hpp).
#include "personad/capacity.hpp"

#include <algorithm>

namespace personad {

std::string capacity_full_reason(const AvatarCapacity& c) {
  return "avatar capacity full (" + std::to_string(c.current_count) + " of " +
         std::to_string(c.max_count) + ")";
}

void CapacityGate::configure(bool enabled, Millis recheck) {
  configured_ = enabled;
  recheck_ = recheck;
}

bool CapacityGate::needs_count(TimePoint now) const {
  return active() && (!known_ || now >= add_saturating(checked_at_, recheck_));
}

std::optional<std::string> CapacityGate::record(const ApiResult<AvatarCapacity>& r, TimePoint now,
                                                std::uint64_t taken_before) {
  if (r.outcome == Outcome::ok) {
    known_ = r.value;
    known_->current_count += static_cast<std::int64_t>(taken_ - std::min(taken_, taken_before));
    checked_at_ = now;
    return std::nullopt;
  }
  // Missing endpoint or a shape we do not know: off, said once. Anything else (a timeout, a
  // 5xx, 401): no news; creates go on and the next one asks again after the interval.
  if (r.outcome == Outcome::permanent && !turned_off_) {
    turned_off_ = true;
    known_.reset();
    return "capacity check off: GET /api/personas_v2/count/ answered " +
           (r.http_status ? "HTTP " + std::to_string(r.http_status) + ": " : std::string()) +
           r.message + "; jobs are sent without it";
  }
  checked_at_ = now;
  return std::nullopt;
}

std::optional<std::string> CapacityGate::hold() const {
  if (!active() || !known_ || known_->current_count < known_->max_count) return std::nullopt;
  return capacity_full_reason(*known_);
}

std::optional<std::string> CapacityGate::take() {
  auto reason = hold();
  if (!reason && active() && known_) {
    ++known_->current_count;
    ++taken_;
  }
  return reason;
}

TimePoint CapacityGate::next_check(TimePoint now) const {
  return std::max(now, add_saturating(checked_at_, recheck_));
}

std::optional<std::int64_t> CapacityGate::remaining() const {
  if (!active() || !known_) return std::nullopt;
  return std::max<std::int64_t>(0, known_->max_count - known_->current_count);
}

}  // namespace personad
