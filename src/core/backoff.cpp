// Poll schedule and retry backoff arithmetic (see backoff.hpp).
#include "personad/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace personad {

Millis apply_jitter(Millis d, double jitter, double unit_random) {
  double factor = 1.0 + jitter * (2.0 * std::clamp(unit_random, 0.0, 1.0) - 1.0);
  return multiply_saturating(d, factor);
}

Millis poll_delay(const PollConfig& p, std::int64_t polls_done, double unit_random) {
  if (polls_done <= 0) return apply_jitter(p.first_after, p.jitter, unit_random);
  // Exponent capped so pow() cannot overflow before the max_interval cap applies.
  double exponent = static_cast<double>(std::min<std::int64_t>(polls_done - 1, 200));
  double raw = static_cast<double>(p.initial_interval.count()) * std::pow(p.multiplier, exponent);
  double capped = std::min(raw, static_cast<double>(p.max_interval.count()));
  return apply_jitter(multiply_saturating(Millis(1), capped), p.jitter, unit_random);
}

TimePoint expiry_time(const PollConfig& p, TimePoint submitted_at) {
  return add_saturating(submitted_at, p.give_up_after);
}

TimePoint next_poll_time(const PollConfig& p, TimePoint submitted_at, std::int64_t polls_done,
                         TimePoint now, double unit_random) {
  return std::min(add_saturating(now, poll_delay(p, polls_done, unit_random)),
                  expiry_time(p, submitted_at));
}

Millis retry_delay(const ApiConfig& api, std::int64_t n, std::optional<Millis> retry_after,
                   double unit_random) {
  double exponent = static_cast<double>(std::clamp<std::int64_t>(n - 1, 0, 62));
  double raw = static_cast<double>(api.retry_initial.count()) * std::pow(2.0, exponent);
  double capped = std::min(raw, static_cast<double>(api.retry_max.count()));
  Millis d = apply_jitter(multiply_saturating(Millis(1), capped), 0.2, unit_random);
  // The server's Retry-After is a lower bound, but only up to retry_max: an absurd value
  // (4294967295 s, a date in 9999) must not park a job past every deadline.
  if (retry_after) d = std::max(d, std::min(*retry_after, api.retry_max));
  return d;
}

Millis startup_spread(std::size_t index, double rps) {
  if (rps <= 0) rps = 1;
  return Millis(std::llround(static_cast<double>(index) * 1000.0 / rps));
}

}  // namespace personad
