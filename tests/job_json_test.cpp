// Job JSON: every field the contract names, null handling, RFC 3339 times, spec as sent,
// history rows, stats, and spec parsing from the control socket.
#include "personad/job_json.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace personad {
namespace {

namespace json = boost::json;

Job sample() {
  Job j;
  j.id = 4;
  j.key = "acme-jane-01";
  j.state = State::pending;
  j.client_ref = "c0ffee00-0000-4000-8000-000000000001";
  j.spec.key = j.key;
  j.spec.gender = "f";
  j.spec.creator_name = "Jane Doe";
  j.spec.video_scene = "office";
  j.spec.lipsync_input = "https://cdn.example.com/l.mp4";
  j.spec.labels = {"acme"};
  j.remote_id = "r-1";
  j.remote_status = "processing";
  j.created_at = from_unix_ms(1'700'000'000'000);
  j.updated_at = from_unix_ms(1'700'000'060'000);
  j.submitted_at = from_unix_ms(1'700'000'001'000);
  j.next_poll_at = from_unix_ms(1'700'000'300'000);
  j.polls = 2;
  j.attempts = 1;
  return j;
}

TEST(JobJson, HasEveryContractField) {
  json::object o = job_to_json(sample());
  for (const char* f : {"key", "state", "remote_id", "remote_status", "failed_reason", "client_ref",
                        "created_at", "submitted_at", "updated_at", "next_poll_at", "polls",
                        "attempts", "spec"})
    EXPECT_TRUE(o.contains(f)) << f;
  EXPECT_EQ(o["state"], "pending");
  EXPECT_EQ(o["failed_reason"], nullptr);
  EXPECT_EQ(o["created_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(o["next_poll_at"], "2023-11-14T22:18:20.000Z");
  EXPECT_EQ(o["polls"], 2);
}

TEST(JobJson, AJobWaitingForTheOperatorSaysWhy) {
  Job j = sample();
  j.state = State::submitting;
  EXPECT_EQ(job_to_json(j)["needs_operator"], false);
  EXPECT_EQ(job_to_json(j)["operator_reason"], nullptr);
  j.needs_operator = true;
  j.operator_reason = "reconcile ambiguous: 2 remote personas match (a, b)";
  json::object o = job_to_json(j);
  EXPECT_EQ(o["needs_operator"], true);
  EXPECT_EQ(o["operator_reason"], "reconcile ambiguous: 2 remote personas match (a, b)");
}

TEST(JobJson, SpecShowsTheRequestAsSent) {
  json::object spec = job_to_json(sample())["spec"].as_object();
  EXPECT_EQ(spec["creator_name"], "Jane Doe");
  EXPECT_EQ(spec["keywords"], nullptr);
  json::array labels{"acme", "personad:c0ffee00-0000-4000-8000-000000000001"};
  EXPECT_EQ(spec["labels"], labels);
  EXPECT_FALSE(spec.contains("key"));
}

TEST(JobJson, FinalJobsHaveNoNextPoll) {
  Job j = sample();
  j.state = State::done;
  EXPECT_EQ(job_to_json(j)["next_poll_at"], nullptr);
  j.submitted_at.reset();
  EXPECT_EQ(job_to_json(j)["submitted_at"], nullptr);
}

TEST(JobJson, HistoryRows) {
  std::vector<Transition> h(2);
  h[0].at = from_unix_ms(0);
  h[0].to = State::queued;
  h[0].reason = "enqueued";
  h[1].at = from_unix_ms(1000);
  h[1].from = State::queued;
  h[1].to = State::submitting;
  json::array a = history_to_json(h);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].at("from"), nullptr);
  EXPECT_EQ(a[0].at("to"), "queued");
  EXPECT_EQ(a[0].at("remote_status"), nullptr);
  EXPECT_EQ(a[1].at("from"), "queued");
  EXPECT_EQ(a[1].at("at"), "1970-01-01T00:00:01.000Z");
  for (const char* f : {"at", "from", "to", "remote_status", "reason"})
    EXPECT_TRUE(a[1].as_object().contains(f)) << f;
}

TEST(JobJson, StatsCountEveryState) {
  StoreStats s;
  s.counts[State::done] = 3;
  s.counts[State::pending] = 2;
  s.polls = 17;
  json::object o = stats_to_json(s);
  EXPECT_EQ(o["counts"].as_object().size(), 7u);
  EXPECT_EQ(o["counts"].at("queued"), 0);
  EXPECT_EQ(o["counts"].at("done"), 3);
  EXPECT_EQ(o["total"], 5);
  EXPECT_EQ(o["polls"], 17);
  EXPECT_EQ(o["next_due_at"], nullptr);
}

TEST(JobJson, SpecRoundTripsThroughTheControlForm) {
  PersonaSpec s = sample().spec;
  s.keywords = "calm";
  s.webhook_url = "https://hooks.example.com/x";
  auto back = spec_from_json(spec_to_json(s));
  ASSERT_TRUE(back) << back.message();
  EXPECT_EQ(*back, s);
}

TEST(JobJson, SpecParsingNamesTheBadField) {
  auto r = spec_from_json(json::parse(R"({"key":"k","gender":3})"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("gender"), std::string::npos);
  auto u = spec_from_json(json::parse(R"({"key":"k","colour":"red"})"));
  ASSERT_FALSE(u);
  EXPECT_NE(u.message().find("colour"), std::string::npos);
  auto l = spec_from_json(json::parse(R"({"key":"k","labels":[1]})"));
  ASSERT_FALSE(l);
  EXPECT_NE(l.message().find("labels"), std::string::npos);
}

}  // namespace
}  // namespace personad
