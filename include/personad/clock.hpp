// Time for the whole daemon: wall time for persisted timestamps and a mapping from wall-time
// delays to real timer delays, so tests can run a five-day avatar lifecycle in seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace personad {

using Millis = std::chrono::milliseconds;
// Persisted times: UTC, integer milliseconds since the Unix epoch.
using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // How long a real timer must wait for `wall` of this clock's time to pass.
  virtual std::chrono::steady_clock::duration real_delay(Millis wall) const = 0;
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

// Time that moves only when told to (pure unit tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start) {}
  TimePoint now() const override { return now_; }
  std::chrono::steady_clock::duration real_delay(Millis) const override { return {}; }
  void advance(Millis by) { now_ += by; }
  void set(TimePoint t) { now_ = t; }

 private:
  TimePoint now_;
};

std::int64_t to_unix_ms(TimePoint t);
TimePoint from_unix_ms(std::int64_t ms);
// RFC 3339 UTC with milliseconds: 2026-11-24T23:58:32.123Z
std::string format_rfc3339(TimePoint t);
// Accepts RFC 3339 / ISO 8601 with Z or an offset, with or without fractional seconds.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

}  // namespace personad
