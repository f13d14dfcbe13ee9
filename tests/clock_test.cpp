// Time arithmetic that saturates, the ManualClock's virtual timers (order, replacement,
// cancellation, never moving time back), real delays that never overflow, and the real
// WakeTimer behind Clock::make_timer on a scaled clock, including a due time in year 9999.
// (RFC 3339 and the scaled clock's speed are tested in job_test.cpp.)
#include "personad/clock.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace personad {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

const TimePoint T0 = from_unix_ms(1'790'000'000'000);
constexpr Millis kMax = Millis::max();
constexpr Millis kMin = Millis::min();
constexpr auto kYear = hours(24 * 365);

TimePoint year_9999() { return time_point_cast<milliseconds>(sys_days{year{9999} / 12 / 31}); }

// ---- saturating arithmetic ----

TEST(ClockArithmetic, AddSaturatingAddsNormally) {
  EXPECT_EQ(add_saturating(Millis(5), Millis(7)), Millis(12));
  EXPECT_EQ(add_saturating(Millis(5), Millis(-7)), Millis(-2));
  EXPECT_EQ(add_saturating(kMax, kMin), Millis(-1));
  EXPECT_EQ(add_saturating(kMax - Millis(1), Millis(1)), kMax);  // exactly reaches the top
  EXPECT_EQ(add_saturating(T0, Millis(1'000)), T0 + Millis(1'000));
}

TEST(ClockArithmetic, AddSaturatingStopsAtTheTop) {
  EXPECT_EQ(add_saturating(kMax, Millis(1)), kMax);
  EXPECT_EQ(add_saturating(kMax, kMax), kMax);
  EXPECT_EQ(add_saturating(Millis(1), kMax), kMax);
  EXPECT_EQ(add_saturating(T0, kMax), TimePoint::max());
  EXPECT_EQ(add_saturating(TimePoint::max(), Millis(1)), TimePoint::max());
}

TEST(ClockArithmetic, AddSaturatingStopsAtTheBottom) {
  EXPECT_EQ(add_saturating(kMin, Millis(-1)), kMin);
  EXPECT_EQ(add_saturating(kMin, kMin), kMin);
  EXPECT_EQ(add_saturating(Millis(-1), kMin), kMin);
  EXPECT_EQ(add_saturating(from_unix_ms(-1), kMin), TimePoint::min());
  EXPECT_EQ(add_saturating(TimePoint::min(), Millis(-1)), TimePoint::min());
  // A positive time plus the most negative duration is still representable: exact.
  EXPECT_EQ(add_saturating(T0, kMin).time_since_epoch(), T0.time_since_epoch() + kMin);
}

TEST(ClockArithmetic, MultiplySaturatingMultipliesAndRounds) {
  EXPECT_EQ(multiply_saturating(Millis(1'000), 1.5), Millis(1'500));
  EXPECT_EQ(multiply_saturating(Millis(1'000), 0.0), Millis(0));
  EXPECT_EQ(multiply_saturating(Millis(3), 0.5), Millis(2));  // 1.5 rounds away from zero
  EXPECT_EQ(multiply_saturating(Millis(1'000), -2.0), Millis(-2'000));
}

TEST(ClockArithmetic, MultiplySaturatingSaturatesHugeFactors) {
  EXPECT_EQ(multiply_saturating(Millis(1'000'000'000'000'000'000LL), 1e6), kMax);
  EXPECT_EQ(multiply_saturating(kMax, 1.2), kMax);
  EXPECT_EQ(multiply_saturating(Millis(1), std::numeric_limits<double>::infinity()), kMax);
  EXPECT_EQ(multiply_saturating(Millis(1'000'000'000'000'000'000LL), -1e6), kMin);
  EXPECT_EQ(multiply_saturating(Millis(1), -std::numeric_limits<double>::infinity()), kMin);
  // Just below 2^63: no wrap to a negative duration.
  EXPECT_GT(multiply_saturating(kMax, 0.999), Millis(0));
}

TEST(ClockArithmetic, MultiplySaturatingMapsNaNToZero) {
  EXPECT_EQ(multiply_saturating(Millis(1'000), std::nan("")), Millis(0));
  EXPECT_EQ(multiply_saturating(Millis(0), std::numeric_limits<double>::infinity()), Millis(0))
      << "0 × ∞ is NaN";
}

// ---- ManualClock ----

class ManualClockTest : public ::testing::Test {
 protected:
  ~ManualClockTest() override { clock_.drop_timers(); }

  // A function that records `name` when it runs.
  std::function<void()> record(std::string name) {
    return [this, name] { fired_.push_back(name); };
  }
  // Runs every handler posted so far.
  std::size_t run_posted() {
    ioc_.restart();
    return ioc_.poll();
  }

  ManualClock clock_{T0};
  boost::asio::io_context ioc_;
  std::vector<std::string> fired_;
};

TEST_F(ManualClockTest, TimersFireInDueOrderAsTimeMovesToEach) {
  auto late = clock_.make_timer(ioc_.get_executor());
  auto early = clock_.make_timer(ioc_.get_executor());
  auto middle = clock_.make_timer(ioc_.get_executor());
  late->wait_until(T0 + 30s, record("late"));
  early->wait_until(T0 + 10s, record("early"));
  middle->wait_until(T0 + 20s, record("middle"));
  EXPECT_EQ(clock_.armed(), 3u);
  EXPECT_EQ(clock_.next_timer(), T0 + 10s);

  EXPECT_EQ(clock_.fire_next(), 1u);
  EXPECT_EQ(clock_.now(), T0 + 10s);
  EXPECT_TRUE(fired_.empty()) << "fire_next posts; the loop runs the function";
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"early"}));

  EXPECT_EQ(clock_.fire_next(), 1u);
  EXPECT_EQ(clock_.now(), T0 + 20s);
  EXPECT_EQ(clock_.fire_next(), 1u);
  EXPECT_EQ(clock_.now(), T0 + 30s);
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"early", "middle", "late"}));
  EXPECT_EQ(clock_.armed(), 0u);
  EXPECT_EQ(clock_.fire_next(), 0u);
  EXPECT_EQ(clock_.now(), T0 + 30s);
}

TEST_F(ManualClockTest, TimersDueAtTheSameTimeFireInArmingOrder) {
  std::vector<std::unique_ptr<WakeTimer>> timers;
  for (std::string name : {"c", "a", "d", "b"}) {
    timers.push_back(clock_.make_timer(ioc_.get_executor()));
    timers.back()->wait_until(T0 + 5s, record(name));
  }
  EXPECT_EQ(clock_.fire_next(), 4u);  // all due at once
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"c", "a", "d", "b"}));
}

