// Tests of the persona book: the lifecycle over simulated time with a manual clock, outcomes
// (markers, fail rate, seed), pinning, label duplicates, the webhook queue and the JSON shape.
#include "persona_book.hpp"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <map>
#include <regex>
#include <set>

#include "persona_json.hpp"

namespace creatify_sim {
namespace {

using namespace std::chrono;

const SimTime kStart = sys_days(year(2024) / 1 / 1);

PersonaInput input(std::string name, std::vector<std::string> labels = {}) {
  PersonaInput in;
  in.gender = "f";
  in.creator_name = std::move(name);
  in.video_scene = "office";
  in.lipsync_input = "https://cdn.example.com/lipsync.mp4";
  in.consent_video = "https://cdn.example.com/consent.mp4";
  in.labels = std::move(labels);
  return in;
}

BookSettings settings(double fail_rate = 0.0, std::uint64_t seed = 1) {
  return BookSettings{hours(1), fail_rate, seed};
}

// Steps the clock a minute at a time until the persona is final; returns the statuses seen.
std::vector<std::string> walk_lifecycle(PersonaBook& book, ManualClock& clock, const Persona& p) {
  std::vector<std::string> seen;
  for (int minute = 0; minute < 24 * 60; ++minute) {
    const std::string status(book.status_of(p).process_status);
    if (seen.empty() || seen.back() != status) seen.push_back(status);
    if (is_final_status(status)) break;
    clock.advance(minutes(1));
  }
  return seen;
}

TEST(PersonaBook, NewPersonaIsPendingAndInactive) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const Persona& p = book.create(input("Jane"));
  const PersonaStatus s = book.status_of(p);
  EXPECT_EQ(s.process_status, "pending");
  EXPECT_FALSE(s.is_active);
  EXPECT_FALSE(s.failed_reason);
  EXPECT_FALSE(s.voice_ready);
  EXPECT_EQ(p.created_at, kStart);
  EXPECT_EQ(s.updated_at, kStart);
}

TEST(PersonaBook, WalksEveryStageInOrderThenDone) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const Persona& p = book.create(input("Jane [done]"));
  const std::vector<std::string> expected = {
      "pending",   "processing", "voice_creating", "video_validating", "crop_and_matte",
      "reviewing", "done"};
  EXPECT_EQ(walk_lifecycle(book, clock, p), expected);
  const PersonaStatus s = book.status_of(p);
  EXPECT_TRUE(s.is_active);
  EXPECT_TRUE(s.voice_ready);
  EXPECT_EQ(s.updated_at, p.final_at());
}

TEST(PersonaBook, EachStageLastsHalfToOneAndAHalfStageDurations) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  for (int i = 0; i < 200; ++i) {
    const Persona& p = book.create(input("Jane"));
    SimDuration previous{};
    for (const SimDuration end : p.stage_end) {
      EXPECT_GE(end - previous, minutes(30));
      EXPECT_LE(end - previous, minutes(90));
      previous = end;
    }
  }
}

TEST(PersonaBook, UpdatedAtIsTheStartOfTheCurrentStage) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const Persona& p = book.create(input("Jane"));
  clock.set(p.created_at + p.stage_end[1] + seconds(1));  // just into voice_creating
  const PersonaStatus s = book.status_of(p);
  EXPECT_EQ(s.process_status, "voice_creating");
  EXPECT_EQ(s.updated_at, p.created_at + p.stage_end[1]);
}

TEST(PersonaBook, FailMarkerFailsAfterVideoValidationWithAReason) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const Persona& p = book.create(input("Jane [fail]"));
  const std::vector<std::string> seen = walk_lifecycle(book, clock, p);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[seen.size() - 2], "video_validating");
  EXPECT_EQ(seen.back(), "failed");
  const PersonaStatus s = book.status_of(p);
  EXPECT_FALSE(s.is_active);
  ASSERT_TRUE(s.failed_reason);
  EXPECT_FALSE(s.failed_reason->empty());
}

