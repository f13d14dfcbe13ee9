// Time for the whole daemon: wall time for persisted timestamps and a mapping from wall-time
// delays to real timer delays, so tests can run a five-day avatar lifecycle in seconds.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace personad {

using Millis = std::chrono::milliseconds;
// Persisted times: UTC, integer milliseconds since the Unix epoch.
using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;

// Time arithmetic that saturates instead of overflowing: a Retry-After of a century or a
// duration of 200,000 days must park a job far away, never wrap around into the past.
Millis add_saturating(Millis a, Millis b);
TimePoint add_saturating(TimePoint t, Millis d);
Millis multiply_saturating(Millis d, double factor);

// A one-shot timer on a Clock's time: calls its function (posted to the executor it was made
// with) once the clock has reached `due`. A new wait replaces the previous one; destroying the
// timer or cancel() drops the wait without a call.
class WakeTimer {
 public:
  virtual ~WakeTimer() = default;
  virtual void wait_until(TimePoint due, std::function<void()> fn) = 0;
  virtual void cancel() = 0;
};

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // How long a real timer must wait for `wall` of this clock's time to pass.
  virtual std::chrono::steady_clock::duration real_delay(Millis wall) const = 0;
  // A timer on this clock's time. By default a steady_timer waiting real_delay (in slices of
  // at most an hour, so even an absurd delay never overflows the timer), re-armed when it
  // wakes before the clock has reached the due time.
  virtual std::unique_ptr<WakeTimer> make_timer(const boost::asio::any_io_executor& ex) const;
};

// The real clock.
class SystemClock final : public Clock {
 public:
  TimePoint now() const override;
  std::chrono::steady_clock::duration real_delay(Millis wall) const override;
};

// Time that runs `scale` times faster than real time, starting at `start` (tests, simulations).
class ScaledClock final : public Clock {
 public:
  ScaledClock(double scale, TimePoint start);
  TimePoint now() const override;
  std::chrono::steady_clock::duration real_delay(Millis wall) const override;

 private:
  double scale_;
  TimePoint start_;
  std::chrono::steady_clock::time_point real_start_;
};

// Virtual time for tests and the deterministic simulation: time moves only when told to, and its
// timers fire only when the test moves time to them (fire_next), so days of a job's life run
// in milliseconds with no wall-clock wait. Single-threaded, like the event loop it drives.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start) {}
  TimePoint now() const override { return now_; }
  std::chrono::steady_clock::duration real_delay(Millis) const override { return {}; }
  std::unique_ptr<WakeTimer> make_timer(const boost::asio::any_io_executor& ex) const override;

  void advance(Millis by) { now_ = add_saturating(now_, by); }
  void set(TimePoint t) { now_ = t; }
  // The earliest armed timer's due time.
  std::optional<TimePoint> next_timer() const;
  // Moves time forward to the earliest armed timer (never back) and posts every timer due by
  // then. Returns how many were posted: 0 when no timer is armed.
  std::size_t fire_next();
  // Posts every timer due by now without moving time.
  std::size_t fire_due();
  std::size_t armed() const { return timers_.size(); }
  // Forgets every armed timer without calling it (a simulated crash drops the event loop).
  void drop_timers() { timers_.clear(); }

 private:
  friend class ManualTimer;
  struct Armed {
    boost::asio::any_io_executor ex;
    std::function<void()> fn;
    std::uint64_t timer_id;
  };
  using Key = std::pair<TimePoint, std::uint64_t>;  // due, then arming order: deterministic
  TimePoint now_;
  mutable std::map<Key, Armed> timers_;
  mutable std::uint64_t next_seq_ = 1;
  mutable std::uint64_t next_timer_id_ = 1;
};

std::int64_t to_unix_ms(TimePoint t);
TimePoint from_unix_ms(std::int64_t ms);
// t truncated to a multiple of `step` (> 0) since the epoch, toward zero as SQL's integer
// division does (the stores group times with it).
TimePoint floor_to(TimePoint t, Millis step);
// RFC 3339 UTC with milliseconds: 2026-11-24T23:58:32.123Z
std::string format_rfc3339(TimePoint t);
// Accepts RFC 3339 / ISO 8601 with Z or an offset, with or without fractional seconds.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

}  // namespace personad