TEST_F(ManualClockTest, CancelDropsTheWait) {
  auto t = clock_.make_timer(ioc_.get_executor());
  t->wait_until(T0 + 5s, record("cancelled"));
  t->cancel();
  EXPECT_EQ(clock_.armed(), 0u);
  EXPECT_EQ(clock_.fire_next(), 0u);
  EXPECT_EQ(clock_.now(), T0) << "no timer: time does not move";
  t->cancel();  // twice is harmless
  run_posted();
  EXPECT_TRUE(fired_.empty());
}

TEST_F(ManualClockTest, DestroyingATimerDropsItsWait) {
  auto keep = clock_.make_timer(ioc_.get_executor());
  keep->wait_until(T0 + 9s, record("kept"));
  {
    auto gone = clock_.make_timer(ioc_.get_executor());
    gone->wait_until(T0 + 1s, record("destroyed"));
    EXPECT_EQ(clock_.armed(), 2u);
  }
  EXPECT_EQ(clock_.armed(), 1u);
  EXPECT_EQ(clock_.next_timer(), T0 + 9s);
  clock_.fire_next();
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"kept"}));
}

TEST_F(ManualClockTest, DestroyingATimerAfterItFiredLeavesOthersAlone) {
  auto first = clock_.make_timer(ioc_.get_executor());
  auto second = clock_.make_timer(ioc_.get_executor());
  first->wait_until(T0 + 1s, record("first"));
  clock_.fire_next();
  second->wait_until(T0 + 2s, record("second"));
  first.reset();  // its entry is gone already; must not touch the second's
  EXPECT_EQ(clock_.armed(), 1u);
  clock_.fire_next();
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"first", "second"}));
}

