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

// Delay before status poll number polls_done + 1: first_after for the first poll, then
// initial_interval × multiplier^(polls_done - 1), capped at max_interval, with jitter.
Millis poll_delay(const PollConfig& policy, std::int64_t polls_done, double unit_random);

// When the job expires: give_up_after after it was submitted.
TimePoint expiry_time(const PollConfig& policy, TimePoint submitted_at);

// Next poll time from `now`, never later than the expiry time (the last poll happens there).
TimePoint next_poll_time(const PollConfig& policy, TimePoint submitted_at,
                         std::int64_t polls_done, TimePoint now, double unit_random);

// Delay after the n-th consecutive transient error (n ≥ 1): retry_initial × 2^(n-1) capped at
// retry_max, jittered by ±20%; a Retry-After from the server is honoured as a lower bound up to
// retry_max (the documented cap: a larger Retry-After waits retry_max).
Millis retry_delay(const ApiConfig& api, std::int64_t consecutive_errors,
                   std::optional<Millis> retry_after, double unit_random);

// Spreads `count` overdue actions found at start-up over time so they do not stampede:
// the i-th (0-based) is due `i / rate` seconds after now.
Millis startup_spread(std::size_t index, double requests_per_second);

}  // namespace personad
