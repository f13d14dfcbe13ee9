// Redaction: our secrets never survive in a text that came from outside — not in what the API
// answers, not in failed_reason or history, not in the log, not for the hook.
#include "personad/redact.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tracker_fixture.hpp"

namespace personad::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kKey = "sk_live_7f3a9c\"Q/x+1";
constexpr const char* kId = "acct-4471";

TEST(Redactor, ReplacesEverySecretInEveryForm) {
  Redactor r({kKey, kId});
  EXPECT_EQ(r(std::string("invalid key ") + kKey + " for " + kId),
            "invalid key [redacted] for [redacted]");
  // Percent-encoded (an echoed query string) and JSON-escaped (an echoed JSON body).
  EXPECT_EQ(r("key=sk_live_7f3a9c%22Q%2Fx%2B1&x=1"), "key=[redacted]&x=1");
  EXPECT_EQ(r(R"({"key":"sk_live_7f3a9c\"Q/x+1"})"), R"({"key":"[redacted]"})");
  EXPECT_EQ(r("twice: acct-4471acct-4471"), "twice: [redacted][redacted]");
  EXPECT_EQ(r("nothing to hide"), "nothing to hide");
}

TEST(Redactor, IgnoresSecretsTooShortToBeSafelyFound) {
  Redactor r({"ab", ""});
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r("about a cab"), "about a cab");
}

TEST(Redactor, ALongerSecretIsReplacedWholeBeforeOneItContains) {
  Redactor r({"abcd", "abcdefgh"});
  EXPECT_EQ(r("x abcdefgh y abcd"), "x [redacted] y [redacted]");
}

class RedactedTracker : public TrackerFixture {
 protected:
  void make_redacted_tracker() {
    redacting_ = std::make_unique<RedactingApi>(api_, Redactor({kKey, kId}));
    tracker_ = std::make_unique<Tracker>(ioc_.get_executor(), *runner_, *redacting_, clock_,
                                         *log_, options_, [this] { return dist_(rng_); });
    tracker_->set_transition_hook([this](const Job&, const Transition& t) {
      hook_reasons_ += t.reason + "\n";
    });
    ASSERT_TRUE(tracker_->start());
  }
  std::unique_ptr<RedactingApi> redacting_;
  std::string hook_reasons_;
};

// The defect: an error body holding the API key was stored in failed_reason and history,
// logged, shown by personactl and passed to hooks.
TEST_F(RedactedTracker, AnEchoedKeyIsStoredLoggedAndHookedNowhere) {
  api_.statuses = {"processing", "failed"};
  api_.failed_reason = std::string("bad consent; your key ") + kKey + " (account " + kId + ")";
  make_redacted_tracker();
  enqueue({make_spec("echo")});
  ASSERT_TRUE(run_until([&] { return final_state("echo"); }));
  Job j = job("echo");
  EXPECT_EQ(j.state, State::failed);
  EXPECT_EQ(j.failed_reason, "bad consent; your key [redacted] (account [redacted])");
  std::string history;
  // The Result held by name: a range-for over *temporary() would read it after its end.
  const auto rows = store_->history(j.id);
  ASSERT_TRUE(rows);
  for (const auto& t : *rows) history += t.reason + "\n";
  for (const std::string& text : {history, log(), hook_reasons_}) {
    EXPECT_THAT(text, Not(HasSubstr("sk_live_7f3a9c")));
    EXPECT_THAT(text, Not(HasSubstr(kId)));
  }
  EXPECT_THAT(history, HasSubstr("[redacted]"));
}

TEST_F(RedactedTracker, ARejectedCreateThatEchoesTheKeyIsStoredClean) {
  api_.create_faults = {FakeApi::Fault::permanent};
  api_.permanent_message = std::string("api_key: ") + kKey + " is not valid for this endpoint";
  make_redacted_tracker();
  enqueue({make_spec("rej")});
  ASSERT_TRUE(run_until([&] { return final_state("rej"); }));
  Job j = job("rej");
  EXPECT_EQ(j.state, State::failed);
  EXPECT_THAT(j.failed_reason.value_or(""), HasSubstr("api_key: [redacted] is not valid"));
  EXPECT_THAT(log(), Not(HasSubstr("sk_live_7f3a9c")));
}

}  // namespace
}  // namespace personad::testing