TEST_F(ManualClockTest, RearmingReplacesTheWait) {
  auto t = clock_.make_timer(ioc_.get_executor());
  t->wait_until(T0 + 5s, record("old"));
  t->wait_until(T0 + 8s, record("new"));
  EXPECT_EQ(clock_.armed(), 1u);
  EXPECT_EQ(clock_.next_timer(), T0 + 8s);
  EXPECT_EQ(clock_.fire_next(), 1u);
  EXPECT_EQ(clock_.now(), T0 + 8s);
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"new"}));

  // Re-arming earlier works too.
  t->wait_until(T0 + 20s, record("later"));
  t->wait_until(T0 + 9s, record("sooner"));
  EXPECT_EQ(clock_.armed(), 1u);
  clock_.fire_next();
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"new", "sooner"}));
}

TEST_F(ManualClockTest, TimerCanBeRearmedFromItsOwnFunction) {
  auto t = clock_.make_timer(ioc_.get_executor());
  int ticks = 0;
  std::function<void()> tick = [&] {
    if (++ticks < 3) t->wait_until(clock_.now() + 1s, tick);
  };
  t->wait_until(T0 + 1s, tick);
  while (clock_.fire_next() > 0) run_posted();
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(clock_.now(), T0 + 3s);
}

TEST_F(ManualClockTest, DropTimersForgetsEveryWaitWithoutCallingIt) {
  auto a = clock_.make_timer(ioc_.get_executor());
  auto b = clock_.make_timer(ioc_.get_executor());
  a->wait_until(T0 + 1s, record("a"));
  b->wait_until(T0 + 2s, record("b"));
  clock_.drop_timers();
  EXPECT_EQ(clock_.armed(), 0u);
  EXPECT_FALSE(clock_.next_timer());
  EXPECT_EQ(clock_.fire_next(), 0u);
  EXPECT_EQ(run_posted(), 0u);
  EXPECT_TRUE(fired_.empty());
  // The timers still work afterwards, and destroying them is harmless.
  a->wait_until(T0 + 3s, record("a again"));
  b.reset();
  clock_.fire_next();
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"a again"}));
}

TEST_F(ManualClockTest, FireNextNeverMovesTimeBackwards) {
  auto t = clock_.make_timer(ioc_.get_executor());
  t->wait_until(T0 + 5s, record("overdue"));
  clock_.set(T0 + 60s);  // time moved past the timer without firing it
  EXPECT_EQ(clock_.fire_next(), 1u);
  EXPECT_EQ(clock_.now(), T0 + 60s);
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"overdue"}));
}

TEST_F(ManualClockTest, FireDuePostsOnlyWhatIsDueWithoutMovingTime) {
  auto past = clock_.make_timer(ioc_.get_executor());
  auto now = clock_.make_timer(ioc_.get_executor());
  auto future = clock_.make_timer(ioc_.get_executor());
  past->wait_until(T0 - 1s, record("past"));
  now->wait_until(T0, record("now"));
  future->wait_until(T0 + 1ms, record("future"));
  EXPECT_EQ(clock_.fire_due(), 2u);
  EXPECT_EQ(clock_.now(), T0);
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"past", "now"}));
  EXPECT_EQ(clock_.armed(), 1u);
}

TEST_F(ManualClockTest, AdvanceSaturates) {
  clock_.advance(kMax);
  EXPECT_EQ(clock_.now(), TimePoint::max());
  clock_.advance(1s);
  EXPECT_EQ(clock_.now(), TimePoint::max());
}