TEST(PersonaBook, RejectMarkerIsRejectedAfterReview) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const Persona& p = book.create(input("Jane [reject]"));
  const std::vector<std::string> seen = walk_lifecycle(book, clock, p);
  EXPECT_EQ(seen[seen.size() - 2], "reviewing");
  EXPECT_EQ(seen.back(), "rejected");
  ASSERT_TRUE(book.status_of(p).failed_reason);
}

TEST(PersonaBook, MarkersWinOverTheFailRate) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings(1.0));
  EXPECT_EQ(book.create(input("a [done]")).outcome, Outcome::done);
  PersonaBook never(clock, settings(0.0));
  EXPECT_EQ(never.create(input("a [fail]")).outcome, Outcome::failed);
  EXPECT_EQ(never.create(input("a [reject]")).outcome, Outcome::rejected);
}

TEST(PersonaBook, MissingConsentVideoIsRejected) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  PersonaInput in = input("Jane");
  in.consent_video.reset();
  const Persona& p = book.create(std::move(in));
  EXPECT_EQ(p.outcome, Outcome::rejected);
  EXPECT_EQ(p.outcome_reason, "consent video is required for approval");
}

TEST(PersonaBook, FailRateSplitsFailuresBetweenFailedAndRejected) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings(0.3, 42));
  std::map<Outcome, int> counts;
  for (int i = 0; i < 2000; ++i) ++counts[book.create(input("Jane")).outcome];
  EXPECT_NEAR(counts[Outcome::done] / 2000.0, 0.7, 0.04);
  EXPECT_NEAR(counts[Outcome::failed] / 2000.0, 0.15, 0.03);
  EXPECT_NEAR(counts[Outcome::rejected] / 2000.0, 0.15, 0.03);
}

TEST(PersonaBook, ZeroFailRateAlwaysSucceeds) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings(0.0, 42));
  for (int i = 0; i < 500; ++i) EXPECT_EQ(book.create(input("Jane")).outcome, Outcome::done);
}

TEST(PersonaBook, SameSeedSameOutcomesAndTimings) {
  ManualClock clock(kStart);
  PersonaBook a(clock, settings(0.5, 7));
  PersonaBook b(clock, settings(0.5, 7));
  for (int i = 0; i < 100; ++i) {
    const Persona& pa = a.create(input("Jane"));
    const Persona& pb = b.create(input("Jane"));
    EXPECT_EQ(pa.outcome, pb.outcome);
    EXPECT_EQ(pa.stage_end, pb.stage_end);
    EXPECT_EQ(pa.outcome_reason, pb.outcome_reason);
    EXPECT_NE(pa.id, pb.id);  // ids are never reproducible: they must not collide across runs
  }
}

TEST(PersonaBook, MarkersDoNotShiftLaterOutcomes) {
  ManualClock clock(kStart);
  PersonaBook a(clock, settings(0.5, 9));
  PersonaBook b(clock, settings(0.5, 9));
  a.create(input("first [fail]"));
  b.create(input("first"));
  for (int i = 0; i < 20; ++i) {
    const Persona& pa = a.create(input("Jane"));
    const Persona& pb = b.create(input("Jane"));
    EXPECT_EQ(pa.outcome, pb.outcome);
    EXPECT_EQ(pa.stage_end, pb.stage_end);
  }
}

TEST(PersonaBook, IdsAreUniqueUuidV4) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const std::regex uuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = book.create(input("Jane")).id;
    EXPECT_TRUE(std::regex_match(id, uuid4)) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(PersonaBook, FindAndNewestFirstOrder) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const std::string first = book.create(input("one")).id;
  const std::string second = book.create(input("two")).id;
  EXPECT_EQ(book.size(), 2u);
  EXPECT_EQ(book.newest(0).id, second);
  EXPECT_EQ(book.newest(1).id, first);
  ASSERT_NE(book.find(first), nullptr);
  EXPECT_EQ(book.find(first)->input.creator_name, "one");
  EXPECT_EQ(book.find("no-such-id"), nullptr);
}

