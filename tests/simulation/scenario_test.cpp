// Regression tests of the exactly-once and never-stuck defects, each a scripted scenario on
// virtual time: the real tracker and store against the simulated API, no wall-clock waits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "personad/poll_outcome.hpp"
#include "world.hpp"

namespace personad::simulation {
namespace {

using ::testing::HasSubstr;
using Kind = CreatePlan::Kind;

constexpr Millis kSecond{1'000};
constexpr Millis kMinute{60'000};
constexpr Millis kHour{3'600'000};
constexpr Millis kDay{86'400'000};

PersonaSpec spec(const std::string& key) {
  PersonaSpec s;
  s.key = key;
  s.gender = "f";
  s.creator_name = "Creator " + key;
  s.video_scene = "office";
  s.keywords = "calm";
  s.lipsync_input = "https://cdn.example.com/" + key + ".mp4";
  s.consent_video = "https://cdn.example.com/" + key + "-consent.mp4";
  return s;
}

class Scenario : public ::testing::Test {
 protected:
  void start(SimFaults faults = no_faults()) {
    WorldOptions o;
    o.seed = 99;
    o.tracker = simulation_tracker_options();
    o.faults = faults;
    o.log_level = spdlog::level::debug;
    world_ = std::make_unique<World>(o);
    ASSERT_TRUE(world_->boot());
  }
  void submit(std::vector<PersonaSpec> specs) {
    auto r = world_->call(world_->tracker().enqueue(specs, "test"));
    ASSERT_TRUE(r && *r) << (r ? r->message() : "the intake did not finish");
  }
  Job job(const std::string& key) {
    auto j = world_->truth().find(key);
    EXPECT_TRUE(j && *j) << key;
    return j && *j ? **j : Job{};
  }
  TimePoint now() { return world_->clock().now(); }
  bool run_for(Millis d, const std::function<bool()>& done = [] { return false; }) {
    return world_->run_until(now() + d, done, &handlers_);
  }
  std::size_t personas_of(const Job& j) {
    return world_->api().with_label(client_label(j.client_ref)).size();
  }

  std::unique_ptr<World> world_;
  std::size_t handlers_ = 0;
};

// Defect 1. A slow create: the server stores it 75 s after it arrived, our client gave up at
// 30 s. Meanwhile another job's lost create made the tracker list the API at once. Lists taken
// while the create was still in the server's hands looked fresh (started after last_sent_at,
// even after last_sent_at + reconcile_after) but could not contain it; resending on their word
// made two paid avatars. Absence now needs a list started reconcile_after after the failure.
TEST_F(Scenario, ACreateStillInTheServersHandsIsNeverResent) {
  start();
  world_->api().scripted_creates = {
      CreatePlan{Kind::ok, Millis(75'000), Millis(75'100), {}},       // slow: times out at 30 s
      CreatePlan{Kind::lost_after_store, Millis(100), Millis(200), {}},  // lost: lists at once
  };
  submit({spec("slow"), spec("lost")});
  ASSERT_TRUE(run_for(kHour, [&] {
    return job("slow").state == State::pending && job("lost").state == State::pending;
  }));
  EXPECT_EQ(personas_of(job("slow")), 1u);
  EXPECT_EQ(personas_of(job("lost")), 1u);
  EXPECT_EQ(job("slow").attempts, 1);
  EXPECT_EQ(world_->tracker().metrics().resent, 0);
  EXPECT_EQ(world_->tracker().metrics().adopted, 2);
}

// The other side of the rule: a create that truly never arrived is resent, once a list
// started reconcile_after after the failure shows nothing.
TEST_F(Scenario, ACreateProvedAbsentByAFreshListIsResentOnce) {
  start();
  world_->api().scripted_creates = {CreatePlan{Kind::server_error, {}, {}, {}}};
  world_->api().faults().create_lost = 0;
  // A 503 is "sent, outcome unknown" for the tracker (a proxy may have passed it on).
  submit({spec("gone")});
  const TimePoint t0 = now();
  ASSERT_TRUE(run_for(kHour, [&] { return job("gone").state == State::pending; }));
  Job j = job("gone");
  EXPECT_EQ(j.attempts, 2);
  EXPECT_EQ(personas_of(j), 1u);
  EXPECT_EQ(world_->tracker().metrics().resent, 1);
  // Not before the API had reconcile_after since the failure.
  EXPECT_GE(*j.last_sent_at - t0, simulation_tracker_options().api.reconcile_after);
}

// Defect 2. A read error must never strand a job, nor look like an operator's change (a false
// late_result). A step reads its job once, at its start (the store's compare-and-set guards the
// writes after the await): that read fails here, the step is run again later.
TEST_F(Scenario, AStoreErrorAfterAnAwaitNeverStrandsTheJob) {
  start();
  world_->faulty_store().fail_nth("get", 1);
  submit({spec("a")});
  ASSERT_TRUE(run_for(kHour, [&] { return job("a").state == State::pending; }));
  Job j = job("a");
  EXPECT_EQ(personas_of(j), 1u);
  EXPECT_EQ(j.attempts, 1);
  EXPECT_EQ(world_->tracker().metrics().store_errors, 1);
  EXPECT_EQ(world_->tracker().metrics().resent, 0);
  EXPECT_THAT(world_->log_text(), ::testing::Not(HasSubstr("late_result")));
  EXPECT_THAT(world_->log_text(), HasSubstr("store_error"));
}

TEST_F(Scenario, EveryFailingWriteOfAStepIsRetriedUntilItLands) {
  start();
  submit({spec("a")});
  for (const char* op : {"apply", "update", "get", "find_by_remote_id"})
    for (int i = 0; i < 3; ++i) world_->faulty_store().fail_next.insert(op);
  ASSERT_TRUE(run_for(8 * kDay, [&] { return is_final(job("a").state); }));
  EXPECT_EQ(job("a").state, State::done);
  EXPECT_EQ(personas_of(job("a")), 1u);
  EXPECT_GE(world_->tracker().metrics().store_errors, 9);
}

// Defect 3. `Retry-After: 4294967295` parked a job for a century, past give_up_after, and the
// timer arithmetic overflowed. It is capped at retry_max, and a job still expires on time.
TEST_F(Scenario, AbsurdRetryAfterNeitherParksNorSpinsAJob) {
  SimFaults f = no_faults();
  f.never_finishes = 1.0;
  start(f);
  submit({spec("a")});
  ASSERT_TRUE(run_for(kMinute, [&] { return job("a").state == State::pending; }));
  auto& faults = world_->api().faults();
  faults.get_fails = 1.0;           // every poll answers 429 / 503 / timeout
  faults.absurd_retry_after = 1.0;  // and every 429 says 136 years
  Job j = job("a");
  const auto api = simulation_tracker_options().api;
  const TimePoint deadline = *j.expires_at + api.retry_max;
  ASSERT_TRUE(run_for(8 * kDay, [&] { return is_final(job("a").state); }));
  EXPECT_EQ(job("a").state, State::expired);
  EXPECT_LE(now(), deadline + api.timeout);
  EXPECT_THAT(job("a").updated_at, ::testing::Ge(*j.expires_at));
  // About one request per retry_max, not thousands.
  EXPECT_LT(world_->api().requests(), 6 * 24 * 60 / 5 + 100);
}

// Defect 3, on a create: a 429 whose Retry-After says 136 years waits retry_max, no longer.
TEST_F(Scenario, AnAbsurdRetryAfterOnACreateWaitsRetryMaxAtMost) {
  start();
  world_->api().scripted_creates = {
      CreatePlan{Kind::throttled, {}, {}, Millis(std::chrono::seconds(4'294'967'295LL))}};
  submit({spec("a")});
  const TimePoint t0 = now();
  const auto api = simulation_tracker_options().api;
  ASSERT_TRUE(run_for(kDay, [&] { return job("a").state == State::pending; }));
  EXPECT_LE(now() - t0, api.retry_max * 12 / 10 + kMinute);
  EXPECT_GE(now() - t0, api.retry_max);
  EXPECT_EQ(personas_of(job("a")), 1u);
}

// Defect 5. Four jobs waiting on one slow list woke each other forever (one timer, each
// waiter cancelling the others): 100 % CPU. Now a waiter wakes once, when its list ends.
TEST_F(Scenario, WaitersOnASlowListWakeOnce) {
  start();
  for (int i = 0; i < 4; ++i)
    world_->api().scripted_creates.push_back(CreatePlan{Kind::lost_after_store, Millis(10), Millis(20), {}});
  world_->api().faults().page_size = 1;
  submit({spec("a"), spec("b"), spec("c"), spec("d")});
  handlers_ = 0;
  ASSERT_TRUE(run_for(kHour, [&] {
    for (const char* k : {"a", "b", "c", "d"})
      if (job(k).state != State::pending) return false;
    return true;
  }));
  EXPECT_LT(handlers_, 2'000u);
  EXPECT_EQ(world_->tracker().metrics().adopted, 4);
  // One listing served the four reconciles.
  EXPECT_LE(world_->tracker().metrics().reconciles, 8);
}

// Defect 7. A permanent list error (wrong list_path: 404) was retried forever while the job
// sat in submitting with no deadline. Now the job is flagged for the operator at once.
TEST_F(Scenario, APermanentListErrorFlagsTheJobForTheOperator) {
  SimFaults f = no_faults();
  f.list_broken = true;
  start(f);
  world_->api().scripted_creates = {CreatePlan{Kind::lost_after_store, Millis(10), Millis(20), {}}};
  submit({spec("a")});
  ASSERT_TRUE(run_for(kHour, [&] { return job("a").needs_operator; }));
  Job j = job("a");
  EXPECT_EQ(j.state, State::submitting);
  EXPECT_THAT(j.operator_reason.value_or(""), HasSubstr("permanent error"));
  EXPECT_THAT(j.operator_reason.value_or(""), HasSubstr("personactl resolve a"));
  EXPECT_EQ(world_->tracker().metrics().flagged, 1);
  EXPECT_FALSE(world_->tracker().is_tracking(j.id));
  const auto requests = world_->api().requests();
  run_for(kDay);
  EXPECT_EQ(world_->api().requests(), requests);  // waits for the operator, quietly
  EXPECT_EQ(j.attempts, 1);
}

// Defect 7. A list that keeps failing transiently: pages are retried on their own, and after
// api.reconcile_give_up without a listing the job is flagged, never resent blindly.
TEST_F(Scenario, AListThatKeepsFailingFlagsTheJobAfterTheReconcileDeadline) {
  start();
  world_->api().scripted_creates = {CreatePlan{Kind::lost_after_store, Millis(10), Millis(20), {}}};
  world_->api().faults().list_page_fails = 1.0;
  submit({spec("a")});
  const TimePoint t0 = now();
  ASSERT_TRUE(run_for(4 * kHour, [&] { return job("a").needs_operator; }));
  const auto api = simulation_tracker_options().api;
  EXPECT_GE(now() - t0, api.reconcile_give_up);
  EXPECT_LE(now() - t0, api.reconcile_give_up + 2 * api.retry_max + kHour);
  EXPECT_THAT(job("a").operator_reason.value_or(""), HasSubstr("no list of personas within"));
  EXPECT_EQ(job("a").attempts, 1);
  EXPECT_EQ(personas_of(job("a")), 1u);
}

TEST_F(Scenario, AFailedPageIsRetriedWithoutRestartingTheListing) {
  start();
  world_->api().faults().page_size = 1;
  submit({spec("a"), spec("b"), spec("c")});
  ASSERT_TRUE(run_for(kHour, [&] {
    for (const char* k : {"a", "b", "c"})
      if (job(k).state != State::pending) return false;
    return true;
  }));
  world_->api().scripted_creates = {CreatePlan{Kind::lost_after_store, Millis(10), Millis(20), {}}};
  world_->api().fail_page_once = {"?page=2", "?page=2"};  // the third of four pages, twice
  world_->api().page_requests.clear();
  submit({spec("d")});
  ASSERT_TRUE(run_for(kHour, [&] { return job("d").state == State::pending; }));
  EXPECT_EQ(personas_of(job("d")), 1u);
  // The new persona is listed first (newest first): d is adopted from the first page, so the
  // reconcile reads one listing; every page once, the failing one three times.
  const auto& asked = world_->api().page_requests;
  EXPECT_EQ(asked.at(""), 1);
  EXPECT_EQ(asked.at("?page=1"), 1);
  EXPECT_EQ(asked.at("?page=2"), 3);
  EXPECT_EQ(asked.at("?page=3"), 1);
}

// Defect (issue 11): one 404 on a poll failed a job for good, leaving only a resubmission (a
// new paid avatar). Now a persona must stay missing (3 answers over 10 minutes) to fail the
// job, a brief absence is ridden out, and `retry` resumes polling one that failed that way.
TEST_F(Scenario, AMissingPersonaFailsOnlyWhenItStaysMissingAndRetryResumesIt) {
  SimFaults f = no_faults();
  f.never_finishes = 1.0;
  start(f);
  submit({spec("a")});
  ASSERT_TRUE(run_for(kMinute, [&] { return job("a").state == State::pending; }));
  const std::string remote = *job("a").remote_id;

  // Missing for one poll: ridden out.
  world_->api().hidden.insert(remote);
  ASSERT_TRUE(run_for(kHour, [&] { return job("a").missing_count == 1; }));
  world_->api().hidden.clear();
  ASSERT_TRUE(run_for(kDay, [&] { return job("a").polls >= 3; }));
  EXPECT_EQ(job("a").state, State::pending);
  EXPECT_EQ(job("a").missing_count, 0);

  // Missing for good: failed after the window, with the reason.
  world_->api().hidden.insert(remote);
  const TimePoint gone = now();
  ASSERT_TRUE(run_for(kDay, [&] { return job("a").state == State::failed; }));
  EXPECT_GE(now() - gone, kMissingFor);
  EXPECT_LE(now() - gone, 2 * kMissingFor + simulation_tracker_options().poll.max_interval);
  EXPECT_THAT(job("a").failed_reason.value_or(""), ::testing::ContainsRegex("not found \\(HTTP 404, [0-9]+ answers over [0-9]+[smh]\\)"));

  // Back again: retry resumes polling the same persona; nothing new is created.
  world_->api().hidden.clear();
  auto r = world_->call(world_->tracker().retry("a", false));
  ASSERT_TRUE(r && *r) << (r ? r->message() : "");
  EXPECT_EQ(job("a").state, State::pending);
  EXPECT_EQ(job("a").remote_id, remote);
  EXPECT_EQ(personas_of(job("a")), 1u);
}

// A create answered with a remote id another job already holds is the API's fault: the job
// waits for the operator, never adopts it twice and never resends (UNIQUE(remote_id) used to
// fail the commit, then reconcile and resend forever).
TEST_F(Scenario, ACreateAnsweredWithAnotherJobsIdIsFlagged) {
  start();
  submit({spec("a")});
  ASSERT_TRUE(run_for(kHour, [&] { return job("a").state == State::pending; }));
  const std::string a_remote = *job("a").remote_id;
  world_->api().answer_next_create_with_id = a_remote;
  submit({spec("b")});
  ASSERT_TRUE(run_for(kHour, [&] { return job("b").needs_operator; }));
  Job b = job("b");
  EXPECT_EQ(b.state, State::submitting);
  EXPECT_THAT(b.operator_reason.value_or(""), HasSubstr("which belongs to job 'a'"));
  EXPECT_FALSE(b.remote_id);
  run_for(kDay);
  EXPECT_EQ(job("b").attempts, 1);  // never resent
  EXPECT_EQ(job("a").remote_id, a_remote);  // a keeps its own
  EXPECT_EQ(job("a").state, State::pending);
}

}  // namespace
}  // namespace personad::simulation
