// Backoff: the poll schedule, jitter bounds, caps, expiry clamp, retry delays, start-up spread.
#include "personad/backoff.hpp"

#include "personad/config.hpp"

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

// ---- The window-aware schedule (issue 10) ----

constexpr Millis kHour{3'600'000};
constexpr Millis kDay{24 * kHour};

// The policy of a config file that says nothing about polling.
PollConfig default_policy() {
  auto c = parse_config("", "personad.toml");
  EXPECT_TRUE(c.ok()) << c.message();
  return c->poll;
}

// The poll times of a job submitted at 0 that never finishes, up to `until`, each interval
// jittered by `unit_random`, as the tracker schedules them (next_poll_time).
std::vector<Millis> schedule(const PollConfig& p, Millis until, double unit_random = 0.5) {
  const TimePoint submitted = from_unix_ms(0);
  std::vector<Millis> at;
  TimePoint t = next_poll_time(p, submitted, 0, submitted, unit_random);
  while (t - submitted <= until && t < expiry_time(p, submitted)) {
    at.push_back(t - submitted);
    t = next_poll_time(p, submitted, static_cast<std::int64_t>(at.size()), t, unit_random);
  }
  return at;
}

TEST(PollPolicy, DefaultIsWindowAwareWithTheDocumentedKeys) {
  const PollConfig p = default_policy();
  EXPECT_EQ(p.expected_after, kDefaultExpectedAfter);
  EXPECT_EQ(p.expected_after, kDay);  // the documented window: 1–5 days
  EXPECT_EQ(p.sparse_interval, 18 * kHour);
  EXPECT_EQ(p.max_interval_with_webhook, 6 * kHour);
  // The old keys keep their defaults.
  EXPECT_EQ(p.first_after, Millis(300'000));
  EXPECT_EQ(p.max_interval, kHour);
  EXPECT_EQ(p.give_up_after, 7 * kDay);
}

TEST(PollPolicy, ExpectedAfterZeroIsThePlainBackoff) {
  PollConfig p = policy();
  ASSERT_EQ(p.expected_after, Millis(0));
  for (std::int64_t n : {0, 1, 2, 5, 40})
    for (Millis age : {Millis(0), kHour, 3 * kDay})
      for (double r : {0.0, 0.5, 1.0}) EXPECT_EQ(poll_delay(p, n, age, r), poll_delay(p, n, r));
  EXPECT_EQ(schedule(p, 5 * kDay).size(), schedule(p, 5 * kDay).size());
  EXPECT_EQ(poll_phase(p, 0, Millis(0)), PollPhase::steady);
}

TEST(PollPolicy, PhasesEarlySparseSteady) {
  const PollConfig p = default_policy();
  EXPECT_EQ(poll_phase(p, 0, Millis(0)), PollPhase::early);
  EXPECT_EQ(poll_phase(p, 3, kHour), PollPhase::early);         // 5 min × 2² = 20 min
  EXPECT_EQ(poll_phase(p, 9, 12 * kHour), PollPhase::sparse);   // 5 min × 2⁸ > 18 h
  EXPECT_EQ(poll_phase(p, 9, kDay - Millis(1)), PollPhase::sparse);
  EXPECT_EQ(poll_phase(p, 9, kDay), PollPhase::steady);
  EXPECT_EQ(poll_phase(p, 2, 4 * kDay), PollPhase::steady);      // a job retried late
  EXPECT_STREQ(to_string(PollPhase::sparse), "sparse");
  // Early: the plain growth; sparse: capped at sparse_interval; steady: at max_interval.
  EXPECT_EQ(poll_delay(p, 3, kHour, 0.5), Millis(1'200'000));
  EXPECT_EQ(poll_delay(p, 9, 20 * kHour, 0.5), 18 * kHour);
  EXPECT_EQ(poll_delay(p, 9, kDay, 0.5), kHour);
  EXPECT_EQ(poll_delay(p, 9, 20 * kHour, 1.0), multiply_saturating(18 * kHour, 1.2));
}

TEST(PollPolicy, SteadyPollingStartsAtExpectedAfter) {
  const PollConfig p = default_policy();
  const TimePoint submitted = from_unix_ms(1'790'000'000'000);
  // A sparse poll that would land past the window is due exactly at its start.
  const TimePoint now = submitted + kDay - 2 * kHour;
  EXPECT_EQ(next_poll_time(p, submitted, 10, now, 1.0), submitted + kDay);
  EXPECT_EQ(next_poll_after(p, submitted, 10, now, 1.0), submitted + kDay);
  // From there on, max_interval.
  EXPECT_EQ(next_poll_time(p, submitted, 11, submitted + kDay, 0.5),
            submitted + kDay + kHour);
  const auto at = schedule(p, 5 * kDay);
  ASSERT_FALSE(at.empty());
  EXPECT_NE(std::find(at.begin(), at.end(), kDay), at.end());
  for (std::size_t i = 1; i < at.size(); ++i) {
    if (at[i - 1] >= kDay) EXPECT_EQ(at[i] - at[i - 1], kHour) << i;
    else EXPECT_LE(at[i] - at[i - 1], 18 * kHour) << i;
  }
}

TEST(PollPolicy, DefaultCallCounts) {
  const PollConfig p = default_policy();
  const auto at = schedule(p, 5 * kDay);
  const auto polls_by = [&](Millis t) {
    return std::count_if(at.begin(), at.end(), [t](Millis x) { return x <= t; });
  };
  // A few early polls catch fast failures and rejections: 5 in the first 2 hours.
  EXPECT_EQ(polls_by(2 * kHour), 5);
  // Sparse ones (2.7 h, 5.3 h, 10.7 h, 21.3 h), then day 1 itself: 10 by then.
  EXPECT_EQ(polls_by(kDay), 10);
  // Then hourly.
  EXPECT_EQ(polls_by(2 * kDay), 34);
  EXPECT_EQ(at.size(), 106u);  // an avatar still pending after 5 days; the old default: ~123
  EXPECT_GT(schedule(policy(), 5 * kDay).size(), 110u);
  // The goal: an avatar done anywhere in the documented window (1 to 5 days, uniformly) costs
  // at most 60 calls on average (the polls before it and the one that sees it).
  double calls = 0;
  int n = 0;
  for (Millis t = kDay; t <= 5 * kDay; t += Millis(60'000), ++n) calls += polls_by(t) + 1;
  EXPECT_LE(calls / n, 60.0);
  EXPECT_GT(calls / n, 55.0);
  // With expected_after = 3d, an avatar that takes the full 5 days costs at most 60.
  PollConfig late = p;
  late.expected_after = 3 * kDay;
  EXPECT_EQ(schedule(late, 5 * kDay).size(), 60u);
  // Jitter moves the count by a few polls, never the shape.
  for (double r : {0.0, 0.25, 0.75, 1.0}) {
    const auto jittered = schedule(p, 5 * kDay, r);
    EXPECT_GT(jittered.size(), 85u) << r;
    EXPECT_LT(jittered.size(), 135u) << r;
  }
}

TEST(PollPolicy, TheFirstPollIsFirstAfterEvenWhenTheWindowOpensBefore) {
  PollConfig p = default_policy();
  p.expected_after = Millis(60'000);  // 1 min, before first_after (5 min)
  const TimePoint submitted = from_unix_ms(1'790'000'000'000);
  EXPECT_EQ(next_poll_time(p, submitted, 0, submitted, 0.5), submitted + Millis(300'000));
  // Later polls before it are still pulled in to its start.
  PollConfig q = default_policy();
  EXPECT_EQ(next_poll_time(q, submitted, 9, submitted + 20 * kHour, 0.5), submitted + kDay);
}

TEST(PollPolicy, OperatorMaxIntervalAboveSparseIntervalStillCaps) {
  PollConfig p = default_policy();
  p.max_interval = 2 * kDay;  // sparser than the sparse phase: the longer cap wins before it too
  EXPECT_EQ(poll_delay(p, 40, kHour, 0.5), 2 * kDay);
}

TEST(PollPolicy, WebhookRelaxesEveryCapAndNeverStopsPolling) {
  const PollConfig p = default_policy();
  const PollConfig w = relaxed_for_webhook(p);
  EXPECT_EQ(w.max_interval, 6 * kHour);
  EXPECT_EQ(w.sparse_interval, 18 * kHour);
  EXPECT_EQ(w.expected_after, p.expected_after);
  EXPECT_EQ(w.give_up_after, p.give_up_after);
  EXPECT_EQ(poll_delay(w, 40, 4 * kDay, 0.5), 6 * kHour);
  const auto at = schedule(w, 5 * kDay);
  EXPECT_LT(at.size(), schedule(p, 5 * kDay).size());
  EXPECT_GE(at.back(), 5 * kDay - 6 * kHour);  // still polled to the end
  // Never tighter than without a webhook.
  PollConfig slow = p;
  slow.max_interval = kDay;
  EXPECT_EQ(relaxed_for_webhook(slow).max_interval, kDay);
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
