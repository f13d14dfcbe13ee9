// Simulated time for creatify-sim: scaled and manual clocks, duration parsing, RFC 3339.
// Everything here is pure apart from reading the host clocks in ScaledClock.
#include "sim_clock.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>

namespace creatify_sim {

namespace {

template <typename To, typename From>
To clamp_cast(From d) {
  // Avoid overflow when a huge sim duration (scale < 1 and "never") is converted.
  using Rep = typename To::rep;
  const double count = std::chrono::duration<double, typename To::period>(d).count();
  if (count >= static_cast<double>(std::numeric_limits<Rep>::max())) return To::max();
  if (count <= 0) return To::zero();
  return To(static_cast<Rep>(count));
}

}  // namespace

ScaledClock::ScaledClock(double scale)
    : scale_(scale > 0 ? scale : 1.0),
      epoch_(std::chrono::system_clock::now()),
      start_(std::chrono::steady_clock::now()) {}

SimTime ScaledClock::now() const {
  const auto real = std::chrono::steady_clock::now() - start_;
  const auto scaled = std::chrono::duration<double, RealDuration::period>(real) * scale_;
  return epoch_ + skipped_ + std::chrono::duration_cast<SimDuration>(scaled);
}

RealDuration ScaledClock::real_delay(SimDuration sim) const {
  return clamp_cast<RealDuration>(std::chrono::duration<double, SimDuration::period>(sim) / scale_);
}

SimDuration ScaledClock::sim_span(RealDuration real) const {
  return clamp_cast<SimDuration>(std::chrono::duration<double, RealDuration::period>(real) * scale_);
}

RealDuration ManualClock::real_delay(SimDuration sim) const {
  return clamp_cast<RealDuration>(sim);
}

SimDuration ManualClock::sim_span(RealDuration real) const { return clamp_cast<SimDuration>(real); }

std::optional<SimDuration> parse_duration(std::string_view text) {
  std::int64_t value = 0;
  const char* begin = text.data();
  const char* end = begin + text.size();
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc{} || ptr == begin || value < 0) return std::nullopt;
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  using namespace std::chrono;
  // Bounded so that the multiplication below cannot overflow (about 290 years in ns).
  if (value > 100'000'000) return std::nullopt;
  if (unit == "ms") return duration_cast<SimDuration>(milliseconds(value));
  if (unit == "s") return duration_cast<SimDuration>(seconds(value));
  if (unit == "m") return duration_cast<SimDuration>(minutes(value));
  if (unit == "h" && value <= 1'000'000) return duration_cast<SimDuration>(hours(value));
  if (unit == "d" && value <= 40'000) return duration_cast<SimDuration>(hours(24 * value));
  return std::nullopt;
}

std::string format_rfc3339(SimTime t) {
  const std::time_t secs =
      std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

}  // namespace creatify_sim
