// Tests of the simulator's time helpers and configuration parsing: durations, RFC 3339,
// the scaled clock's real-time conversion and HOST:PORT parsing.
#include "sim_clock.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "sim_config.hpp"

namespace creatify_sim {
namespace {

using namespace std::chrono;

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), duration_cast<SimDuration>(milliseconds(250)));
  EXPECT_EQ(parse_duration("30s"), duration_cast<SimDuration>(seconds(30)));
  EXPECT_EQ(parse_duration("5m"), duration_cast<SimDuration>(minutes(5)));
  EXPECT_EQ(parse_duration("4h"), duration_cast<SimDuration>(hours(4)));
  EXPECT_EQ(parse_duration("2d"), duration_cast<SimDuration>(hours(48)));
  EXPECT_EQ(parse_duration("0s"), SimDuration::zero());
}

TEST(ParseDuration, RejectsMalformedInput) {
  for (const char* bad : {"", "4", "h", "4x", "-1h", "1.5h", " 4h", "4h ", "4hh", "99999999999d"})
    EXPECT_FALSE(parse_duration(bad)) << bad;
}

TEST(FormatRfc3339, WholeSecondsInUtc) {
  const SimTime t =
      sys_days(year(2023) / 11 / 7) + hours(5) + minutes(31) + seconds(56) + milliseconds(999);
  EXPECT_EQ(format_rfc3339(t), "2023-11-07T05:31:56Z");
}

TEST(ScaledClock, RunsFasterThanRealTime) {
  ScaledClock clock(1000.0);
  const SimTime before = clock.now();
  std::this_thread::sleep_for(milliseconds(20));
  const auto elapsed = clock.now() - before;
  EXPECT_GE(elapsed, duration_cast<SimDuration>(seconds(20)));
  EXPECT_LT(elapsed, duration_cast<SimDuration>(seconds(60)));  // generous for a loaded host
}

TEST(ScaledClock, RealDelayDividesByTheScale) {
  ScaledClock clock(3600.0);
  EXPECT_EQ(duration_cast<milliseconds>(clock.real_delay(hours(1))), milliseconds(1000));
  EXPECT_EQ(clock.real_delay(-hours(1)), RealDuration::zero());
}

TEST(ScaledClock, SimSpanMultipliesByTheScale) {
  ScaledClock clock(3600.0);
  EXPECT_EQ(duration_cast<minutes>(clock.sim_span(seconds(2))), minutes(120));
  EXPECT_EQ(clock.sim_span(-seconds(1)), SimDuration::zero());
  ManualClock manual{SimTime{}};
  EXPECT_EQ(manual.sim_span(milliseconds(1500)), duration_cast<SimDuration>(milliseconds(1500)));
}

TEST(ScaledClock, AdvanceSkipsSimulatedTime) {
  ScaledClock clock(1.0);
  const SimTime before = clock.now();
  clock.advance(hours(10));
  EXPECT_GE(clock.now() - before, duration_cast<SimDuration>(hours(10)));
}

TEST(ParseHostPort, AcceptsNamesV4AndBracketedV6) {
  const auto a = parse_host_port("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  const auto b = parse_host_port("localhost:0");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "localhost");
  EXPECT_EQ(b->port, 0);
  const auto c = parse_host_port("[::1]:9000");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 9000);
}

TEST(ParseHostPort, RejectsMalformedInput) {
  for (const char* bad :
       {"", "127.0.0.1", ":80", "host:", "host:65536", "host:8x", "::1:80", "[]:80"})
    EXPECT_FALSE(parse_host_port(bad)) << bad;
}

}  // namespace
}  // namespace creatify_sim
