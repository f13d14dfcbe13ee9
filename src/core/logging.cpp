// Sinks and formatters for text, JSON lines and journald, and the structured event writer.
#include "personad/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <cctype>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

namespace personad {

namespace {

std::string json_quote(std::string_view s) {
  return boost::json::serialize(boost::json::string(s));
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v)
    if (std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '=' || c == '\\')
      return true;
  return false;
}

std::string quote_text(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

// Wraps every message as one JSON object: events (payload already a JSON object) get ts and
// level spliced in; plain messages become {"ts","level","msg"}.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto ts = std::chrono::time_point_cast<std::chrono::milliseconds>(msg.time);
    auto level = spdlog::level::to_string_view(msg.level);
    std::string head = "{\"ts\":\"" + format_rfc3339(TimePoint(ts.time_since_epoch())) +
                       "\",\"level\":\"" + std::string(level.data(), level.size()) + "\",";
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string line;
    if (payload.size() >= 2 && payload.front() == '{' && payload.back() == '}') {
      line = head + std::string(payload.substr(1));
    } else {
      line = head + "\"msg\":" + json_quote(payload) + "}";
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

int journal_priority(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

// Plain (non-event) messages under journald: MESSAGE and PRIORITY only.
class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text(msg.payload.data(), msg.payload.size());
    sd_journal_send("MESSAGE=%s", text.c_str(), "PRIORITY=%d", journal_priority(msg.level),
                    "SYSLOG_IDENTIFIER=personad", nullptr);
  }
  void flush_() override {}
};

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

std::unique_ptr<spdlog::formatter> make_json_formatter() {
  return std::make_unique<JsonFormatter>();
}

LogFormat resolve_log_format(const LogConfig& config) {
  if (config.format == "json") return LogFormat::json;
  if (config.format == "journal") return LogFormat::journal;
  return stderr_is_journal() ? LogFormat::journal : LogFormat::text;
}

std::shared_ptr<spdlog::logger> make_logger(const LogConfig& config, LogFormat format,
                                            const std::string& name) {
  spdlog::sink_ptr sink;
  if (format == LogFormat::journal) {
    sink = std::make_shared<JournalSink>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  if (format == LogFormat::json) {
    logger->set_formatter(make_json_formatter());
  } else if (format == LogFormat::text) {
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc));
  } else {
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>("%v"));
  }
  logger->set_level(spdlog::level::from_str(config.level));
  logger->flush_on(spdlog::level::trace);  // one line at a time; logs are few and precious
  return logger;
}

std::string format_event_text(std::string_view name, const std::vector<LogField>& fields) {
  std::string out(name);
  for (const auto& f : fields) {
    out += ' ';
    out += f.name;
    out += '=';
    out += (f.name == "reason" || needs_quotes(f.value)) ? quote_text(f.value) : f.value;
  }
  return out;
}

std::string format_event_json(std::string_view name, const std::vector<LogField>& fields) {
  std::string out = "{\"event\":" + json_quote(name);
  for (const auto& f : fields) {
    out += ',';
    out += json_quote(f.name);
    out += ':';
    out += json_quote(f.value);
  }
  out += '}';
  return out;
}

std::string journal_field_name(std::string_view name) {
  if (name == "key") return "PERSONA_KEY";
  if (name == "from") return "FROM_STATE";
  if (name == "to") return "TO_STATE";
  std::string out;
  for (char c : name)
    out += std::isalnum(static_cast<unsigned char>(c))
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : '_';
  return out;
}

LogThrottle::Verdict LogThrottle::admit(Clock::time_point now) {
  if (!last_written_ || now - *last_written_ >= interval_) {
    const Clock::duration since = last_written_ ? now - *last_written_ : Clock::duration{};
    last_written_ = now;
    return Verdict{true, std::exchange(suppressed_, 0), since};
  }
  ++suppressed_;
  return Verdict{};
}

std::uint64_t LogThrottle::take_suppressed() { return std::exchange(suppressed_, 0); }

std::string suppressed_suffix(std::uint64_t suppressed, LogThrottle::Clock::duration over) {
  if (suppressed == 0) return "";
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(over).count();
  return " (" + std::to_string(suppressed) + " more like this in the last " +
         std::to_string(std::max<std::int64_t>(secs, 1)) + "s)";
}

void log_throttled(spdlog::logger& logger, LogThrottle& throttle, spdlog::level::level_enum level,
                   std::string_view message, LogThrottle::Clock::time_point now) {
  if (!logger.should_log(level)) return;
  const auto v = throttle.admit(now);
  if (!v.write) return;
  logger.log(level, "{}{}", message, suppressed_suffix(v.suppressed, v.since));
}

EventLog::EventLog(std::shared_ptr<spdlog::logger> logger, LogFormat format)
    : logger_(std::move(logger)), format_(format) {}

void EventLog::event(spdlog::level::level_enum level, std::string_view name,
                     std::initializer_list<LogField> fields) const {
  event(level, name, std::vector<LogField>(fields));
}

void EventLog::event(spdlog::level::level_enum level, std::string_view name,
                     const std::vector<LogField>& fields) const {
  if (!logger_->should_log(level)) return;
  switch (format_) {
    case LogFormat::text:
      logger_->log(level, "{}", format_event_text(name, fields));
      return;
    case LogFormat::json:
      logger_->log(level, "{}", format_event_json(name, fields));
      return;
    case LogFormat::journal: {
      std::vector<std::string> lines;
      lines.push_back("MESSAGE=" + format_event_text(name, fields));
      lines.push_back("PRIORITY=" + std::to_string(journal_priority(level)));
      lines.push_back("SYSLOG_IDENTIFIER=personad");
      lines.push_back("PERSONAD_EVENT=" + std::string(name));
      for (const auto& f : fields) lines.push_back(journal_field_name(f.name) + "=" + f.value);
      std::vector<iovec> iov;
      for (auto& l : lines) iov.push_back(iovec{l.data(), l.size()});
      sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
      return;
    }
  }
}

void EventLog::transition(const Job& job, const Transition& t) const {
  event(spdlog::level::info, "transition",
        {{"key", job.key},
         {"remote_id", job.remote_id.value_or("")},
         {"from", t.from ? std::string(to_string(*t.from)) : std::string("none")},
         {"to", std::string(to_string(t.to))},
         {"remote_status", t.remote_status},
         {"reason", t.reason}});
}

}  // namespace personad
