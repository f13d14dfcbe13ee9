// Pure timing rules: when the next status poll is due, and how long to wait after a transient
// error. No clocks or randomness of its own: callers pass the time and a uniform number in [0,1).
#pragma once

#include <cstdint>
#include <optional>

#include "personad/clock.hpp"
#include "personad/config.hpp"

namespace personad {

// Multiplies `d` by a factor uniformly spread over [1 - jitter, 1 + jitter].
Millis apply_jitter(Millis d, double jitter, double unit_random);

// Delay before status poll number polls_done + 1 in the plain backoff: first_after for the
// first poll, then initial_interval × multiplier^(polls_done - 1), capped at max_interval, with
// jitter. This is the whole schedule when expected_after is 0, and the steady phase otherwise.
Millis poll_delay(const PollConfig& policy, std::int64_t polls_done, double unit_random);

// The window-aware schedule (config.hpp, PollConfig): where a job `age` after its submission
// stands, having made `polls_done` polls.
enum class PollPhase {
  early,   // before expected_after, the interval still growing from initial_interval
  sparse,  // before expected_after, the interval at its cap (sparse_interval)
  steady,  // from expected_after on: the interval capped at max_interval
};
PollPhase poll_phase(const PollConfig& policy, std::int64_t polls_done, Millis age);
const char* to_string(PollPhase phase);

// Delay before poll number polls_done + 1 for a job `age` after submission: as poll_delay, but
// before expected_after the cap is sparse_interval (or max_interval, if longer).
Millis poll_delay(const PollConfig& policy, std::int64_t polls_done, Millis age,
                  double unit_random);

// When the job expires: give_up_after after it was submitted.
TimePoint expiry_time(const PollConfig& policy, TimePoint submitted_at);

// The next poll from `now` by the window-aware delay; a later poll that would pass
// submitted_at + expected_after is due right then, so steady polling starts on time (the first
// poll is always first_after). No expiry clamp (callers clamp to the job's own expiry).
TimePoint next_poll_after(const PollConfig& policy, TimePoint submitted_at,
                          std::int64_t polls_done, TimePoint now, double unit_random);

// Next poll time from `now`, never later than the expiry time (the last poll happens there).
TimePoint next_poll_time(const PollConfig& policy, TimePoint submitted_at,
                         std::int64_t polls_done, TimePoint now, double unit_random);

// The schedule of a job whose API calls a webhook: the same phases, every cap relaxed to
// max_interval_with_webhook (never tighter than without one). Polling never stops: the
// callbacks are hints, and a lost one must not strand a job.
PollConfig relaxed_for_webhook(const PollConfig& policy);

// Delay after the n-th consecutive transient error (n ≥ 1): retry_initial × 2^(n-1) capped at
// retry_max, jittered by ±20%; a Retry-After from the server is honoured as a lower bound up to
// retry_max (the documented cap: a larger Retry-After waits retry_max).
Millis retry_delay(const ApiConfig& api, std::int64_t consecutive_errors,
                   std::optional<Millis> retry_after, double unit_random);

// Spreads `count` overdue actions found at start-up over time so they do not stampede:
// the i-th (0-based) is due `i / rate` seconds after now.
Millis startup_spread(std::size_t index, double requests_per_second);

}  // namespace personad
