// Scheduler: order of firing, replacement, cancellation, past-due entries, and that it sleeps
// (no timer armed) when nothing is due; far and absurd due times (year 9999, TimePoint::max())
// on virtual and real time neither overflow nor spin.
#include "personad/scheduler.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace personad {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  // 1 s of scheduled time = 1 ms of real time.
  ScaledClock clock_{1000, from_unix_ms(1'700'000'000'000)};
  boost::asio::io_context ioc_;
  std::vector<std::int64_t> fired_;
  Scheduler sched_{ioc_.get_executor(), clock_, [this](std::int64_t id) { fired_.push_back(id); }};

  void run_for(std::chrono::milliseconds d) {
    ioc_.restart();
    ioc_.run_for(d);
  }
  TimePoint in(Millis d) { return clock_.now() + d; }
};

TEST_F(SchedulerTest, FiresInDueOrder) {
  sched_.schedule(3, in(Millis(30'000)));
  sched_.schedule(1, in(Millis(10'000)));
  sched_.schedule(2, in(Millis(20'000)));
  EXPECT_EQ(sched_.size(), 3u);
  run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{1, 2, 3}));
  EXPECT_EQ(sched_.size(), 0u);
  EXPECT_FALSE(sched_.next_due());
}

TEST_F(SchedulerTest, RescheduleReplacesTheEarlierEntry) {
  TimePoint t0 = clock_.now();
  sched_.schedule(1, t0 + Millis(10'000));
  sched_.schedule(2, t0 + Millis(20'000));
  sched_.schedule(1, t0 + Millis(40'000));
  EXPECT_EQ(sched_.size(), 2u);
  EXPECT_EQ(sched_.next_due(), t0 + Millis(20'000));
  run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2, 1}));
}

TEST_F(SchedulerTest, CancelledEntriesNeverFire) {
  sched_.schedule(1, in(Millis(10'000)));
  sched_.schedule(2, in(Millis(20'000)));
  sched_.cancel(1);
  EXPECT_FALSE(sched_.contains(1));
  run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2}));
}

TEST_F(SchedulerTest, PastDueFiresAtOnce) {
  sched_.schedule(7, in(Millis(-60'000)));
  run_for(std::chrono::milliseconds(5));
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{7}));
}

TEST_F(SchedulerTest, NothingDueMeansNoWakeUps) {
  // With an empty queue the loop has no work at all: run() returns at once.
  sched_.schedule(1, in(Millis(1000)));
  sched_.cancel(1);
  ioc_.restart();
  auto start = std::chrono::steady_clock::now();
  ioc_.run();  // returns only when no timer is armed
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  EXPECT_TRUE(fired_.empty());
}

TEST_F(SchedulerTest, CallbackMayRescheduleItself) {
  int count = 0;
  Scheduler s(ioc_.get_executor(), clock_, [&](std::int64_t id) {
    if (++count < 5) s.schedule(id, clock_.now() + Millis(1000));
  });
  s.schedule(9, in(Millis(1000)));
  run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(count, 5);
}

TEST_F(SchedulerTest, ManyReschedulesKeepTheHeapBounded) {
  for (int round = 0; round < 100; ++round)
    for (std::int64_t id = 0; id < 50; ++id) sched_.schedule(id, in(Millis(100'000 + round)));
  EXPECT_EQ(sched_.size(), 50u);
  run_for(std::chrono::milliseconds(300));
  EXPECT_EQ(fired_.size(), 50u);
}

TEST_F(SchedulerTest, StopPreventsFurtherCallbacks) {
  sched_.schedule(1, in(Millis(10'000)));
  sched_.stop();
  sched_.schedule(2, in(Millis(1'000)));
  run_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(fired_.empty());
}

// ---- on virtual time (ManualClock): far and absurd due times ----

class SchedulerManualClockTest : public ::testing::Test {
 protected:
  ~SchedulerManualClockTest() override { clock_.drop_timers(); }

  // Moves virtual time to the next timer and runs what it posted; false when none is armed.
  bool step() {
    if (clock_.fire_next() == 0) return false;
    ioc_.restart();
    ioc_.poll();
    return true;
  }

  TimePoint t0_ = from_unix_ms(1'790'000'000'000);
  ManualClock clock_{t0_};
  boost::asio::io_context ioc_;
  std::vector<std::int64_t> fired_;
  Scheduler sched_{ioc_.get_executor(), clock_, [this](std::int64_t id) { fired_.push_back(id); }};
};

TimePoint year_9999() {
  return std::chrono::time_point_cast<Millis>(
      std::chrono::sys_days{std::chrono::year{9999} / 12 / 31});
}

TEST_F(SchedulerManualClockTest, OneTimerIsArmedForTheEarliestEntryOnly) {
  sched_.schedule(1, t0_ + Millis(30'000));
  sched_.schedule(2, t0_ + Millis(10'000));
  sched_.schedule(3, t0_ + Millis(20'000));
  EXPECT_EQ(clock_.armed(), 1u);
  EXPECT_EQ(clock_.next_timer(), t0_ + Millis(10'000));
  sched_.cancel(2);
  sched_.cancel(3);
  sched_.cancel(1);
  EXPECT_EQ(clock_.armed(), 0u) << "nothing due: no timer";
}

TEST_F(SchedulerManualClockTest, FarAwayJobDoesNotHoldBackANearOne) {
  sched_.schedule(1, year_9999());
  sched_.schedule(2, t0_ + Millis(1'000));
  ASSERT_TRUE(step());
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(clock_.now(), t0_ + Millis(1'000));
  // Only the far one is left, and the timer waits for it.
  EXPECT_TRUE(sched_.contains(1));
  EXPECT_EQ(sched_.next_due(), year_9999());
  EXPECT_EQ(clock_.next_timer(), year_9999());
  EXPECT_EQ(clock_.armed(), 1u);
  ASSERT_TRUE(step());
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(clock_.now(), year_9999());
  EXPECT_FALSE(step());
}

TEST_F(SchedulerManualClockTest, NearJobScheduledAfterAFarOneRearmsTheTimerEarlier) {
  sched_.schedule(1, year_9999());
  EXPECT_EQ(clock_.next_timer(), year_9999());
  sched_.schedule(2, t0_ + Millis(1'000));
  EXPECT_EQ(clock_.armed(), 1u);
  EXPECT_EQ(clock_.next_timer(), t0_ + Millis(1'000));
}

// A top that moves later (the earliest job rescheduled, or cancelled) keeps the timer armed for
// the earlier time: it wakes once early, dispatches nothing, and waits for the real top. Under
// load this spares a re-arm (timerfd_settime) per poll.
TEST_F(SchedulerManualClockTest, ATopThatMovesLaterKeepsTheEarlierTimerAndWakesOnceForNothing) {
  sched_.schedule(1, t0_ + Millis(1'000));
  sched_.schedule(2, t0_ + Millis(5'000));
  sched_.schedule(1, t0_ + Millis(9'000));  // the top moves later
  EXPECT_EQ(clock_.armed(), 1u);
  EXPECT_EQ(clock_.next_timer(), t0_ + Millis(1'000));
  ASSERT_TRUE(step());  // the early wake: nothing is due
  EXPECT_TRUE(fired_.empty());
  EXPECT_EQ(clock_.next_timer(), t0_ + Millis(5'000));
  ASSERT_TRUE(step());
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(clock_.now(), t0_ + Millis(5'000));
  ASSERT_TRUE(step());
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(clock_.now(), t0_ + Millis(9'000));
  EXPECT_FALSE(step());
}

TEST_F(SchedulerManualClockTest, DueAtTheEndOfTimeNeitherOverflowsNorSpins) {
  sched_.schedule(1, TimePoint::max());
  sched_.schedule(2, t0_ + Millis(1'000));
  EXPECT_EQ(sched_.next_due(), t0_ + Millis(1'000));
  int steps = 0;
  while (step() && steps < 100) ++steps;
  EXPECT_EQ(steps, 2) << "one wake-up per due time";
  EXPECT_EQ(fired_, (std::vector<std::int64_t>{2, 1}));
  EXPECT_EQ(clock_.now(), TimePoint::max());
  EXPECT_EQ(sched_.size(), 0u);
  EXPECT_EQ(clock_.armed(), 0u);
}

// ---- on real time: a far due time arms no busy timer ----

TEST_F(SchedulerTest, EndOfTimeEntryRunsNoHandlersWhileWaiting) {
  // The nearer first: re-arming for an earlier entry would complete the earlier wait (aborted).
  sched_.schedule(2, year_9999());
  sched_.schedule(1, TimePoint::max());
  std::size_t handlers = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  while (std::chrono::steady_clock::now() < end) {
    ioc_.restart();
    handlers += ioc_.run_one_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(fired_.empty());
  EXPECT_EQ(handlers, 0u) << "the timer woke although nothing is due for millennia";
  EXPECT_EQ(sched_.size(), 2u);
}

}  // namespace
}  // namespace personad
