// Logging: the transition line in text and JSON, quoting, journald field names, JSON wrapping
// of plain messages, and that a secret handed to the logger is not invented by it; repeated
// lines throttled to one, then one a minute with a count.
#include "personad/logging.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <sstream>

namespace personad {
namespace {

using ::testing::HasSubstr;

Job sample_job() {
  Job j;
  j.key = "acme-jane-01";
  j.remote_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a";
  return j;
}

Transition sample_transition() {
  Transition t;
  t.from = State::pending;
  t.to = State::done;
  t.remote_status = "done";
  t.reason = "process_status=done is_active=true";
  return t;
}

TEST(Logging, TransitionTextLineHasTheContractFields) {
  std::vector<LogField> f{{"key", "acme-jane-01"},
                          {"remote_id", "ID"},
                          {"from", "pending"},
                          {"to", "done"},
                          {"remote_status", "done"},
                          {"reason", "all good"}};
  EXPECT_EQ(format_event_text("transition", f),
            "transition key=acme-jane-01 remote_id=ID from=pending to=done remote_status=done "
            "reason=\"all good\"");
}

TEST(Logging, TextQuotesValuesWithSpacesQuotesOrEmpty) {
  std::vector<LogField> f{{"a", ""}, {"b", "x y"}, {"c", "say \"hi\""}, {"d", "plain"}};
  EXPECT_EQ(format_event_text("e", f), "e a=\"\" b=\"x y\" c=\"say \\\"hi\\\"\" d=plain");
}

TEST(Logging, JsonEventIsAnObjectWithEventAndFields) {
  std::vector<LogField> f{{"key", "k"}, {"reason", "a \"quoted\" reason\n"}};
  auto v = boost::json::parse(format_event_json("transition", f));
  EXPECT_EQ(v.at("event"), "transition");
  EXPECT_EQ(v.at("key"), "k");
  EXPECT_EQ(v.at("reason"), "a \"quoted\" reason\n");
}

TEST(Logging, JournalFieldNames) {
  EXPECT_EQ(journal_field_name("key"), "PERSONA_KEY");
  EXPECT_EQ(journal_field_name("remote_id"), "REMOTE_ID");
  EXPECT_EQ(journal_field_name("from"), "FROM_STATE");
  EXPECT_EQ(journal_field_name("to"), "TO_STATE");
  EXPECT_EQ(journal_field_name("remote_status"), "REMOTE_STATUS");
  EXPECT_EQ(journal_field_name("reason"), "REASON");
}

TEST(Logging, JsonFormatWrapsEventsAndPlainMessages) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(make_json_formatter());
  auto logger = std::make_shared<spdlog::logger>("t", sink);
  EventLog log(logger, LogFormat::json);
  log.transition(sample_job(), sample_transition());
  logger->warn("plain \"text\" message");
  std::istringstream lines(out.str());
  std::string first, second;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  auto a = boost::json::parse(first);
  EXPECT_EQ(a.at("event"), "transition");
  EXPECT_EQ(a.at("level"), "info");
  EXPECT_EQ(a.at("key"), "acme-jane-01");
  EXPECT_EQ(a.at("from"), "pending");
  EXPECT_EQ(a.at("to"), "done");
  EXPECT_TRUE(parse_rfc3339(a.at("ts").as_string()).has_value());
  auto b = boost::json::parse(second);
  EXPECT_EQ(b.at("level"), "warning");
  EXPECT_EQ(b.at("msg"), "plain \"text\" message");
}

TEST(Logging, EventLogWritesOneTransitionLine) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("t", sink);
  logger->set_pattern("%v");
  EventLog log(logger, LogFormat::text);
  log.transition(sample_job(), sample_transition());
  EXPECT_EQ(out.str(),
            "transition key=acme-jane-01 remote_id=3c90c3cc-0d44-4b50-8888-8dd25736052a "
            "from=pending to=done remote_status=done reason=\"process_status=done "
            "is_active=true\"\n");
}

TEST(Logging, FirstTransitionHasFromNone) {
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_pattern("%v");
  EventLog log(logger, LogFormat::text);
  Job j;
  j.key = "k";
  Transition t;
  t.to = State::queued;
  t.reason = "enqueued";
  log.transition(j, t);
  EXPECT_THAT(out.str(), HasSubstr("remote_id=\"\" from=none to=queued"));
}

TEST(LogThrottle, FirstLineThenOneAnIntervalWithTheCountHeldBack) {
  using namespace std::chrono_literals;
  LogThrottle t(60s);
  const auto t0 = LogThrottle::Clock::time_point{} + 1000s;
  auto v = t.admit(t0);
  EXPECT_TRUE(v.write);
  EXPECT_EQ(v.suppressed, 0u);
  for (int i = 1; i <= 1000; ++i) EXPECT_FALSE(t.admit(t0 + i * 10ms).write);
  EXPECT_EQ(t.pending(), 1000u);
  v = t.admit(t0 + 60s);
  EXPECT_TRUE(v.write);
  EXPECT_EQ(v.suppressed, 1000u);
  EXPECT_EQ(v.since, 60s);
  EXPECT_FALSE(t.admit(t0 + 61s).write);
  EXPECT_FALSE(t.admit(t0 + 62s).write);
  EXPECT_EQ(t.take_suppressed(), 2u);
  EXPECT_EQ(t.pending(), 0u);
  v = t.admit(t0 + 200s);
  EXPECT_TRUE(v.write);
  EXPECT_EQ(v.suppressed, 0u);
}

TEST(LogThrottle, LogThrottledWritesTheLineAndLaterItsCount) {
  using namespace std::chrono_literals;
  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_pattern("%l %v");
  LogThrottle t(60s);
  const auto t0 = LogThrottle::Clock::time_point{} + 1000s;
  for (int i = 0; i < 400'000; ++i)
    log_throttled(*logger, t, spdlog::level::warn, "accept failed: Too many open files",
                  t0 + std::chrono::microseconds(i * 100));  // 40 s of a fault
  log_throttled(*logger, t, spdlog::level::warn, "accept failed: Too many open files", t0 + 90s);
  EXPECT_EQ(out.str(),
            "warning accept failed: Too many open files\n"
            "warning accept failed: Too many open files (399999 more like this in the last 90s)\n");
  // Below the logger's level nothing is counted or written.
  logger->set_level(spdlog::level::err);
  log_throttled(*logger, t, spdlog::level::warn, "x", t0 + 500s);
  EXPECT_EQ(t.pending(), 0u);
  EXPECT_EQ(suppressed_suffix(0, 5s), "");
  EXPECT_EQ(suppressed_suffix(3, 5s), " (3 more like this in the last 5s)");
}

}  // namespace
}  // namespace personad
