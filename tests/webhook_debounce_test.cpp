// Debounced polls on webhook callbacks, on virtual time: the pure rule, and HookPoller on a
// ManualClock's timers.
#include "personad/webhook_debounce.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <vector>

namespace personad {
namespace {

using std::chrono::milliseconds;
const TimePoint kStart = from_unix_ms(1'764'000'000'000);
constexpr Millis kGap{2'000};

TEST(DebounceRule, FirstCallbackPollsAtOnce) {
  DebounceState s;
  auto d = decide_callback(s, kStart, kGap);
  EXPECT_EQ(d.verdict, DebounceVerdict::poll_now);
  EXPECT_EQ(s.last_poll, kStart);
}

TEST(DebounceRule, ACallbackWithinTheGapWaitsForItsEndAndFurtherOnesAddNothing) {
  DebounceState s;
  decide_callback(s, kStart, kGap);
  auto d = decide_callback(s, kStart + milliseconds(500), kGap);
  EXPECT_EQ(d.verdict, DebounceVerdict::defer);
  EXPECT_EQ(d.at, kStart + kGap);
  auto again = decide_callback(s, kStart + milliseconds(900), kGap);
  EXPECT_EQ(again.verdict, DebounceVerdict::absorbed);
  EXPECT_EQ(again.at, kStart + kGap);
}

TEST(DebounceRule, AfterTheGapACallbackPollsAtOnceAgain) {
  DebounceState s;
  decide_callback(s, kStart, kGap);
  EXPECT_EQ(decide_callback(s, kStart + kGap, kGap).verdict, DebounceVerdict::poll_now);
  // A clock set back is no reason to stop polling.
  EXPECT_EQ(decide_callback(s, kStart - milliseconds(1), kGap).verdict, DebounceVerdict::poll_now);
}

struct PollerFixture : ::testing::Test {
  boost::asio::io_context ioc;
  ManualClock clock{kStart};
  std::vector<std::pair<std::int64_t, TimePoint>> polls;
  HookPoller poller{ioc.get_executor(), clock, kGap,
                    [this](std::int64_t id) { polls.emplace_back(id, clock.now()); }};

  void run_timers_until(TimePoint t) {
    while (clock.next_timer() && *clock.next_timer() <= t) {
      clock.fire_next();
      ioc.poll();
      ioc.restart();
    }
    clock.set(std::max(clock.now(), t));
  }
};

TEST_F(PollerFixture, ABurstOfCallbacksCostsTwoPollsAGapApart) {
  for (int i = 0; i < 50; ++i) {
    poller.callback(7);
    clock.advance(milliseconds(10));
  }
  ASSERT_EQ(polls.size(), 1u);
  EXPECT_EQ(polls[0], std::make_pair(std::int64_t{7}, kStart));
  EXPECT_EQ(poller.waiting(), 1u);
  run_timers_until(kStart + milliseconds(10'000));
  ASSERT_EQ(polls.size(), 2u);
  EXPECT_EQ(polls[1], std::make_pair(std::int64_t{7}, kStart + kGap));
  EXPECT_EQ(poller.stats().callbacks, 50u);
  EXPECT_EQ(poller.stats().deferred, 1u);
  EXPECT_EQ(poller.stats().absorbed, 48u);
  EXPECT_EQ(poller.waiting(), 0u);
}

TEST_F(PollerFixture, JobsAreDebouncedEachOnItsOwn) {
  poller.callback(1);
  poller.callback(2);
  poller.callback(1);
  ASSERT_EQ(polls.size(), 2u);
  EXPECT_EQ(polls[0].first, 1);
  EXPECT_EQ(polls[1].first, 2);
  run_timers_until(kStart + kGap);
  ASSERT_EQ(polls.size(), 3u);
  EXPECT_EQ(polls[2], std::make_pair(std::int64_t{1}, kStart + kGap));
}

TEST_F(PollerFixture, ACallbackAfterADeferredPollWaitsAGapFromIt) {
  poller.callback(3);
  clock.advance(milliseconds(100));
  poller.callback(3);
  run_timers_until(kStart + kGap);
  ASSERT_EQ(polls.size(), 2u);
  clock.advance(milliseconds(500));
  poller.callback(3);
  EXPECT_EQ(polls.size(), 2u);
  run_timers_until(kStart + 2 * kGap);
  ASSERT_EQ(polls.size(), 3u);
  EXPECT_EQ(polls[2].second, kStart + 2 * kGap);
}

TEST_F(PollerFixture, StoppedPollerPollsNothing) {
  poller.callback(4);
  poller.callback(4);
  poller.stop();
  run_timers_until(kStart + milliseconds(10'000));
  poller.callback(5);
  EXPECT_EQ(polls.size(), 1u);
}

}  // namespace
}  // namespace personad
