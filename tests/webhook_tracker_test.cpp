// The tracker with a webhook listener: creates carry the job's callback URL (unless the batch
// names its own), such jobs poll on the relaxed schedule, and poll_soon polls a job at once.
#include <gtest/gtest.h>

#include "personad/backoff.hpp"
#include "personad/webhook_token.hpp"
#include "tracker_fixture.hpp"

namespace personad::testing {
namespace {

constexpr const char* kSecret = "tracker-test-secret-16";
constexpr const char* kPublic = "https://hooks.example.com/personad";

// FakeApi that also keeps the webhook_url of every create.
struct HookApi : FakeApi {
  std::map<std::string, std::string> webhook_urls;  // by client_ref
  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                          std::string client_ref) override {
    webhook_urls[client_ref] = spec.webhook_url;
    co_return co_await FakeApi::create(spec, std::move(client_ref));
  }
};

class WebhookTracker : public TrackerFixture {
 protected:
  void make_hooked_tracker(Millis first_after = Millis(60'000)) {
    options_.poll.jitter = 0;
    options_.poll.first_after = first_after;
    options_.poll.initial_interval = Millis(60'000);
    options_.poll.max_interval = Millis(120'000);
    options_.poll.max_interval_with_webhook = Millis(3'600'000);
    options_.poll.give_up_after = Millis(30LL * 24 * 3'600'000);
    options_.hook_url = [](const std::string& ref) { return webhook_url_for(kPublic, kSecret, ref); };
    hook_api_.now = [this] { return clock_.now(); };
    hook_api_.statuses = {"pending", "processing", "reviewing", "processing", "reviewing",
                          "processing", "reviewing", "processing", "done"};
    tracker_ = std::make_unique<Tracker>(ioc_.get_executor(), *runner_, hook_api_, clock_, *log_,
                                         options_, [this] { return dist_(rng_); });
    ASSERT_TRUE(tracker_->start());
  }
  HookApi hook_api_;
};

TEST_F(WebhookTracker, CreatesCarryTheCallbackUrlUnlessTheBatchNamesItsOwn) {
  make_hooked_tracker();
  PersonaSpec own = make_spec("own");
  own.webhook_url = "https://operator.example.com/hook";
  enqueue({make_spec("ours"), own});
  ASSERT_TRUE(run_until([&] { return hook_api_.creates == 2; }));
  const Job ours = job("ours");
  EXPECT_EQ(hook_api_.webhook_urls[ours.client_ref], webhook_url_for(kPublic, kSecret, ours.client_ref));
  EXPECT_TRUE(ours.spec.webhook_url.empty()) << "the stored spec stays the operator's";
  EXPECT_EQ(hook_api_.webhook_urls[job("own").client_ref], "https://operator.example.com/hook");
  // The relaxed schedule for ours, the plain one for a job whose callbacks go elsewhere.
  EXPECT_EQ(tracker_->poll_policy(ours).max_interval, Millis(3'600'000));
  EXPECT_EQ(tracker_->poll_policy(job("own")).max_interval, Millis(120'000));
}

TEST_F(WebhookTracker, RelaxedJobsPollUpToMaxIntervalWithWebhookApart) {
  make_hooked_tracker();
  enqueue({make_spec("relaxed")});
  // Watch the schedule: every gap between two polls, from the store's next_poll_at.
  std::vector<Millis> gaps;
  std::optional<TimePoint> last_due;
  std::int64_t seen_polls = -1;
  ASSERT_TRUE(run_until(
      [&] {
        const Job j = job("relaxed");
        if (j.state == State::pending && j.polls != seen_polls && j.next_poll_at) {
          if (last_due) gaps.push_back(std::chrono::duration_cast<Millis>(*j.next_poll_at - *last_due));
          last_due = j.next_poll_at;
          seen_polls = j.polls;
        }
        return gaps.size() >= 6 || final_state("relaxed");
      },
      std::chrono::seconds(30)));
  ASSERT_GE(gaps.size(), 5u);
  // Doubling from 1 min (each gap plus the few seconds of simulated time a step takes), past
  // max_interval's 2 min, capped at the webhook's 1 h instead.
  EXPECT_GE(gaps[0], Millis(60'000));
  EXPECT_LT(gaps[0], Millis(90'000));
  EXPECT_GT(gaps[4], Millis(900'000));
  for (auto g : gaps) EXPECT_LE(g, Millis(3'630'000));
}

TEST_F(WebhookTracker, PollSoonPollsAPendingJobAtOnceAndOnlyATrackedOne) {
  // The first scheduled poll a day away (43 s of the scaled clock's real time), so a loaded
  // machine cannot reach it before poll_soon's poll does.
  make_hooked_tracker(Millis(86'400'000));
  enqueue({make_spec("soon")});
  ASSERT_TRUE(run_until([&] { return state("soon") == State::pending; }));
  const Job before = job("soon");
  ASSERT_TRUE(before.next_poll_at);
  const int gets = hook_api_.gets;
  // Asked twice while the first step runs: one more step right after it, never two at once.
  EXPECT_TRUE(tracker_->poll_soon(before.id));
  EXPECT_TRUE(tracker_->poll_soon(before.id));
  ASSERT_TRUE(run_until([&] { return job("soon").polls >= 1; }, std::chrono::seconds(2)));
  EXPECT_LT(clock_.now(), *before.next_poll_at) << "polled before its scheduled time";
  EXPECT_GE(hook_api_.gets, gets + 1);
  EXPECT_LE(hook_api_.gets, gets + 2);
  EXPECT_LE(hook_api_.max_in_flight_seen, 1);
  EXPECT_TRUE(tracker_->is_tracking(before.id)) << "scheduled again after the poll";
  EXPECT_FALSE(tracker_->poll_soon(999'999));
  tracker_->stop_taking_work();
  EXPECT_FALSE(tracker_->poll_soon(before.id));
}

}  // namespace
}  // namespace personad::testing
