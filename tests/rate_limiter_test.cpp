// Tests of the token bucket: its refill arithmetic with explicit times, and the async limiter's
// pacing on a real io_context.
#include "personad/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace personad {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::clock;

TEST(RateLimiterBucket, DefaultBurstIsOneSecondOfTokens) {
  EXPECT_EQ(TokenBucket::default_burst(5.0), 5.0);
  EXPECT_EQ(TokenBucket::default_burst(2.5), 3.0);
  EXPECT_EQ(TokenBucket::default_burst(0.2), 1.0);
  EXPECT_EQ(TokenBucket::default_burst(0.0), 1.0);
}

TEST(RateLimiterBucket, BurstGoesAtOnceThenOneTokenPerInterval) {
  auto t0 = Clock::time_point{} + 1h;
  TokenBucket b(4.0, 4.0, t0);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.take(t0), Clock::duration::zero()) << i;
  // The fifth waits 1/rate, the sixth 2/rate: reservations queue up in order.
  EXPECT_EQ(b.take(t0), std::chrono::duration_cast<Clock::duration>(250ms));
  EXPECT_EQ(b.take(t0), std::chrono::duration_cast<Clock::duration>(500ms));
  EXPECT_DOUBLE_EQ(b.available(t0), -2.0);
}

TEST(RateLimiterBucket, RefillsWithElapsedTimeUpToBurst) {
  auto t0 = Clock::time_point{} + 1h;
  TokenBucket b(2.0, 2.0, t0);
  b.take(t0);
  b.take(t0);
  EXPECT_DOUBLE_EQ(b.available(t0 + 250ms), 0.5);
  EXPECT_DOUBLE_EQ(b.available(t0 + 500ms), 1.0);
  EXPECT_DOUBLE_EQ(b.available(t0 + 10s), 2.0);  // capped at burst
  EXPECT_EQ(b.take(t0 + 10s), Clock::duration::zero());
}

TEST(RateLimiterBucket, WaitShrinksAsTimePasses) {
  auto t0 = Clock::time_point{} + 1h;
  TokenBucket b(10.0, 1.0, t0);
  EXPECT_EQ(b.take(t0), Clock::duration::zero());
  auto wait = b.take(t0 + 40ms);  // 0.4 tokens back; needs 0.6 more
  EXPECT_EQ(std::chrono::round<std::chrono::milliseconds>(wait), 60ms);
}

TEST(RateLimiterBucket, TimeGoingBackwardsAddsNothing) {
  auto t0 = Clock::time_point{} + 1h;
  TokenBucket b(1.0, 1.0, t0);
  b.take(t0);
  EXPECT_DOUBLE_EQ(b.available(t0 - 5s), 0.0);
}

TEST(RateLimiterBucket, NonPositiveRateIsUnlimited) {
  auto t0 = Clock::time_point{} + 1h;
  TokenBucket b(0.0, 1.0, t0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b.take(t0), Clock::duration::zero());
}

TEST(RateLimiterAsync, PacesRequestsWithoutBlockingTheLoop) {
  boost::asio::io_context io;
  RateLimiter limiter(io.get_executor(), 50.0);  // burst 50
  int done = 0;
  bool ticked = false;
  auto start = Clock::now();
  for (int i = 0; i < 60; ++i)
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          co_await limiter.acquire();
          ++done;
        },
        boost::asio::detached);
  // Other work on the same loop still runs while requests wait for tokens.
  boost::asio::post(io, [&] { ticked = true; });
  io.run();
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(done, 60);
  EXPECT_TRUE(ticked);
  EXPECT_GE(elapsed, 195ms);  // (60 - 50) / 50 s
  EXPECT_LT(elapsed, 2s);
}

}  // namespace
}  // namespace personad
