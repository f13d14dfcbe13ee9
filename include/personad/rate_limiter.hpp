// A token bucket that spaces out requests to the API: the refill arithmetic is pure (TokenBucket)
// and RateLimiter waits for a token on an asio timer, never blocking the event loop.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>

namespace personad {

class TokenBucket {
 public:
  using clock = std::chrono::steady_clock;

  // `rate` tokens per second, at most `burst` saved up; starts full. rate <= 0 means unlimited.
  TokenBucket(double rate, double burst, clock::time_point now);

  // Takes one token and returns how long the caller must wait before using it: zero when one
  // was available. A token not yet refilled is reserved (the balance goes negative), so callers
  // are served in the order they asked and each wait is known at once.
  clock::duration take(clock::time_point now);

  // Tokens available at `now` (negative while reservations are outstanding).
  double available(clock::time_point now);

  // The burst for a rate: max(1, ceil(rate)), so one second's worth may go at once.
  static double default_burst(double rate);

 private:
  void refill(clock::time_point now);

  double rate_;
  double burst_;
  double tokens_;
  clock::time_point last_;
};

class RateLimiter {
 public:
  RateLimiter(boost::asio::any_io_executor ex, double rate_per_second);

  // Completes when the caller may send one request.
  boost::asio::awaitable<void> acquire();

 private:
  boost::asio::any_io_executor ex_;
  TokenBucket bucket_;
};

}  // namespace personad