TEST(PersonaBook, PinFreezesTheStatus) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  const std::string id = book.create(input("Jane")).id;
  clock.advance(minutes(10));
  const Persona* p = book.pin(id, "done", false, std::nullopt);  // done, awaiting approval
  ASSERT_NE(p, nullptr);
  clock.advance(hours(100));
  const PersonaStatus s = book.status_of(*p);
  EXPECT_EQ(s.process_status, "done");
  EXPECT_FALSE(s.is_active);
  EXPECT_EQ(s.updated_at, kStart + minutes(10));
  EXPECT_EQ(book.pin("unknown", "done", true, std::nullopt), nullptr);
}

TEST(PersonaBook, CountsLabelsSharedByMoreThanOnePersona) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  book.create(input("1", {"a", "b"}));
  book.create(input("2", {"b", "c"}));
  EXPECT_EQ(book.label_duplicates(), 1u);  // b
  book.create(input("3", {"b"}));
  EXPECT_EQ(book.label_duplicates(), 1u);  // still only b
  book.create(input("4", {"c", "d", "d"}));
  EXPECT_EQ(book.label_duplicates(), 2u);  // b, c; d twice on one persona is not a duplicate
  EXPECT_EQ(book.client_ref_duplicates(), 0u);
  book.create(input("5", {"personad:1"}));
  book.create(input("6", {"personad:2"}));
  EXPECT_EQ(book.client_ref_duplicates(), 0u);
  book.create(input("7", {"personad:1"}));
  EXPECT_EQ(book.client_ref_duplicates(), 1u);
  EXPECT_EQ(book.label_duplicates(), 3u);
}

TEST(PersonaBook, ClearForgetsEverything) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  PersonaInput in = input("1", {"a"});
  in.webhook_url = "http://127.0.0.1:1/hook";
  const std::string id = book.create(in).id;
  book.create(input("2", {"a"}));
  book.clear();
  EXPECT_EQ(book.size(), 0u);
  EXPECT_EQ(book.find(id), nullptr);
  EXPECT_EQ(book.label_duplicates(), 0u);
  EXPECT_FALSE(book.next_webhook_due());
}

TEST(PersonaBook, WebhooksBecomeDueAtTheFinalTransition) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  book.create(input("no hook"));
  PersonaInput early = input("early [fail]");
  early.webhook_url = "http://127.0.0.1:1/early";
  PersonaInput late = input("late [done]");
  late.webhook_url = "http://127.0.0.1:1/late";
  const SimTime early_final = book.create(early).final_at();  // at most 4 x 1.5h
  clock.advance(hours(7));
  const SimTime late_final = book.create(late).final_at();
  clock.set(kStart);
  ASSERT_LT(early_final, late_final);

  EXPECT_EQ(book.next_webhook_due(), early_final);
  EXPECT_TRUE(book.take_due_webhooks().empty());

  clock.set(early_final);
  auto calls = book.take_due_webhooks();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].url, "http://127.0.0.1:1/early");
  EXPECT_EQ(calls[0].process_status, "failed");
  EXPECT_TRUE(calls[0].failed_reason);
  EXPECT_EQ(book.next_webhook_due(), late_final);

  clock.set(late_final + hours(1));
  calls = book.take_due_webhooks();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].process_status, "done");
  EXPECT_FALSE(calls[0].failed_reason);
  EXPECT_FALSE(book.next_webhook_due());
}

