// Job: state names, the allowed transitions, remote status mapping, labels, times.
#include "personad/job.hpp"

#include <gtest/gtest.h>

#include <set>

namespace personad {
namespace {

TEST(Job, StateNamesRoundTrip) {
  for (State s : all_states()) EXPECT_EQ(parse_state(to_string(s)), s);
  EXPECT_FALSE(parse_state("running"));
  EXPECT_EQ(all_states().size(), 7u);
}

TEST(Job, FinalStates) {
  std::set<State> finals;
  for (State s : all_states())
    if (is_final(s)) finals.insert(s);
  EXPECT_EQ(finals, (std::set<State>{State::done, State::failed, State::expired, State::cancelled}));
}

TEST(Job, TransitionsFollowTheContract) {
  EXPECT_TRUE(transition_allowed(State::queued, State::submitting));
  EXPECT_TRUE(transition_allowed(State::submitting, State::pending));
  EXPECT_TRUE(transition_allowed(State::submitting, State::failed));
  EXPECT_TRUE(transition_allowed(State::pending, State::done));
  EXPECT_TRUE(transition_allowed(State::pending, State::failed));
  EXPECT_TRUE(transition_allowed(State::pending, State::expired));
  EXPECT_TRUE(transition_allowed(State::expired, State::pending));  // retry
  EXPECT_TRUE(transition_allowed(State::failed, State::queued));    // retry --resubmit
  for (State s : {State::queued, State::submitting, State::pending})
    EXPECT_TRUE(transition_allowed(s, State::cancelled)) << to_string(s);
  for (State s : {State::done, State::failed, State::expired, State::cancelled})
    EXPECT_FALSE(transition_allowed(s, State::cancelled)) << to_string(s);
  EXPECT_FALSE(transition_allowed(State::queued, State::pending));  // never without a create
  EXPECT_FALSE(transition_allowed(State::queued, State::done));
  EXPECT_FALSE(transition_allowed(State::done, State::pending));
  EXPECT_FALSE(transition_allowed(State::cancelled, State::queued));
}

TEST(Job, RemoteStatusMapping) {
  StatusPolicy p;
  EXPECT_EQ(classify_remote(p, "done", true), RemoteVerdict::done);
  EXPECT_EQ(classify_remote(p, "done", false), RemoteVerdict::pending);  // awaiting approval
  EXPECT_TRUE(awaiting_approval(p, "done", false));
  EXPECT_FALSE(awaiting_approval(p, "reviewing", false));
  EXPECT_EQ(classify_remote(p, "failed", false), RemoteVerdict::failed);
  EXPECT_EQ(classify_remote(p, "rejected", false), RemoteVerdict::failed);
  for (const char* s : {"pending", "processing", "voice_creating", "video_validating",
                        "crop_and_matte", "reviewing", "something_new"})
    EXPECT_EQ(classify_remote(p, s, true), RemoteVerdict::pending) << s;
  p.require_active = false;
  EXPECT_EQ(classify_remote(p, "done", false), RemoteVerdict::done);
  p.done_statuses = {"done", "completed"};
  p.failed_statuses = {"error"};
  EXPECT_EQ(classify_remote(p, "completed", false), RemoteVerdict::done);
  EXPECT_EQ(classify_remote(p, "error", false), RemoteVerdict::failed);
  EXPECT_EQ(classify_remote(p, "rejected", false), RemoteVerdict::pending);
}

TEST(Job, DocumentedStatuses) {
  EXPECT_TRUE(is_documented_status("crop_and_matte"));
  EXPECT_FALSE(is_documented_status("quantum_review"));
}

TEST(Job, LabelsAsSentAppendPersonadLabel) {
  PersonaSpec s;
  s.labels = {"acme", "q3"};
  EXPECT_EQ(labels_as_sent(s, "abc"),
            (std::vector<std::string>{"acme", "q3", "personad:abc"}));
}

TEST(Job, ClientRefsAreUniqueUuids) {
  std::set<std::string> refs;
  for (int i = 0; i < 1000; ++i) refs.insert(new_client_ref());
  EXPECT_EQ(refs.size(), 1000u);
  EXPECT_EQ(refs.begin()->size(), 36u);
}

// Version 7: the time first, so refs made later sort later (the client_ref index grows at its
// end), then random bits, so refs made in the same millisecond still differ.
TEST(Job, ClientRefsAreTimeOrderedUuidV7) {
  const std::int64_t t = 1'764'633'600'123;  // 2025-12-02 00:00:00.123 UTC
  const std::string ref = new_client_ref(t);
  ASSERT_EQ(ref.size(), 36u);
  EXPECT_EQ(ref.substr(0, 8) + ref.substr(9, 4), "019adc5be07b");  // 48 bits of t, in hex
  EXPECT_EQ(ref[14], '7');                                          // version
  EXPECT_NE(std::string("89ab").find(ref[19]), std::string::npos);  // RFC 9562 variant
  std::set<std::string> same_ms;
  for (int i = 0; i < 1000; ++i) same_ms.insert(new_client_ref(t));
  EXPECT_EQ(same_ms.size(), 1000u);
  EXPECT_LT(new_client_ref(t), new_client_ref(t + 1));
  EXPECT_LT(new_client_ref(t + 1), new_client_ref(t + 1'000'000));
}

TEST(Job, LocalMediaDetection) {
  EXPECT_FALSE(is_local_media("https://cdn.example.com/a.mp4"));
  EXPECT_FALSE(is_local_media("HTTP://cdn.example.com/a.mp4"));
  EXPECT_TRUE(is_local_media("/data/a.mp4"));
  EXPECT_TRUE(is_local_media("file:/data/a.mp4"));
  EXPECT_TRUE(is_local_media("videos/a.mov"));
  EXPECT_FALSE(is_local_media(""));
}

TEST(Clock, Rfc3339RoundTrip) {
  TimePoint t = from_unix_ms(1'764'028'712'123);
  EXPECT_EQ(format_rfc3339(t), "2025-11-24T23:58:32.123Z");
  EXPECT_EQ(parse_rfc3339("2025-11-24T23:58:32.123Z"), t);
  EXPECT_EQ(parse_rfc3339("2025-11-24T23:58:32Z"), from_unix_ms(1'764'028'712'000));
  EXPECT_EQ(parse_rfc3339("2025-11-25T01:58:32.123+02:00"), t);
  EXPECT_EQ(parse_rfc3339("2023-11-07T05:31:56.123456Z"), from_unix_ms(1'699'335'116'123));
  EXPECT_FALSE(parse_rfc3339("2025-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("yesterday"));
  EXPECT_FALSE(parse_rfc3339("2025-11-24T23:58:32Zjunk"));
}

TEST(Clock, ScaledClockRunsFaster) {
  ScaledClock c(1000, from_unix_ms(0));
  EXPECT_EQ(c.real_delay(Millis(10'000)), std::chrono::milliseconds(10));
  TimePoint a = c.now();
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
  while (std::chrono::steady_clock::now() < until) {
  }
  EXPECT_GE(c.now() - a, Millis(20'000));
}

}  // namespace
}  // namespace personad
