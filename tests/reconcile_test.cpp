// decide_reconcile: what became of a create whose answer was lost. The freshness rule at its
// edges (a listing proves absence only if it started at or after absence_proof_after), labels
// before fields, ownership by other jobs, list errors, and the reconcile deadline.
#include "personad/reconcile.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "personad/backoff.hpp"

namespace personad {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const TimePoint T0 = from_unix_ms(1'790'000'000'000);
constexpr double kNoJitter = 0.5;

class ReconcileTest : public ::testing::Test {
 protected:
  ReconcileTest() {
    api_.timeout = Millis(30'000);
    api_.retry_initial = Millis(1'000);
    api_.retry_max = Millis(60'000);
    api_.reconcile_after = Millis(60'000);
    api_.reconcile_give_up = Millis(3'600'000);  // 1h

    job_.id = 7;
    job_.key = "alice";
    job_.state = State::submitting;
    job_.client_ref = "0b6c3f52-8f0e-4a57-9d2c-1f3a2b4c5d6e";
    job_.spec.key = "alice";
    job_.spec.gender = "f";
    job_.spec.creator_name = "Alice";
    job_.spec.video_scene = "office";
    job_.spec.keywords = "friendly";
    job_.created_at = T0 - Millis(10'000);
    job_.submitting_since = T0;
    job_.last_sent_at = T0 + Millis(1'000);
    // The answer timed out after api.timeout: the tracker saw the failure 30 s after sending.
    job_.unknown_since = T0 + Millis(31'000);
    job_.send_unknown = true;
    job_.attempts = 1;
  }

  // absence_proof_after for the job above: max(last_sent_at, unknown_since) + reconcile_after.
  TimePoint proof() const { return T0 + Millis(91'000); }
  TimePoint deadline() const { return T0 + Millis(31'000) + Millis(3'600'000); }
  std::string label() const { return client_label(job_.client_ref); }

  // A persona as the API lists it: with labels (has_labels), created at `created`.
  RemotePersona labelled(std::string id, std::vector<std::string> labels,
                         std::optional<TimePoint> created = std::nullopt) const {
    RemotePersona p = same_fields(std::move(id), created);
    p.has_labels = true;
    p.labels = std::move(labels);
    return p;
  }
  // A persona with this job's fields, from a list that carries no labels.
  RemotePersona same_fields(std::string id, std::optional<TimePoint> created = std::nullopt) const {
    RemotePersona p;
    p.id = std::move(id);
    p.process_status = "pending";
    p.creator_name = job_.spec.creator_name;
    p.gender = job_.spec.gender;
    p.video_scene = job_.spec.video_scene;
    p.keywords = job_.spec.keywords;
    p.created_at = created.value_or(T0 + Millis(2'000));
    return p;
  }

  static SharedListingResult listing(TimePoint started_at, std::vector<RemotePersona> items) {
    auto l = std::make_shared<Listing>();
    l->started_at = started_at;
    l->items = std::move(items);
    l->pages = 1;
    SharedListingResult r;
    r.outcome = Outcome::ok;
    r.http_status = 200;
    r.value = std::move(l);
    return r;
  }

  static SharedListingResult list_error(Outcome outcome, int http_status, std::string message,
                                        std::optional<Millis> retry_after = std::nullopt) {
    SharedListingResult r;
    r.outcome = outcome;
    r.http_status = http_status;
    r.message = std::move(message);
    r.retry_after = retry_after;
    return r;
  }

  ReconcileDecision decide(const SharedListingResult& l, TimePoint now,
                           double random = kNoJitter) const {
    RemoteOwner owner = [this](std::string_view id) -> std::optional<std::int64_t> {
      auto it = owners_.find(std::string(id));
      if (it == owners_.end()) return std::nullopt;
      return it->second;
    };
    return decide_reconcile(job_, l, now, api_, owner, random);
  }

  ApiConfig api_;
  Job job_;
  std::map<std::string, std::int64_t> owners_;  // remote id → the job holding it
};

// ---- absence_proof_after and reconcile_deadline ----

TEST_F(ReconcileTest, AbsenceProofCountsFromTheLaterOfSendAndFailure) {
  EXPECT_EQ(absence_proof_after(job_, api_), proof());
  // A failure seen before the send (a restart's first look, then a new send): from the send.
  job_.unknown_since = T0;
  EXPECT_EQ(absence_proof_after(job_, api_), T0 + Millis(1'000) + Millis(60'000));
  // Nothing known but the send.
  job_.unknown_since.reset();
  EXPECT_EQ(absence_proof_after(job_, api_), T0 + Millis(61'000));
  // No send recorded: from when it entered submitting, else from its creation.
  job_.last_sent_at.reset();
  EXPECT_EQ(absence_proof_after(job_, api_), T0 + Millis(60'000));
  job_.submitting_since.reset();
  EXPECT_EQ(absence_proof_after(job_, api_), T0 - Millis(10'000) + Millis(60'000));
}

TEST_F(ReconcileTest, AbsenceProofSaturates) {
  api_.reconcile_after = Millis::max();
  EXPECT_EQ(absence_proof_after(job_, api_), TimePoint::max());
}

TEST_F(ReconcileTest, DeadlineIsUnknownSincePlusGiveUp) {
  EXPECT_EQ(reconcile_deadline(job_, api_), deadline());
  job_.unknown_since.reset();
  EXPECT_EQ(reconcile_deadline(job_, api_), T0 + Millis(1'000) + Millis(3'600'000));
  job_.last_sent_at.reset();
  EXPECT_EQ(reconcile_deadline(job_, api_), job_.created_at + Millis(3'600'000));
  api_.reconcile_give_up = Millis::max();
  EXPECT_EQ(reconcile_deadline(job_, api_), TimePoint::max());
}

// ---- the freshness rule ----

TEST_F(ReconcileTest, ListingStartedOneMillisecondTooEarlyWaitsUntilTheProofTime) {
  const TimePoint started = proof() - Millis(1);
  // Looked at as soon as it ended (a listing takes no virtual time here).
  ReconcileDecision d = decide(listing(started, {labelled("remote-9", {"personad:other"})}), started);
  EXPECT_EQ(d.verdict, ReconcileVerdict::wait);
  EXPECT_EQ(d.at, proof());
  EXPECT_THAT(d.reason, HasSubstr("not listed yet (1 listed)"));
  EXPECT_THAT(d.reason, HasSubstr(format_rfc3339(proof())));
}

TEST_F(ReconcileTest, ListingStartedExactlyAtTheProofTimeResends) {
  ReconcileDecision d = decide(listing(proof(), {labelled("remote-9", {"personad:other"})}),
                               proof() + Millis(200));
  EXPECT_EQ(d.verdict, ReconcileVerdict::resend);
  EXPECT_FALSE(d.persona);
  EXPECT_THAT(d.reason, HasSubstr("no persona with " + label() + " among 1 listed"));
  EXPECT_THAT(d.reason, HasSubstr("90s after the last create; submitting again"));
}

TEST_F(ReconcileTest, EmptyFreshListingResends) {
  EXPECT_EQ(decide(listing(proof() + Millis(5'000), {}), proof() + Millis(6'000)).verdict,
            ReconcileVerdict::resend);
}

TEST_F(ReconcileTest, WaitIsNeverScheduledInThePast) {
  // An old listing looked at late: wait until now (the tracker then asks for a fresh one).
  const TimePoint now = proof() + Millis(10'000);
  ReconcileDecision d = decide(listing(T0 + Millis(40'000), {}), now);
  EXPECT_EQ(d.verdict, ReconcileVerdict::wait);
  EXPECT_EQ(d.at, now);
}

// The defect "SharedList reused a list fetched while the create was still in the server's
// hands": with a slow answer (api.timeout longer than reconcile_after), a listing started
// reconcile_after after the send, but before the failure was even seen, was taken as proof of
// absence and the create was sent twice. It must never prove the create absent, however late
// it is looked at.
TEST_F(ReconcileTest, ListingStartedWhileTheCreateWasInTheServersHandsNeverResends) {
  api_.timeout = Millis(120'000);
  job_.unknown_since = *job_.last_sent_at + api_.timeout;  // T0 + 121 s
  const TimePoint proof_time = *job_.unknown_since + api_.reconcile_after;
  EXPECT_EQ(absence_proof_after(job_, api_), proof_time);
  for (Millis started_after_t0 : {Millis(2'000), Millis(61'000), Millis(70'000), Millis(120'999)}) {
    const TimePoint started = T0 + started_after_t0;  // after last_sent_at, before unknown_since
    ASSERT_GT(started, *job_.last_sent_at);
    ASSERT_LT(started, *job_.unknown_since);
    for (TimePoint now :
         {proof_time, proof_time + Millis(600'000), reconcile_deadline(job_, api_) - Millis(1)}) {
      ReconcileDecision d = decide(listing(started, {}), now);
      EXPECT_EQ(d.verdict, ReconcileVerdict::wait)
          << "listing started " << format_rfc3339(started) << ", decided " << format_rfc3339(now);
    }
  }
}

TEST_F(ReconcileTest, ListingStartedReconcileAfterTheSendButNotAfterTheFailureWaits) {
  // Later than last_sent_at + reconcile_after, earlier than unknown_since + reconcile_after.
  const TimePoint started = T0 + Millis(70'000);
  ASSERT_GT(started, *job_.last_sent_at + api_.reconcile_after);
  ReconcileDecision d = decide(listing(started, {}), started + Millis(1'000));
  EXPECT_EQ(d.verdict, ReconcileVerdict::wait);
  EXPECT_EQ(d.at, proof());
}

// ---- evidence by label ----

TEST_F(ReconcileTest, LabelFoundInAStaleListingIsAdoptedAnyway) {
  // Existence is proved whenever the listing was taken, even before the send's failure.
  const TimePoint started = T0 + Millis(5'000);
  ReconcileDecision d = decide(
      listing(started, {labelled("remote-1", {"acme"}), labelled("remote-2", {"acme", label()})}),
      started + Millis(100));
  EXPECT_EQ(d.verdict, ReconcileVerdict::adopt);
  ASSERT_TRUE(d.persona);
  EXPECT_EQ(d.persona->id, "remote-2");
  EXPECT_EQ(d.reason, "reconciled: adopted remote persona remote-2 found by label " + label() +
                          " among 2 listed");
}

TEST_F(ReconcileTest, SeveralWithTheLabelAdoptTheOldestAndSaySo) {
  ReconcileDecision d =
      decide(listing(proof(), {labelled("remote-new", {label()}, T0 + Millis(9'000)),
                               labelled("remote-old", {label()}, T0 + Millis(3'000)),
                               labelled("remote-mid", {label()}, T0 + Millis(5'000))}),
             proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::adopt);
  ASSERT_TRUE(d.persona);
  EXPECT_EQ(d.persona->id, "remote-old");
  EXPECT_THAT(d.reason, HasSubstr("(3 carry the label: remote-old, remote-mid, remote-new; "
                                  "the oldest is adopted)"));
}

TEST_F(ReconcileTest, LabelMatchOwnedByAnotherJobIsFlagged) {
  owners_["remote-2"] = 99;
  ReconcileDecision d = decide(listing(proof(), {labelled("remote-2", {label()})}), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::flag);
  EXPECT_FALSE(d.persona);
  EXPECT_THAT(d.reason, HasSubstr("remote-2"));
  EXPECT_THAT(d.reason, HasSubstr("belongs to another job"));
  EXPECT_THAT(d.reason, HasSubstr("personactl resolve alice"));
}

TEST_F(ReconcileTest, LabelMatchAlreadyHeldByThisJobIsAdopted) {
  owners_["remote-2"] = job_.id;
  ReconcileDecision d = decide(listing(proof(), {labelled("remote-2", {label()})}), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::adopt);
  EXPECT_EQ(d.persona->id, "remote-2");
}

TEST_F(ReconcileTest, WithLabelsInTheListSameFieldsAloneAreNoEvidence) {
  // The API lists labels, and none is ours: a persona with the same fields is someone else's.
  ReconcileDecision d =
      decide(listing(proof(), {labelled("remote-3", {"personad:someone-else"})}), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::resend);
}

// ---- evidence by fields and time (lists without labels) ----

TEST_F(ReconcileTest, NoLabelsOneFieldMatchIsAdopted) {
  RemotePersona other = same_fields("remote-5");
  other.creator_name = "Bob";
  ReconcileDecision d = decide(listing(proof(), {other, same_fields("remote-6")}), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::adopt);
  ASSERT_TRUE(d.persona);
  EXPECT_EQ(d.persona->id, "remote-6");
  EXPECT_THAT(d.reason, HasSubstr("found by matching creator_name, gender, video_scene, keywords "
                                  "and creation time among 2 listed"));
}

TEST_F(ReconcileTest, NoLabelsTwoFieldMatchesAreAmbiguousWithBothIds) {
  ReconcileDecision d =
      decide(listing(proof(), {same_fields("remote-6"), same_fields("remote-7")}), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::ambiguous);
  EXPECT_FALSE(d.persona);
  EXPECT_THAT(d.candidates, ElementsAre("remote-6", "remote-7"));
  EXPECT_THAT(d.reason, HasSubstr("2 remote personas match (remote-6, remote-7)"));
  EXPECT_THAT(d.reason, HasSubstr("personactl resolve alice"));
}

TEST_F(ReconcileTest, NoLabelsMatchesOwnedByOtherJobsAreSkipped) {
  owners_["remote-6"] = 12;
  ReconcileDecision d =
      decide(listing(proof(), {same_fields("remote-6"), same_fields("remote-7")}), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::adopt);
  EXPECT_EQ(d.persona->id, "remote-7");

  owners_["remote-7"] = 13;  // both taken: nothing of ours is listed
  EXPECT_EQ(decide(listing(proof(), {same_fields("remote-6"), same_fields("remote-7")}), proof())
                .verdict,
            ReconcileVerdict::resend);
}

TEST_F(ReconcileTest, NoLabelsCreationBeforeSubmittingSinceMinusSkewIsExcluded) {
  const TimePoint edge = *job_.submitting_since - Millis(60'000);
  // One millisecond before the tolerated skew: not ours.
  ReconcileDecision too_old = decide(listing(proof(), {same_fields("remote-6", edge - Millis(1))}),
                                     proof());
  EXPECT_EQ(too_old.verdict, ReconcileVerdict::resend);
  // Exactly at the edge: ours.
  ReconcileDecision at_edge = decide(listing(proof(), {same_fields("remote-6", edge)}), proof());
  EXPECT_EQ(at_edge.verdict, ReconcileVerdict::adopt);
  // An old one and a new one: only the new one matches, no ambiguity.
  ReconcileDecision mixed = decide(
      listing(proof(), {same_fields("remote-5", edge - Millis(3'600'000)), same_fields("remote-6")}),
      proof());
  EXPECT_EQ(mixed.verdict, ReconcileVerdict::adopt);
  EXPECT_EQ(mixed.persona->id, "remote-6");
}

TEST_F(ReconcileTest, NoLabelsEachFieldMustMatch) {
  std::vector<RemotePersona> items;
  for (auto member : {&RemotePersona::creator_name, &RemotePersona::gender,
                      &RemotePersona::video_scene, &RemotePersona::keywords}) {
    RemotePersona p = same_fields("remote-" + std::to_string(items.size() + 1));
    p.*member += "-different";
    items.push_back(p);
  }
  ReconcileDecision d = decide(listing(proof(), items), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::resend) << d.reason;
}

TEST_F(ReconcileTest, NoLabelsStaleListingWithoutAMatchWaits) {
  const TimePoint started = T0 + Millis(40'000);
  ReconcileDecision d = decide(listing(started, {}), started);
  EXPECT_EQ(d.verdict, ReconcileVerdict::wait);
  EXPECT_EQ(d.at, proof());
}

// ---- list errors and the deadline ----

TEST_F(ReconcileTest, TransientListErrorRetriesWithBackoff) {
  job_.errors = 2;
  const TimePoint now = proof();
  ReconcileDecision d = decide(list_error(Outcome::transient, 502, "HTTP 502"), now);
  EXPECT_EQ(d.verdict, ReconcileVerdict::retry);
  EXPECT_EQ(d.errors, 3);
  EXPECT_EQ(d.at, now + Millis(4'000));  // 1 s × 2^(3-1)
  EXPECT_EQ(d.reason, "HTTP 502");
}

TEST_F(ReconcileTest, OkOutcomeWithoutAListingIsTreatedAsAnError) {
  SharedListingResult r;
  r.outcome = Outcome::ok;  // but no value
  ReconcileDecision d = decide(r, proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::retry);
}

TEST_F(ReconcileTest, RetryIsNeverScheduledPastTheDeadline) {
  job_.errors = 40;
  const TimePoint now = deadline() - Millis(2'000);
  ReconcileDecision d = decide(list_error(Outcome::transient, 502, "HTTP 502"), now, 1.0);
  EXPECT_EQ(d.verdict, ReconcileVerdict::retry);
  EXPECT_EQ(d.at, deadline());
  // Nor with an absurd Retry-After.
  ReconcileDecision huge = decide(
      list_error(Outcome::transient, 429, "HTTP 429", Millis(4'294'967'295LL * 1000)), now);
  EXPECT_EQ(huge.verdict, ReconcileVerdict::retry);
  EXPECT_EQ(huge.at, deadline());
  // Early on, the absurd Retry-After waits retry_max.
  ReconcileDecision early = decide(
      list_error(Outcome::transient, 429, "HTTP 429", Millis(4'294'967'295LL * 1000)), proof());
  EXPECT_EQ(early.at, proof() + api_.retry_max);
}

TEST_F(ReconcileTest, NoListingAtOrAfterTheDeadlineIsFlagged) {
  for (TimePoint now : {deadline(), deadline() + Millis(1)}) {
    ReconcileDecision d = decide(list_error(Outcome::transient, 502, "HTTP 502"), now);
    EXPECT_EQ(d.verdict, ReconcileVerdict::flag) << format_rfc3339(now);
    EXPECT_THAT(d.reason, HasSubstr("no list of personas within 1h"));
    EXPECT_THAT(d.reason, HasSubstr("(last error: HTTP 502)"));
    EXPECT_THAT(d.reason, HasSubstr("personactl resolve alice --adopt REMOTE_ID | --resubmit"));
  }
  EXPECT_EQ(decide(list_error(Outcome::transient, 502, "HTTP 502"), deadline() - Millis(1)).verdict,
            ReconcileVerdict::retry);
}

TEST_F(ReconcileTest, AListingAfterTheDeadlineIsStillUsed) {
  // The deadline is for the lack of a listing; a listing that arrives decides as usual.
  const TimePoint late = deadline() + Millis(60'000);
  EXPECT_EQ(decide(listing(late, {labelled("remote-2", {label()})}), late).verdict,
            ReconcileVerdict::adopt);
  EXPECT_EQ(decide(listing(late, {}), late).verdict, ReconcileVerdict::resend);
}

TEST_F(ReconcileTest, PermanentListErrorIsFlaggedAtOnceMentioningListPath) {
  ReconcileDecision d =
      decide(list_error(Outcome::permanent, 404, "HTTP 404: Not found."), proof());
  EXPECT_EQ(d.verdict, ReconcileVerdict::flag);
  EXPECT_THAT(d.reason, HasSubstr("permanent error (HTTP 404: Not found.)"));
  EXPECT_THAT(d.reason, HasSubstr("api.list_path"));
  EXPECT_THAT(d.reason, HasSubstr("personactl resolve alice"));
}

TEST_F(ReconcileTest, UnauthorizedListErrorIsFlaggedAtOnceMentioningListPath) {
  ReconcileDecision d = decide(list_error(Outcome::unauthorized, 401, "HTTP 401"), T0 + Millis(40'000));
  EXPECT_EQ(d.verdict, ReconcileVerdict::flag);
  EXPECT_THAT(d.reason, HasSubstr("api.list_path"));
  EXPECT_THAT(d.reason, HasSubstr("credentials"));
  EXPECT_THAT(d.reason, Not(HasSubstr("no list of personas within")));
}

}  // namespace
}  // namespace personad