TEST(PersonaBook, PinningAFinalStatusAnnouncesItOnce) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  PersonaInput in = input("Jane [done]");
  in.webhook_url = "http://127.0.0.1:1/hook";
  const std::string id = book.create(in).id;
  book.pin(id, "rejected", false, std::string("forced"));
  auto calls = book.take_due_webhooks();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].process_status, "rejected");
  EXPECT_EQ(calls[0].failed_reason, "forced");
  clock.advance(hours(100));  // the lifecycle's own "done" is never announced
  EXPECT_TRUE(book.take_due_webhooks().empty());
}

TEST(PersonaJson, HasTheSampleResponseFields) {
  ManualClock clock(kStart);
  PersonaBook book(clock, settings());
  PersonaInput in = input("Jane", {"acme", "personad:1"});
  in.keywords = "friendly";
  const Persona& p = book.create(in);
  const auto o = persona_to_json(p, book.status_of(p), true);
  const std::vector<std::string> keys = {"id",
                                         "gender",
                                         "creator_name",
                                         "video_scene",
                                         "keywords",
                                         "lipsync_input",
                                         "consent_video",
                                         "lipsync_input_url",
                                         "labels",
                                         "matching_voice_non_null",
                                         "process_status",
                                         "failed_reason",
                                         "webhook_url",
                                         "created_at",
                                         "updated_at",
                                         "gdown_url",
                                         "is_active"};
  std::vector<std::string> actual;
  for (const auto& kv : o) actual.emplace_back(kv.key());
  EXPECT_EQ(actual, keys);
  EXPECT_EQ(o.at("process_status"), "pending");
  EXPECT_EQ(o.at("labels"), (boost::json::array{"acme", "personad:1"}));
  EXPECT_EQ(o.at("created_at"), "2024-01-01T00:00:00Z");
  EXPECT_TRUE(o.at("webhook_url").is_null());
  EXPECT_TRUE(o.at("failed_reason").is_null());
  EXPECT_EQ(o.at("lipsync_input_url"), "https://cdn.example.com/lipsync.mp4");
  EXPECT_EQ(o.at("is_active"), false);

  const auto unlabelled = persona_to_json(p, book.status_of(p), false);
  EXPECT_FALSE(unlabelled.contains("labels"));
}

TEST(PersonaBook, ListLagHidesANewPersonaFromListsOnlyUntilItPasses) {
  ManualClock clock(kStart);
  BookSettings s = settings();
  s.list_lag = milliseconds(1500);  // ManualClock: one real ms is one sim ms
  PersonaBook book(clock, s);
  const std::string old_id = book.create(input("Old")).id;
  clock.advance(seconds(1));
  const std::string new_id = book.create(input("New")).id;
  ASSERT_NE(book.find(new_id), nullptr);  // get by id sees it at once
  EXPECT_EQ(book.find(new_id)->listed_at, kStart + seconds(1) + milliseconds(1500));
  std::vector<const Persona*> listed = book.listed();
  EXPECT_TRUE(listed.empty());
  clock.advance(milliseconds(500));  // the old one's lag is over, not the new one's
  listed = book.listed();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]->id, old_id);
  clock.advance(seconds(1));
  listed = book.listed();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0]->id, new_id);  // newest first
  EXPECT_EQ(listed[1]->id, old_id);
}

TEST(PersonaBook, ListLagUnderATimeScaleIsRealTime) {
  ScaledClock clock(1000.0);
  BookSettings s = settings();
  s.list_lag = milliseconds(2);  // two real ms: two sim seconds
  PersonaBook book(clock, s);
  const Persona& p = book.create(input("Scaled"));
  EXPECT_EQ(duration_cast<milliseconds>(p.listed_at - p.created_at), milliseconds(2000));
}

TEST(PersonaJson, WebhookPayloadCarriesIdAndStatus) {
  const WebhookCall call{"http://x/", "abc", "failed", std::string("video quality too low")};
  EXPECT_EQ(webhook_payload(call),
            R"({"id":"abc","status":"failed","process_status":"failed",)"
            R"("failed_reason":"video quality too low"})");
}

}  // namespace
}  // namespace creatify_sim
