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

// ---------------------------------------------------------------------------------------------
// UTF-8 safety (issue 11, defect 9): JSON output is always valid UTF-8, whatever bytes a key
// from a URL or an API's text brought in.

// The test's own check (RFC 3629), independent of the code under test.
bool strictly_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2) || c > 0xF4) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    const auto c1 = static_cast<unsigned char>(s[i + (n > 1 ? 1 : 0)]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F))
      return false;
    i += n;
  }
  return true;
}

TEST(JobJson, OutputIsValidUtf8WhateverTheBytes) {
  Job j = sample();
  j.key = "key\xff";
  j.spec.key = j.key;
  j.failed_reason = std::string("API said: caf\xc3 \xed\xa0\x80 \xf8\x88\x80\x80\x80 end");
  j.remote_status = "proc\xe2\x82";  // truncated sequence
  j.spec.labels = {"ok", "\xc0\xaf"};  // overlong '/'
  const std::string text = json::serialize(job_to_json(j));
  EXPECT_TRUE(strictly_utf8(text)) << text;
  // Every valid part survives; each invalid byte becomes U+FFFD.
  const json::value back = json::parse(text);
  EXPECT_EQ(back.at("key"), "key\xEF\xBF\xBD");
  EXPECT_EQ(back.at("remote_status"), "proc\xEF\xBF\xBD\xEF\xBF\xBD");

  Transition t;
  t.to = State::failed;
  t.reason = "bad \xff";
  EXPECT_TRUE(strictly_utf8(json::serialize(history_to_json({t}))));
  StoreStats st;
  st.next_due_key = "k\xfe";
  EXPECT_TRUE(strictly_utf8(json::serialize(stats_to_json(st))));
  PersonaSpec spec = sample().spec;
  spec.creator_name = "\x80";
  EXPECT_TRUE(strictly_utf8(json::serialize(spec_to_json(spec))));
}

TEST(JobJson, ValidTextIsLeftAsItIs) {
  Job j = sample();
  j.failed_reason = "Zoë, 山田, 🎬 — fine";
  const json::object o = job_to_json(j);
  EXPECT_EQ(o.at("failed_reason"), "Zoë, 山田, 🎬 — fine");
}

TEST(Utf8, ValidUtf8ReplacesOnlyInvalidBytes) {
  EXPECT_TRUE(is_valid_utf8("plain, Zoë, 山田, 🎬"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong
  // (A hex escape takes every hex digit that follows: "b" is split off.)
  EXPECT_EQ(valid_utf8("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(valid_utf8("Zoë"), "Zoë");
  json::value v = {{"k\xff", json::array{"x\xfe", 1, nullptr}}, {"ok", "fine"}};
  make_valid_utf8(v);
  EXPECT_TRUE(strictly_utf8(json::serialize(v)));
  EXPECT_EQ(v.at("ok"), "fine");
}

}  // namespace
}  // namespace personad
