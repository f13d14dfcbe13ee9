// decide_create: what the answer to a create request means for its job, for every outcome of
// the API call crossed with whether the request certainly never left (sent=false).
#include "personad/create_outcome.hpp"

#include <gtest/gtest.h>

namespace personad {
namespace {

ApiResult<RemotePersona> answer(Outcome outcome, bool sent, std::string message = "",
                                int http_status = 0) {
  ApiResult<RemotePersona> r;
  r.outcome = outcome;
  r.sent = sent;
  r.message = std::move(message);
  r.http_status = http_status;
  if (outcome == Outcome::ok) r.value.id = "remote-1";
  return r;
}

TEST(CreateOutcome, OkIsCreatedAndNamesTheHttpStatus) {
  CreateDecision d = decide_create(answer(Outcome::ok, true, "", 201));
  EXPECT_EQ(d.verdict, CreateVerdict::created);
  EXPECT_EQ(d.reason, "created (HTTP 201)");
}

TEST(CreateOutcome, OkIsCreatedEvenWhenMarkedUnsent) {
  // A 2xx answer proves the request arrived, whatever the transport guessed.
  CreateDecision d = decide_create(answer(Outcome::ok, false, "", 200));
  EXPECT_EQ(d.verdict, CreateVerdict::created);
  EXPECT_EQ(d.reason, "created (HTTP 200)");
}

TEST(CreateOutcome, PermanentErrorAfterSendingIsRejectedByTheApi) {
  CreateDecision d =
      decide_create(answer(Outcome::permanent, true, "creator_name: This field is required.", 400));
  EXPECT_EQ(d.verdict, CreateVerdict::rejected);
  EXPECT_EQ(d.reason, "create rejected by the API: creator_name: This field is required.");
}

TEST(CreateOutcome, PermanentErrorBeforeSendingIsRejectedAsNotSent) {
  // An unreadable local file: the API never saw it and sending again cannot help.
  CreateDecision d =
      decide_create(answer(Outcome::permanent, false, "cannot read /data/consent.mp4"));
  EXPECT_EQ(d.verdict, CreateVerdict::rejected);
  EXPECT_EQ(d.reason, "create not sent: cannot read /data/consent.mp4");
}

TEST(CreateOutcome, UnauthorizedIsNotSentWhetherOrNotItLeft) {
  for (bool sent : {true, false}) {
    CreateDecision d = decide_create(answer(Outcome::unauthorized, sent, "HTTP 401", 401));
    EXPECT_EQ(d.verdict, CreateVerdict::not_sent) << "sent=" << sent;
    EXPECT_EQ(d.reason, "HTTP 401") << "sent=" << sent;
  }
}

TEST(CreateOutcome, ThrottledIsNotSentSoItIsResentWithoutAReconcile) {
  CreateDecision d = decide_create(answer(Outcome::transient, true, "HTTP 429: slow down", 429));
  EXPECT_EQ(d.verdict, CreateVerdict::not_sent);
  EXPECT_EQ(d.reason, "HTTP 429: slow down");
  // A 503 (a proxy may have passed the request on) stays unknown.
  EXPECT_EQ(decide_create(answer(Outcome::transient, true, "HTTP 503", 503)).verdict,
            CreateVerdict::unknown);
}

TEST(CreateOutcome, TransientErrorAfterSendingIsUnknown) {
  CreateDecision d = decide_create(answer(Outcome::transient, true, "timeout"));
  EXPECT_EQ(d.verdict, CreateVerdict::unknown);
  EXPECT_EQ(d.reason, "timeout");
}

TEST(CreateOutcome, TransientErrorThatNeverLeftIsNotSent) {
  CreateDecision d = decide_create(answer(Outcome::transient, false, "connection refused"));
  EXPECT_EQ(d.verdict, CreateVerdict::not_sent);
  EXPECT_EQ(d.reason, "connection refused");
}

// The whole table at once, so a new Outcome or a changed rule shows up as one failing row.
TEST(CreateOutcome, EveryOutcomeAndSentCombination) {
  struct Row {
    Outcome outcome;
    bool sent;
    CreateVerdict expected;
  };
  const Row rows[] = {
      {Outcome::ok, true, CreateVerdict::created},
      {Outcome::ok, false, CreateVerdict::created},
      {Outcome::permanent, true, CreateVerdict::rejected},
      {Outcome::permanent, false, CreateVerdict::rejected},
      {Outcome::unauthorized, true, CreateVerdict::not_sent},
      {Outcome::unauthorized, false, CreateVerdict::not_sent},
      {Outcome::transient, true, CreateVerdict::unknown},
      {Outcome::transient, false, CreateVerdict::not_sent},
  };
  for (const Row& row : rows)
    EXPECT_EQ(decide_create(answer(row.outcome, row.sent, "m")).verdict, row.expected)
        << to_string(row.outcome) << " sent=" << row.sent;
}

}  // namespace
}  // namespace personad
