// Scheduler: order of firing, replacement, cancellation, past-due entries, and that it sleeps
// (no timer armed) when nothing is due.
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

}  // namespace
}  // namespace personad