TEST_F(ManualClockTest, TimerAtTheEndOfTimeFiresOnceWithoutOverflow) {
  auto t = clock_.make_timer(ioc_.get_executor());
  t->wait_until(TimePoint::max(), record("end of time"));
  EXPECT_EQ(clock_.fire_next(), 1u);
  EXPECT_EQ(clock_.now(), TimePoint::max());
  run_posted();
  EXPECT_EQ(fired_, (std::vector<std::string>{"end of time"}));
  EXPECT_EQ(clock_.fire_next(), 0u);
}

TEST_F(ManualClockTest, RealDelayIsZero) {
  EXPECT_EQ(clock_.real_delay(kMax), steady_clock::duration::zero());
}

// ---- real delays ----

TEST(ClockRealDelay, SystemClockPassesOrdinaryDelaysThrough) {
  SystemClock c;
  EXPECT_EQ(c.real_delay(Millis(1'500)), milliseconds(1'500));
  EXPECT_EQ(c.real_delay(Millis(0)), steady_clock::duration::zero());
}

TEST(ClockRealDelay, SystemClockSaturatesAtAYear) {
  SystemClock c;
  auto d = c.real_delay(kMax);
  EXPECT_GT(d, steady_clock::duration::zero()) << "must not wrap to a negative delay";
  EXPECT_LE(d, kYear);
  EXPECT_EQ(d, kYear);
  // Adding it to the steady clock's now must not overflow either.
  EXPECT_GT(steady_clock::now() + d, steady_clock::now());
}

TEST(ClockRealDelay, ScaledClockDividesByTheScale) {
  ScaledClock c(1000, T0);
  EXPECT_EQ(duration_cast<microseconds>(c.real_delay(Millis(5'000))), milliseconds(5));
  ScaledClock slow(0.5, T0);
  EXPECT_EQ(duration_cast<milliseconds>(slow.real_delay(Millis(1'000))), milliseconds(2'000));
}

TEST(ClockRealDelay, ScaledClockSaturatesAtAYear) {
  for (double scale : {1000.0, 1.0, 0.001}) {
    ScaledClock c(scale, T0);
    auto d = c.real_delay(kMax);
    EXPECT_GT(d, steady_clock::duration::zero()) << "scale " << scale;
    EXPECT_LE(d, kYear) << "scale " << scale;
    EXPECT_GT(steady_clock::now() + d, steady_clock::now()) << "scale " << scale;
  }
  // A slow clock reaches the cap with an ordinary wall delay.
  ScaledClock slow(0.001, T0);
  EXPECT_EQ(slow.real_delay(Millis(86'400'000LL * 365)), kYear);
}

// ---- the real timer behind Clock::make_timer ----

// Runs the loop for at most `limit` of real time, until `done` holds.
template <class Pred>
bool run_real(boost::asio::io_context& ioc, Pred done, steady_clock::duration limit) {
  const auto end = steady_clock::now() + limit;
  while (!done() && steady_clock::now() < end) {
    ioc.restart();
    ioc.run_one_for(milliseconds(5));
  }
  return done();
}

// The real timer can only be shown on real time: these tests use a scaled clock (1 s = 1 ms)
// or a stepped one, waits of a few milliseconds and generous upper bounds.
TEST(ClockRealTimer, ScaledTimerFiresAFiveSecondWallWaitInMilliseconds) {
  ScaledClock clock(1000, T0);
  boost::asio::io_context ioc;
  auto timer = clock.make_timer(ioc.get_executor());
  const TimePoint due = clock.now() + 5s;
  bool fired = false;
  TimePoint fired_at{};
  const auto start = steady_clock::now();
  timer->wait_until(due, [&] {
    fired = true;
    fired_at = clock.now();
  });
  ASSERT_TRUE(run_real(ioc, [&] { return fired; }, 5s));
  const auto took = steady_clock::now() - start;
  EXPECT_GE(fired_at, due) << "never before the clock reached the due time";
  EXPECT_LT(took, 2s);  // ≈ 5 ms; 5 s would mean the scale was ignored
}

TEST(ClockRealTimer, PastDueTimerFiresAtOnce) {
  ScaledClock clock(1000, T0);
  boost::asio::io_context ioc;
  auto timer = clock.make_timer(ioc.get_executor());
  bool fired = false;
  timer->wait_until(T0 - 1h, [&] { fired = true; });
  EXPECT_TRUE(run_real(ioc, [&] { return fired; }, 2s));
}

TEST(ClockRealTimer, FarFutureTimerArmedThenCancelledNeverFiresOrThrows) {
  ScaledClock clock(1000, T0);
  boost::asio::io_context ioc;
  auto timer = clock.make_timer(ioc.get_executor());
  bool fired = false;
  EXPECT_NO_THROW(timer->wait_until(year_9999(), [&] { fired = true; }));
  EXPECT_NO_THROW(timer->wait_until(TimePoint::max(), [&] { fired = true; }));
  ioc.restart();
  EXPECT_NO_THROW(ioc.run_for(20ms));
  EXPECT_FALSE(fired);
  timer->cancel();
  // Nothing left to wait for: run() returns at once, having run only the cancellation.
  ioc.restart();
  const auto start = steady_clock::now();
  EXPECT_NO_THROW(ioc.run());
  EXPECT_LT(steady_clock::now() - start, 1s);
  EXPECT_FALSE(fired);
}

TEST(ClockRealTimer, DestroyedTimerNeverCalls) {
  ScaledClock clock(1000, T0);
  boost::asio::io_context ioc;
  bool fired = false;
  {
    auto timer = clock.make_timer(ioc.get_executor());
    timer->wait_until(T0 + 1s, [&] { fired = true; });
  }
  // No wait is left: run() returns at once (after the aborted wait), and nothing was called.
  ioc.restart();
  const auto start = steady_clock::now();
  ioc.run();
  EXPECT_LT(steady_clock::now() - start, 1s);
  EXPECT_FALSE(fired);
}

TEST(ClockRealTimer, RearmedRealTimerCallsOnlyTheNewFunction) {
  ScaledClock clock(1000, T0);
  boost::asio::io_context ioc;
  auto timer = clock.make_timer(ioc.get_executor());
  std::vector<std::string> fired;
  timer->wait_until(clock.now() + 1s, [&] { fired.push_back("old"); });
  timer->wait_until(clock.now() + 2s, [&] { fired.push_back("new"); });
  ASSERT_TRUE(run_real(ioc, [&] { return !fired.empty(); }, 2s));
  ioc.restart();
  ioc.run();  // returns once no wait is left: the old one is gone too
  EXPECT_EQ(fired, (std::vector<std::string>{"new"}));
}

// A clock whose time moves only when the test says, with real timers that wake at once: the
// real timer must wait again (not call) while the clock has not reached the due time.
class SteppedClock final : public Clock {
 public:
  explicit SteppedClock(TimePoint t) : now_(t) {}
  TimePoint now() const override { return now_; }
  steady_clock::duration real_delay(Millis) const override { return {}; }
  TimePoint now_;
};

TEST(ClockRealTimer, RealTimerWakingEarlyWaitsAgainUntilTheClockIsThere) {
  SteppedClock clock(T0);
  boost::asio::io_context ioc;
  auto timer = clock.make_timer(ioc.get_executor());  // the default, steady timer
  int calls = 0;
  timer->wait_until(T0 + 10s, [&] { ++calls; });
  ioc.restart();
  ioc.run_for(20ms);  // about twenty early wake-ups of the real timer
  EXPECT_EQ(calls, 0) << "called before the clock reached the due time";
  clock.now_ = T0 + 10s;
  EXPECT_TRUE(run_real(ioc, [&] { return calls > 0; }, 2s));
  ioc.restart();
  ioc.run();  // nothing is re-armed after the call
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace personad
