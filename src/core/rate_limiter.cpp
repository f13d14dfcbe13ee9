// Token-bucket rate limiting of API requests: pure refill arithmetic plus an async wait on a
// steady_timer, so throttled requests park on the event loop instead of blocking it.
#include "personad/rate_limiter.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>

namespace personad {

TokenBucket::TokenBucket(double rate, double burst, clock::time_point now)
    : rate_(rate), burst_(std::max(1.0, burst)), tokens_(burst_), last_(now) {}

double TokenBucket::default_burst(double rate) { return std::max(1.0, std::ceil(rate)); }

void TokenBucket::refill(clock::time_point now) {
  if (now <= last_) return;  // steady time never goes back; equal stamps add nothing
  double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

double TokenBucket::available(clock::time_point now) {
  refill(now);
  return tokens_;
}

TokenBucket::clock::duration TokenBucket::take(clock::time_point now) {
  if (rate_ <= 0) return clock::duration::zero();
  refill(now);
  tokens_ -= 1.0;
  if (tokens_ >= 0) return clock::duration::zero();
  return std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(-tokens_ / rate_));
}

RateLimiter::RateLimiter(boost::asio::any_io_executor ex, double rate_per_second)
    : ex_(std::move(ex)),
      bucket_(rate_per_second, TokenBucket::default_burst(rate_per_second),
              TokenBucket::clock::now()) {}

boost::asio::awaitable<void> RateLimiter::acquire() {
  auto wait = bucket_.take(TokenBucket::clock::now());
  if (wait <= TokenBucket::clock::duration::zero()) co_return;
  boost::asio::steady_timer timer(ex_, wait);
  // An aborted wait (shutdown) simply ends the wait; the caller checks whether to go on.
  co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

}  // namespace personad
