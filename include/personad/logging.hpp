// Log lines an operator can read at 3 a.m.: spdlog sinks for text, JSON lines and journald, and
// structured events (one line per transition) with the same fields in every format.
#pragma once

#include <initializer_list>
#include <memory>
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

// The text form of an event (also the journald MESSAGE).
std::string format_event_text(std::string_view name, const std::vector<LogField>& fields);
// The JSON form of an event, without ts/level (the JSON formatter adds them).
std::string format_event_json(std::string_view name, const std::vector<LogField>& fields);
// journald field name for an event field: key → PERSONA_KEY, from → FROM_STATE, …
std::string journal_field_name(std::string_view name);

}  // namespace personad
