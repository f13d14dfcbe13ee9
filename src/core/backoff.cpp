// Poll schedule and retry backoff arithmetic (see backoff.hpp).
#include "personad/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace personad {

Millis apply_jitter(Millis d, double jitter, double unit_random) {
  double factor = 1.0 + jitter * (2.0 * std::clamp(unit_random, 0.0, 1.0) - 1.0);
  return multiply_saturating(d, factor);
}

namespace {

// The growing interval before poll number polls_done + 1 (polls_done ≥ 1), uncapped but finite.
double raw_interval(const PollConfig& p, std::int64_t polls_done) {
  // Exponent capped so pow() cannot overflow before a cap applies.
  double exponent = static_cast<double>(std::clamp<std::int64_t>(polls_done - 1, 0, 200));
  return static_cast<double>(p.initial_interval.count()) * std::pow(p.multiplier, exponent);
}

bool before_window(const PollConfig& p, Millis age) { return age < p.expected_after; }

Millis sparse_cap(const PollConfig& p) { return std::max(p.sparse_interval, p.max_interval); }

Millis capped(const PollConfig& p, std::int64_t polls_done, Millis cap, double unit_random) {
  if (polls_done <= 0) return apply_jitter(p.first_after, p.jitter, unit_random);
  double d = std::min(raw_interval(p, polls_done), static_cast<double>(cap.count()));
  return apply_jitter(multiply_saturating(Millis(1), d), p.jitter, unit_random);
}

}  // namespace

Millis poll_delay(const PollConfig& p, std::int64_t polls_done, double unit_random) {
  return capped(p, polls_done, p.max_interval, unit_random);
}

Millis poll_delay(const PollConfig& p, std::int64_t polls_done, Millis age, double unit_random) {
  return capped(p, polls_done, before_window(p, age) ? sparse_cap(p) : p.max_interval,
                unit_random);
}

PollPhase poll_phase(const PollConfig& p, std::int64_t polls_done, Millis age) {
  if (!before_window(p, age)) return PollPhase::steady;
  if (polls_done >= 1 && raw_interval(p, polls_done) >= static_cast<double>(sparse_cap(p).count()))
    return PollPhase::sparse;
  return PollPhase::early;
}

const char* to_string(PollPhase phase) {
  switch (phase) {
    case PollPhase::early: return "early";
    case PollPhase::sparse: return "sparse";
    case PollPhase::steady: return "steady";
  }
  return "?";
}

TimePoint expiry_time(const PollConfig& p, TimePoint submitted_at) {
  return add_saturating(submitted_at, p.give_up_after);
}

TimePoint next_poll_after(const PollConfig& p, TimePoint submitted_at, std::int64_t polls_done,
                          TimePoint now, double unit_random) {
  const Millis age = now < submitted_at ? Millis(0) : std::chrono::duration_cast<Millis>(now - submitted_at);
  TimePoint next = add_saturating(now, poll_delay(p, polls_done, age, unit_random));
  // The first poll keeps first_after's meaning even when the window opens before it.
  if (polls_done > 0 && before_window(p, age))
    next = std::min(next, add_saturating(submitted_at, p.expected_after));
  return next;
}

TimePoint next_poll_time(const PollConfig& p, TimePoint submitted_at, std::int64_t polls_done,
                         TimePoint now, double unit_random) {
  return std::min(next_poll_after(p, submitted_at, polls_done, now, unit_random),
                  expiry_time(p, submitted_at));
}

PollConfig relaxed_for_webhook(const PollConfig& p) {
  PollConfig r = p;
  r.max_interval = std::max(p.max_interval, p.max_interval_with_webhook);
  r.sparse_interval = std::max(p.sparse_interval, r.max_interval);
  return r;
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
