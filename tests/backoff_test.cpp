// Backoff: the poll schedule, jitter bounds, caps, expiry clamp, retry delays, start-up spread.
#include "personad/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

namespace personad {
namespace {

PollConfig policy() {
  PollConfig p;
  p.first_after = Millis(300'000);
  p.initial_interval = Millis(300'000);
  p.multiplier = 2.0;
  p.max_interval = Millis(3'600'000);
  p.jitter = 0.2;
  p.give_up_after = Millis(7LL * 86'400'000);
  return p;
}

TEST(Backoff, JitterSpansPlusMinusFraction) {
  EXPECT_EQ(apply_jitter(Millis(1000), 0.2, 0.0), Millis(800));
  EXPECT_EQ(apply_jitter(Millis(1000), 0.2, 0.5), Millis(1000));
  EXPECT_EQ(apply_jitter(Millis(1000), 0.2, 1.0), Millis(1200));
  EXPECT_EQ(apply_jitter(Millis(1000), 0.0, 0.9), Millis(1000));
}

TEST(Backoff, FirstPollAfterFirstAfterThenGrowsGeometricallyToTheCap) {
  PollConfig p = policy();
  EXPECT_EQ(poll_delay(p, 0, 0.5), Millis(300'000));
  EXPECT_EQ(poll_delay(p, 1, 0.5), Millis(300'000));
  EXPECT_EQ(poll_delay(p, 2, 0.5), Millis(600'000));
  EXPECT_EQ(poll_delay(p, 3, 0.5), Millis(1'200'000));
  EXPECT_EQ(poll_delay(p, 4, 0.5), Millis(2'400'000));
  EXPECT_EQ(poll_delay(p, 5, 0.5), Millis(3'600'000));
  EXPECT_EQ(poll_delay(p, 500, 0.5), Millis(3'600'000));  // no overflow for huge counts
}

TEST(Backoff, JitterAppliesAfterTheCap) {
  PollConfig p = policy();
  EXPECT_EQ(poll_delay(p, 50, 1.0), Millis(4'320'000));
  EXPECT_EQ(poll_delay(p, 50, 0.0), Millis(2'880'000));
}

TEST(Backoff, NextPollNeverPassesExpiry) {
  PollConfig p = policy();
  TimePoint submitted = from_unix_ms(1'000'000);
  TimePoint near_end = submitted + p.give_up_after - Millis(1000);
  EXPECT_EQ(next_poll_time(p, submitted, 10, near_end, 0.5), expiry_time(p, submitted));
  EXPECT_EQ(next_poll_time(p, submitted, 0, submitted, 0.5), submitted + Millis(300'000));
}

TEST(Backoff, FiveDayWindowTakesFewPolls) {
  // The schedule across a 5-day creation: how many polls the default policy makes.
  PollConfig p = policy();
  TimePoint t = from_unix_ms(0);
  TimePoint end = t + Millis(5LL * 86'400'000);
  int polls = 0;
  while (t < end) t = next_poll_time(p, from_unix_ms(0), polls++, t, 0.5);
  EXPECT_GT(polls, 110);
  EXPECT_LT(polls, 130);  // ≈ 24 a day at the 1 h cap
}

TEST(Backoff, RetryDelayDoublesToCapAndHonoursRetryAfter) {
  ApiConfig api;
  api.retry_initial = Millis(1000);
  api.retry_max = Millis(60'000);
  EXPECT_EQ(retry_delay(api, 1, std::nullopt, 0.5), Millis(1000));
  EXPECT_EQ(retry_delay(api, 2, std::nullopt, 0.5), Millis(2000));
  EXPECT_EQ(retry_delay(api, 4, std::nullopt, 0.5), Millis(8000));
  EXPECT_EQ(retry_delay(api, 40, std::nullopt, 0.5), Millis(60'000));
  EXPECT_EQ(retry_delay(api, 40, std::nullopt, 1.0), Millis(72'000));
  EXPECT_EQ(retry_delay(api, 1, Millis(30'000), 0.5), Millis(30'000));
  EXPECT_EQ(retry_delay(api, 8, Millis(10), 0.5), Millis(60'000));  // a lower bound only
}

// ---- Retry-After against the retry_max cap ----

TEST(Backoff, RetryAfterBelowTheBackoffChangesNothing) {
  ApiConfig api;
  api.retry_initial = Millis(1000);
  api.retry_max = Millis(60'000);
  EXPECT_EQ(retry_delay(api, 4, Millis(500), 0.5), Millis(8000));
  EXPECT_EQ(retry_delay(api, 4, Millis(500), 0.0), Millis(6400));  // jitter still applies
}

TEST(Backoff, RetryAfterWithinRetryMaxIsWaitedExactly) {
  ApiConfig api;
  api.retry_initial = Millis(1000);
  api.retry_max = Millis(60'000);
  EXPECT_EQ(retry_delay(api, 1, Millis(45'000), 0.0), Millis(45'000));
  EXPECT_EQ(retry_delay(api, 1, Millis(60'000), 0.5), Millis(60'000));  // exactly the cap
}

TEST(Backoff, RetryAfterAboveRetryMaxWaitsRetryMax) {
  ApiConfig api;
  api.retry_initial = Millis(1000);
  api.retry_max = Millis(60'000);
  EXPECT_EQ(retry_delay(api, 1, Millis(60'001), 0.5), Millis(60'000));
  // An absurd Retry-After (4294967295 s, or a date in 9999).
  const Millis huge(4'294'967'295LL * 1000);
  EXPECT_EQ(retry_delay(api, 1, huge, 0.5), Millis(60'000));
  EXPECT_EQ(retry_delay(api, 1, Millis::max(), 0.5), Millis(60'000));
  // max(jittered backoff, retry_max): never more than the backoff's own jittered top.
  for (std::int64_t n : {1, 2, 6, 7, 40, 1'000'000}) {
    for (double random : {0.0, 0.25, 0.5, 0.75, 1.0}) {
      Millis d = retry_delay(api, n, huge, random);
      EXPECT_GE(d, api.retry_max) << "n=" << n << " random=" << random;
      EXPECT_LE(d, multiply_saturating(api.retry_max, 1.2)) << "n=" << n << " random=" << random;
      EXPECT_EQ(d, std::max(retry_delay(api, n, std::nullopt, random), api.retry_max));
    }
  }
}

TEST(Backoff, RetryDelayWithHugeErrorCountsStaysAtTheCap) {
  ApiConfig api;
  api.retry_initial = Millis(1000);
  api.retry_max = Millis(60'000);
  EXPECT_EQ(retry_delay(api, std::numeric_limits<std::int64_t>::max(), std::nullopt, 0.5),
            Millis(60'000));
  EXPECT_EQ(retry_delay(api, 0, std::nullopt, 0.5), Millis(1000));  // treated as the first
}

// ---- absurd policies saturate instead of overflowing ----

TEST(Backoff, GiveUpAfterOf200000DaysDoesNotOverflow) {
  PollConfig p = policy();
  p.give_up_after = Millis(200'000LL * 86'400'000);
  p.first_after = p.give_up_after;
  p.initial_interval = p.give_up_after;
  p.max_interval = p.give_up_after;
  const TimePoint submitted = from_unix_ms(1'790'000'000'000);

  EXPECT_EQ(expiry_time(p, submitted), submitted + p.give_up_after);
  EXPECT_EQ(poll_delay(p, 0, 1.0), multiply_saturating(p.give_up_after, 1.2));
  EXPECT_EQ(poll_delay(p, 400, 0.5), p.give_up_after);
  EXPECT_GT(poll_delay(p, 400, 1.0), Millis(0));
  // The next poll is at the expiry, never past it and never in the past.
  EXPECT_EQ(next_poll_time(p, submitted, 3, submitted, 1.0), expiry_time(p, submitted));
  EXPECT_GT(next_poll_time(p, submitted, 3, submitted, 1.0), submitted);
}

TEST(Backoff, TimesNearTheEndOfTimeSaturate) {
  PollConfig p = policy();
  p.give_up_after = Millis(200'000LL * 86'400'000);
  const TimePoint late = TimePoint::max() - Millis(1000);
  EXPECT_EQ(expiry_time(p, late), TimePoint::max());
  EXPECT_EQ(next_poll_time(p, late, 3, late, 1.0), TimePoint::max());
  p.give_up_after = Millis::max();
  EXPECT_EQ(expiry_time(p, from_unix_ms(0)), TimePoint::max());
}

TEST(Backoff, MaximalIntervalsSaturateInsteadOfWrapping) {
  PollConfig p = policy();
  p.first_after = Millis::max();
  p.initial_interval = Millis::max();
  p.max_interval = Millis::max();
  p.give_up_after = Millis::max();
  EXPECT_EQ(poll_delay(p, 0, 1.0), Millis::max());
  EXPECT_EQ(poll_delay(p, 300, 1.0), Millis::max());
  EXPECT_GT(poll_delay(p, 300, 0.0), Millis(0));
  const TimePoint now = from_unix_ms(1'790'000'000'000);
  EXPECT_EQ(next_poll_time(p, now, 300, now, 1.0), TimePoint::max());

  ApiConfig api;
  api.retry_initial = Millis::max();
  api.retry_max = Millis::max();
  EXPECT_EQ(retry_delay(api, 70, std::nullopt, 1.0), Millis::max());
  EXPECT_GT(retry_delay(api, 70, std::nullopt, 0.0), Millis(0));
}

TEST(Backoff, StartupSpreadFollowsTheRequestRate) {
  EXPECT_EQ(startup_spread(0, 5.0), Millis(0));
  EXPECT_EQ(startup_spread(1, 5.0), Millis(200));
  EXPECT_EQ(startup_spread(10, 5.0), Millis(2000));
  EXPECT_EQ(startup_spread(3, 0.0), Millis(3000));  // nonsense rate treated as 1/s
}

}  // namespace
}  // namespace personad
