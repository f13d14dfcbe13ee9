// decide_poll: what a status poll's answer (or error) means for a pending job, when it is looked
// at next, and that no answer, no error and no Retry-After can keep a job pending past
// expiry_grace_end (expires_at + api.retry_max).
#include "personad/poll_outcome.hpp"

#include <gtest/gtest.h>

#include "personad/backoff.hpp"

namespace personad {
namespace {

const TimePoint kSubmitted = from_unix_ms(1'790'000'000'000);
constexpr double kNoJitter = 0.5;  // a unit_random of 0.5 leaves every delay unjittered

class PollOutcomeTest : public ::testing::Test {
 protected:
  PollOutcomeTest() {
    api_.retry_initial = Millis(1'000);
    api_.retry_max = Millis(60'000);
    poll_.first_after = Millis(10'000);
    poll_.initial_interval = Millis(10'000);
    poll_.multiplier = 2.0;
    poll_.max_interval = Millis(60'000);
    poll_.jitter = 0.2;
    poll_.give_up_after = Millis(3'600'000);  // 1h

    job_.id = 3;
    job_.key = "alice";
    job_.state = State::pending;
    job_.remote_id = "remote-1";
    job_.remote_status = "processing";
    job_.created_at = kSubmitted - Millis(5'000);
    job_.submitted_at = kSubmitted;
    job_.expires_at = kSubmitted + poll_.give_up_after;
    job_.polls = 0;
    job_.errors = 0;
  }

  TimePoint expires() const { return *job_.expires_at; }
  TimePoint grace_end() const { return expires() + api_.retry_max; }

  static ApiResult<RemotePersona> status(std::string process_status, bool is_active = false,
                                         std::string failed_reason = "") {
    ApiResult<RemotePersona> r;
    r.outcome = Outcome::ok;
    r.http_status = 200;
    r.value.id = "remote-1";
    r.value.process_status = std::move(process_status);
    r.value.is_active = is_active;
    r.value.failed_reason = std::move(failed_reason);
    return r;
  }

  static ApiResult<RemotePersona> error(Outcome outcome, int http_status, std::string message,
                                        std::optional<Millis> retry_after = std::nullopt) {
    ApiResult<RemotePersona> r;
    r.outcome = outcome;
    r.http_status = http_status;
    r.message = std::move(message);
    r.retry_after = retry_after;
    return r;
  }

  PollDecision decide(const ApiResult<RemotePersona>& answer, TimePoint now,
                      double random = kNoJitter) const {
    return decide_poll(job_, answer, now, api_, poll_, random);
  }

  ApiConfig api_;
  PollConfig poll_;
  Job job_;
};

// ---- final answers ----

TEST_F(PollOutcomeTest, DoneAndActiveIsDone) {
  PollDecision d = decide(status("done", true), kSubmitted + Millis(60'000));
  EXPECT_EQ(d.verdict, PollVerdict::done);
  EXPECT_TRUE(d.answered);
  EXPECT_EQ(d.remote_status, "done");
  EXPECT_EQ(d.reason, "process_status=done is_active=true");
  EXPECT_FALSE(d.failed_reason);
}

TEST_F(PollOutcomeTest, DoneButInactiveStaysPendingAwaitingApprovalWhenActiveIsRequired) {
  ASSERT_TRUE(api_.status.require_active);
  const TimePoint now = kSubmitted + Millis(60'000);
  PollDecision d = decide(status("done", false), now);
  EXPECT_EQ(d.verdict, PollVerdict::pending);
  EXPECT_TRUE(d.answered);
  EXPECT_TRUE(d.status_changed);
  EXPECT_EQ(d.reason, "process_status processing → done (awaiting approval: is_active=false)");
  EXPECT_EQ(d.next_at, now + Millis(10'000));
}

TEST_F(PollOutcomeTest, DoneButInactiveIsDoneWhenActiveIsNotRequired) {
  api_.status.require_active = false;
  PollDecision d = decide(status("done", false), kSubmitted + Millis(60'000));
  EXPECT_EQ(d.verdict, PollVerdict::done);
  EXPECT_EQ(d.reason, "process_status=done is_active=false");
}

TEST_F(PollOutcomeTest, DoneAnsweredAfterExpiryIsStillDone) {
  // A final answer wins over the clock: the persona exists and is ready.
  PollDecision d = decide(status("done", true), expires() + Millis(1));
  EXPECT_EQ(d.verdict, PollVerdict::done);
}

TEST_F(PollOutcomeTest, FailedCarriesTheApisFailedReason) {
  PollDecision d = decide(status("failed", false, "consent video does not match"),
                          kSubmitted + Millis(60'000));
  EXPECT_EQ(d.verdict, PollVerdict::failed);
  EXPECT_TRUE(d.answered);
  EXPECT_EQ(d.failed_reason, "consent video does not match");
  EXPECT_EQ(d.reason, "process_status=failed: consent video does not match");
}

TEST_F(PollOutcomeTest, FailedWithoutAReasonFallsBackToTheStatus) {
  PollDecision d = decide(status("rejected"), kSubmitted + Millis(60'000));
  EXPECT_EQ(d.verdict, PollVerdict::failed);
  EXPECT_EQ(d.failed_reason, "rejected");
  EXPECT_EQ(d.reason, "process_status=rejected: rejected");
}

// A 404/410 fails the job only once the persona stays missing: kMissingAnswers answers in a
// row over at least kMissingFor. One 404 (a proxy, eventual consistency) is retried soon.
TEST_F(PollOutcomeTest, OneNotFoundIsRetriedSoonNotAFailure) {
  for (int http : {404, 410}) {
    const TimePoint now = kSubmitted + Millis(1);
    PollDecision d = decide(error(Outcome::permanent, http, "Not found."), now);
    EXPECT_EQ(d.verdict, PollVerdict::retry) << http;
    EXPECT_FALSE(d.answered);
    EXPECT_EQ(d.missing_since, now);
    EXPECT_EQ(d.missing_count, 1);
    EXPECT_GE(d.next_at, now + kMissingFor / (2 * (kMissingAnswers - 1)));
    EXPECT_LE(d.next_at, now + kMissingFor / (kMissingAnswers - 1));
    EXPECT_NE(d.reason.find("missing 1 of 3 times"), std::string::npos) << d.reason;
  }
}

TEST_F(PollOutcomeTest, NotFoundThatPersistsFailsTheJob) {
  job_.missing_since = kSubmitted;
  job_.missing_count = kMissingAnswers - 1;
  // Enough answers but not yet for long enough: still a retry.
  PollDecision early = decide(error(Outcome::permanent, 404, "Not found."),
                              kSubmitted + kMissingFor - Millis(1));
  EXPECT_EQ(early.verdict, PollVerdict::retry);
  EXPECT_EQ(early.missing_count, kMissingAnswers);
  PollDecision d = decide(error(Outcome::permanent, 410, "Gone."), kSubmitted + kMissingFor);
  EXPECT_EQ(d.verdict, PollVerdict::failed);
  EXPECT_EQ(d.failed_reason, "remote persona remote-1 not found (HTTP 410, 3 answers over 10m)");
  EXPECT_NE(d.reason.find("personactl retry resumes polling"), std::string::npos);
  EXPECT_EQ(d.missing_since, kSubmitted);  // kept on the failed row: retry may resume it
}

TEST_F(PollOutcomeTest, AnAnswerClearsTheMissingCount) {
  job_.missing_since = kSubmitted;
  job_.missing_count = 2;
  PollDecision d = decide(status("processing"), kSubmitted + Millis(60'000));
  EXPECT_EQ(d.verdict, PollVerdict::pending);
  EXPECT_FALSE(d.missing_since);
  EXPECT_EQ(d.missing_count, 0);
  // Another error keeps it as it was.
  PollDecision e = decide(error(Outcome::transient, 503, "HTTP 503"), kSubmitted + Millis(60'000));
  EXPECT_EQ(e.missing_since, kSubmitted);
  EXPECT_EQ(e.missing_count, 2);
}

TEST_F(PollOutcomeTest, NotFoundAfterTheGraceEndExpiresTheJob) {
  // Missing at the very end: the deadline wins; the job expires (retry resumes it).
  PollDecision d = decide(error(Outcome::permanent, 404, "Not found."), grace_end() + Millis(1));
  EXPECT_EQ(d.verdict, PollVerdict::expired);
}

// ---- answers that are not final ----

TEST_F(PollOutcomeTest, UndocumentedStatusStaysPendingVerbatim) {
  const TimePoint now = kSubmitted + Millis(60'000);
  PollDecision d = decide(status("quantum_tunnelling"), now);
  EXPECT_EQ(d.verdict, PollVerdict::pending);
  EXPECT_EQ(d.remote_status, "quantum_tunnelling");
  EXPECT_TRUE(d.status_changed);
  EXPECT_EQ(d.reason, "process_status processing → quantum_tunnelling");
  EXPECT_EQ(d.next_at, now + Millis(10'000));
}

TEST_F(PollOutcomeTest, StatusChangedOnlyWhenTheStatusChanged) {
  const TimePoint now = kSubmitted + Millis(60'000);
  PollDecision same = decide(status("processing"), now);
  EXPECT_EQ(same.verdict, PollVerdict::pending);
  EXPECT_FALSE(same.status_changed);
  EXPECT_TRUE(same.reason.empty()) << same.reason;
  EXPECT_TRUE(same.answered);

  PollDecision changed = decide(status("reviewing"), now);
  EXPECT_TRUE(changed.status_changed);
  EXPECT_EQ(changed.reason, "process_status processing → reviewing");
}

TEST_F(PollOutcomeTest, FirstStatusEverIsAChangeFromNone) {
  job_.remote_status.reset();
  PollDecision d = decide(status("pending"), kSubmitted + Millis(10'000));
  EXPECT_TRUE(d.status_changed);
  EXPECT_EQ(d.reason, "process_status none → pending");
}

TEST_F(PollOutcomeTest, AnsweredPollResetsTheErrorCount) {
  job_.errors = 5;
  PollDecision d = decide(status("processing"), kSubmitted + Millis(60'000));
  EXPECT_EQ(d.verdict, PollVerdict::pending);
  EXPECT_EQ(d.errors, 0);
}

TEST_F(PollOutcomeTest, NextPollFollowsThePollScheduleOfPollsMade) {
  const TimePoint now = kSubmitted + Millis(60'000);
  job_.polls = 0;  // poll number 1: initial_interval
  EXPECT_EQ(decide(status("processing"), now).next_at, now + Millis(10'000));
  job_.polls = 2;  // poll number 3: 10 s × 2²
  EXPECT_EQ(decide(status("processing"), now).next_at, now + Millis(40'000));
  job_.polls = 50;  // capped at max_interval
  EXPECT_EQ(decide(status("processing"), now).next_at, now + Millis(60'000));
  // With jitter: the top of the ±20 % band.
  EXPECT_EQ(decide(status("processing"), now, 1.0).next_at, now + Millis(72'000));
}

TEST_F(PollOutcomeTest, NextPollFollowsTheWindowAwarePhases) {
  poll_.expected_after = Millis(600'000);   // 10 min
  poll_.sparse_interval = Millis(300'000);  // 5 min
  job_.polls = 50;
  // Before the window: the sparse cap, ...
  TimePoint now = kSubmitted + Millis(60'000);
  EXPECT_EQ(decide(status("processing"), now).next_at, now + Millis(300'000));
  // ... never past the window's start, ...
  now = kSubmitted + Millis(500'000);
  EXPECT_EQ(decide(status("processing"), now, 1.0).next_at, kSubmitted + Millis(600'000));
  // ... then steady at max_interval.
  now = kSubmitted + Millis(600'000);
  EXPECT_EQ(decide(status("processing"), now).next_at, now + Millis(60'000));
  // A job adopted or resolved late counts its age from submitted_at.
  job_.submitted_at.reset();
  job_.created_at = kSubmitted - Millis(3'000'000);
  now = kSubmitted;
  EXPECT_EQ(decide(status("processing"), now).next_at, now + Millis(60'000));
}

TEST_F(PollOutcomeTest, NextPollNeverPassesTheExpiry) {
  job_.polls = 50;
  const TimePoint now = expires() - Millis(5'000);
  PollDecision d = decide(status("processing"), now);
  EXPECT_EQ(d.verdict, PollVerdict::pending);
  EXPECT_EQ(d.next_at, expires());
}

TEST_F(PollOutcomeTest, PendingAnswerAtOrAfterTheExpiryExpires) {
  for (TimePoint now : {expires(), expires() + Millis(1), expires() + Millis(86'400'000)}) {
    PollDecision d = decide(status("processing"), now);
    EXPECT_EQ(d.verdict, PollVerdict::expired) << format_rfc3339(now);
    EXPECT_TRUE(d.answered);
    EXPECT_EQ(d.reason, "no final status within 1h (last process_status=processing)");
  }
  // One millisecond earlier it is still pending, due again exactly at the expiry.
  PollDecision before = decide(status("processing"), expires() - Millis(1));
  EXPECT_EQ(before.verdict, PollVerdict::pending);
  EXPECT_EQ(before.next_at, expires());
}

// ---- errors ----

TEST_F(PollOutcomeTest, TransientErrorRetriesWithBackoffOnTheErrorCount) {
  job_.errors = 2;
  const TimePoint now = kSubmitted + Millis(60'000);
  PollDecision d = decide(error(Outcome::transient, 503, "HTTP 503"), now);
  EXPECT_EQ(d.verdict, PollVerdict::retry);
  EXPECT_FALSE(d.answered);
  EXPECT_FALSE(d.remote_status);
  EXPECT_EQ(d.errors, 3);
  EXPECT_EQ(d.reason, "HTTP 503");
  EXPECT_EQ(d.next_at, now + Millis(4'000));  // 1 s × 2^(3-1)
}

TEST_F(PollOutcomeTest, RetryHonoursRetryAfterUpToRetryMax) {
  const TimePoint now = kSubmitted + Millis(60'000);
  PollDecision d = decide(error(Outcome::transient, 429, "HTTP 429", Millis(30'000)), now);
  EXPECT_EQ(d.verdict, PollVerdict::retry);
  EXPECT_EQ(d.next_at, now + Millis(30'000));
}

TEST_F(PollOutcomeTest, OtherPermanentErrorsAreRetriedNotFailed) {
  // Only 404/410 prove the persona is gone; a 400 on a GET says nothing about the job.
  PollDecision d = decide(error(Outcome::permanent, 400, "HTTP 400"), kSubmitted + Millis(1));
  EXPECT_EQ(d.verdict, PollVerdict::retry);
  EXPECT_EQ(d.errors, 1);
}

TEST_F(PollOutcomeTest, ErrorAfterExpiryButBeforeGraceEndStillRetries) {
  // The API gets one retry window after the expiry to give a final answer.
  PollDecision d = decide(error(Outcome::transient, 503, "HTTP 503"), expires() + Millis(1));
  EXPECT_EQ(d.verdict, PollVerdict::retry);
  EXPECT_LE(d.next_at, grace_end());
}

TEST_F(PollOutcomeTest, RetryIsNeverScheduledAfterTheGraceEnd) {
  job_.errors = 40;  // backoff at its cap: 60 s, 72 s with full jitter
  const TimePoint now = grace_end() - Millis(1'000);
  PollDecision d = decide(error(Outcome::transient, 503, "HTTP 503"), now, 1.0);
  EXPECT_EQ(d.verdict, PollVerdict::retry);
  EXPECT_EQ(d.next_at, grace_end());
}

TEST_F(PollOutcomeTest, ErrorAtOrAfterTheGraceEndExpires) {
  for (TimePoint now : {grace_end(), grace_end() + Millis(1)}) {
    PollDecision d = decide(error(Outcome::transient, 503, "HTTP 503"), now);
    EXPECT_EQ(d.verdict, PollVerdict::expired) << format_rfc3339(now);
    EXPECT_EQ(d.reason, "no final status within 1h; the last polls failed: HTTP 503");
  }
  PollDecision before = decide(error(Outcome::transient, 503, "HTTP 503"), grace_end() - Millis(1));
  EXPECT_EQ(before.verdict, PollVerdict::retry);
  EXPECT_EQ(before.next_at, grace_end());
}

TEST_F(PollOutcomeTest, AbsurdRetryAfterNeverParksTheJobPastTheGraceEnd) {
  const std::optional<Millis> huge = Millis(4'294'967'295LL * 1000);
  // Early in the job's life: the wait is retry_max, the documented cap.
  const TimePoint early = kSubmitted + Millis(60'000);
  PollDecision d = decide(error(Outcome::transient, 503, "HTTP 503", huge), early);
  EXPECT_EQ(d.verdict, PollVerdict::retry);
  EXPECT_EQ(d.next_at, early + api_.retry_max);
  // Close to the end, whatever the jitter: never after the grace end.
  for (double random : {0.0, 0.5, 1.0}) {
    for (TimePoint now : {expires() - Millis(10'000), expires(), grace_end() - Millis(1)}) {
      PollDecision late = decide(error(Outcome::transient, 503, "HTTP 503", huge), now, random);
      ASSERT_EQ(late.verdict, PollVerdict::retry);
      EXPECT_GT(late.next_at, now);
      EXPECT_LE(late.next_at, grace_end()) << format_rfc3339(now) << " random=" << random;
    }
  }
}

// ---- the expiry itself ----

TEST_F(PollOutcomeTest, WithoutExpiresAtTheExpiryIsSubmittedPlusGiveUpAfter) {
  job_.expires_at.reset();
  EXPECT_EQ(expiry_of(job_, poll_), kSubmitted + poll_.give_up_after);
  EXPECT_EQ(expiry_grace_end(job_, poll_, api_), kSubmitted + poll_.give_up_after + api_.retry_max);
  const TimePoint end = kSubmitted + poll_.give_up_after;
  EXPECT_EQ(decide(status("processing"), end - Millis(1)).verdict, PollVerdict::pending);
  EXPECT_EQ(decide(status("processing"), end).verdict, PollVerdict::expired);
}

TEST_F(PollOutcomeTest, WithoutSubmittedAtTheExpiryCountsFromCreation) {
  job_.expires_at.reset();
  job_.submitted_at.reset();
  EXPECT_EQ(expiry_of(job_, poll_), job_.created_at + poll_.give_up_after);
}

TEST_F(PollOutcomeTest, StoredExpiresAtWinsOverThePolicy) {
  job_.expires_at = kSubmitted + Millis(120'000);
  EXPECT_EQ(expiry_of(job_, poll_), kSubmitted + Millis(120'000));
  EXPECT_EQ(decide(status("processing"), kSubmitted + Millis(120'000)).verdict,
            PollVerdict::expired);
}

TEST_F(PollOutcomeTest, HugeGiveUpAfterSaturatesInsteadOfWrapping) {
  job_.expires_at.reset();
  poll_.give_up_after = Millis::max();
  EXPECT_EQ(expiry_of(job_, poll_), TimePoint::max());
  EXPECT_EQ(expiry_grace_end(job_, poll_, api_), TimePoint::max());
  const TimePoint now = kSubmitted + Millis(60'000);
  PollDecision d = decide(status("processing"), now);
  EXPECT_EQ(d.verdict, PollVerdict::pending);
  EXPECT_EQ(d.next_at, now + Millis(10'000));
}

}  // namespace
}  // namespace personad
