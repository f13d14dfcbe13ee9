// Log lines an operator can read at 3 a.m.: spdlog sinks for text, JSON lines and journald, and
// structured events (one line per transition) with the same fields in every format.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/common.h>

#include "personad/config.hpp"
#include "personad/job.hpp"

namespace spdlog {
class logger;
class formatter;
}  // namespace spdlog

namespace personad {

enum class LogFormat { text, json, journal };

// "journal" when asked for, or when format is "text" and stderr is the journal stream
// ($JOURNAL_STREAM matches stderr's device and inode).
LogFormat resolve_log_format(const LogConfig& config);

// A logger writing to stderr (text or JSON lines) or to journald.
std::shared_ptr<spdlog::logger> make_logger(const LogConfig& config, LogFormat format,
                                            const std::string& name = "personad");

// The JSON-lines formatter: events pass through with ts and level added; other messages become
// {"ts","level","msg"}.
std::unique_ptr<spdlog::formatter> make_json_formatter();

struct LogField {
  std::string_view name;
  std::string value;
};

// Structured events over a logger. Text: `EVENT k=v k="v w"`; JSON: {"event":EVENT,"k":"v"};
// journald: MESSAGE=<text form> plus one upper-case field per name (key → PERSONA_KEY, …).
class EventLog {
 public:
  EventLog(std::shared_ptr<spdlog::logger> logger, LogFormat format);

  void event(spdlog::level::level_enum level, std::string_view name,
             std::initializer_list<LogField> fields) const;
  void event(spdlog::level::level_enum level, std::string_view name,
             const std::vector<LogField>& fields) const;
  // `transition key=K remote_id=ID from=A to=B remote_status=S reason="…"`
  void transition(const Job& job, const Transition& t) const;

  spdlog::logger& logger() const { return *logger_; }
  const std::shared_ptr<spdlog::logger>& logger_ptr() const { return logger_; }
  LogFormat format() const { return format_; }

 private:
  std::shared_ptr<spdlog::logger> logger_;
  LogFormat format_;
};

// A line that may repeat very fast (an accept that fails with EMFILE, a flood of refused
// connections) is written once, then at most once per interval with how many were held back
// meanwhile, so a fault that repeats 400,000 times a second costs a line a minute, not the disk.
// One object per kind of line; not thread-safe (each lives on one event loop).
class LogThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogThrottle(Clock::duration interval = std::chrono::seconds(60)) : interval_(interval) {}

  struct Verdict {
    bool write = false;            // write this occurrence now
    std::uint64_t suppressed = 0;  // when writing: occurrences held back since the last line
    Clock::duration since{};       // … which was written this long ago
  };
  Verdict admit(Clock::time_point now);
  // Occurrences held back since the last written line, forgotten by this call: for a closing
  // summary when the fault ends ("accepting again after N failures").
  std::uint64_t take_suppressed();
  std::uint64_t pending() const { return suppressed_; }
  Clock::duration interval() const { return interval_; }

 private:
  Clock::duration interval_;
  std::optional<Clock::time_point> last_written_;
  std::uint64_t suppressed_ = 0;
};

// `message`, or nothing, through `throttle`; a line written after others were held back ends
// with " (N more like this in the last Ts)", T the time since the previous line.
void log_throttled(spdlog::logger& logger, LogThrottle& throttle, spdlog::level::level_enum level,
                   std::string_view message,
                   LogThrottle::Clock::time_point now = LogThrottle::Clock::now());
// The suffix above; "" for 0.
std::string suppressed_suffix(std::uint64_t suppressed, LogThrottle::Clock::duration over);

// The text form of an event (also the journald MESSAGE).
std::string format_event_text(std::string_view name, const std::vector<LogField>& fields);
// The JSON form of an event, without ts/level (the JSON formatter adds them).
std::string format_event_json(std::string_view name, const std::vector<LogField>& fields);
// journald field name for an event field: key → PERSONA_KEY, from → FROM_STATE, …
std::string journal_field_name(std::string_view name);

}  // namespace personad
