// Simulated time for creatify-sim: a wall clock that runs N times faster than real time,
// plus duration parsing and RFC 3339 formatting. Injected so tests drive time by hand.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace creatify_sim {

using SimTime = std::chrono::system_clock::time_point;
using SimDuration = std::chrono::system_clock::duration;
using RealDuration = std::chrono::steady_clock::duration;

// The source of "now" for everything the simulator shows or decides (persona timestamps,
// lifecycle stages). Real timers (webhooks) convert sim durations with real_delay().
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SimTime now() const = 0;
  // How long to wait in real time for `sim` to pass in simulated time.
  virtual RealDuration real_delay(SimDuration sim) const = 0;
  // How much simulated time passes during `real` (the inverse of real_delay), for settings
  // given in real time such as --list-lag-ms.
  virtual SimDuration sim_span(RealDuration real) const = 0;
  // Jumps simulated time forward (the /_sim/advance admin endpoint; tests).
  virtual void advance(SimDuration by) = 0;
};

// Starts at the real wall time and then runs `scale` times faster, measured on the steady clock
// so that wall-clock adjustments on the host do not make simulated time jump.
class ScaledClock final : public Clock {
 public:
  explicit ScaledClock(double scale);
  SimTime now() const override;
  RealDuration real_delay(SimDuration sim) const override;
  SimDuration sim_span(RealDuration real) const override;
  void advance(SimDuration by) override { skipped_ += by; }
  double scale() const { return scale_; }

 private:
  double scale_;
  SimTime epoch_;
  std::chrono::steady_clock::time_point start_;
  SimDuration skipped_{};
};

// Time moves only when told to. real_delay() and sim_span() are the identity so a server under test still arms
// sensible timers.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SimTime start) : now_(start) {}
  SimTime now() const override { return now_; }
  RealDuration real_delay(SimDuration sim) const override;
  SimDuration sim_span(RealDuration real) const override;
  void advance(SimDuration by) override { now_ += by; }
  void set(SimTime t) { now_ = t; }

 private:
  SimTime now_;
};

// "250ms", "30s", "5m", "4h", "2d" (integer plus unit). nullopt when malformed or negative.
std::optional<SimDuration> parse_duration(std::string_view text);

// "2023-11-07T05:31:56Z": whole seconds, like the API's documented sample.
std::string format_rfc3339(SimTime t);

}  // namespace creatify_sim
