// Tracker: whole job lifecycles against a fake API on a fast clock — submission, polling,
// reconciliation of unknown creates, restarts, expiry, operator actions and limits.
#include <algorithm>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "tracker_fixture.hpp"

namespace personad::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Fault = FakeApi::Fault;

class TrackerTest : public TrackerFixture {};

TEST_F(TrackerTest, HappyPathGoesQueuedSubmittingPendingDoneWithOneCreate) {
  make_tracker();
  enqueue({make_spec("jane")});
  ASSERT_TRUE(run_until([&] { return final_state("jane"); }));
  Job j = job("jane");
  EXPECT_EQ(j.state, State::done);
  EXPECT_EQ(j.remote_id, "remote-1");
  EXPECT_EQ(j.remote_status, "done");
  EXPECT_EQ(j.attempts, 1);
  EXPECT_EQ(j.polls, 4);
  EXPECT_TRUE(j.submitted_at.has_value());
  EXPECT_FALSE(j.send_unknown);
  EXPECT_EQ(api_.creates, 1);
  EXPECT_EQ(api_.count_label(client_label(j.client_ref)), 1);
  EXPECT_EQ(api_.personas["remote-1"].remote.labels,
            (std::vector<std::string>{"acme", client_label(j.client_ref)}));
  // pending → pending rows record each change of remote status.
  EXPECT_THAT(path("jane"), ElementsAre(State::queued, State::submitting, State::pending,
                                        State::pending, State::pending, State::done));
  EXPECT_THAT(log(), HasSubstr("transition key=jane remote_id=remote-1 from=pending to=done "
                               "remote_status=done"));
}

TEST_F(TrackerTest, EveryTransitionRowHasALogLine) {
  make_tracker();
  enqueue({make_spec("a"), make_spec("b")});
  // The log line follows its commit: wait until the last steps have finished too.
  ASSERT_TRUE(run_until(
      [&] { return final_state("a") && final_state("b") && tracker_->in_flight() == 0; }));
  for (const char* key : {"a", "b"}) {
    auto h = store_->history(job(key).id);
    std::size_t lines = 0;
    std::string needle = std::string("transition key=") + key + " ";
    for (std::size_t pos = 0; (pos = log().find(needle, pos)) != std::string::npos; ++pos) ++lines;
    EXPECT_EQ(lines, h->size()) << key;
  }
}

TEST_F(TrackerTest, RejectedCreateFailsWithTheApiReasonAndIsNeverResent) {
  api_.create_faults = {Fault::permanent};
  make_tracker();
  enqueue({make_spec("bad")});
  ASSERT_TRUE(run_until([&] { return final_state("bad"); }));
  Job j = job("bad");
  EXPECT_EQ(j.state, State::failed);
  EXPECT_THAT(j.failed_reason.value_or(""), HasSubstr("creator_name: This field is required."));
  run_until([] { return false; }, std::chrono::milliseconds(100));
  EXPECT_EQ(api_.creates, 1);
}

TEST_F(TrackerTest, LostCreateIsAdoptedByLabelNotResent) {
  api_.create_faults = {Fault::lost_create};
  make_tracker();
  enqueue({make_spec("lost")});
  ASSERT_TRUE(run_until([&] { return final_state("lost"); }));
  Job j = job("lost");
  EXPECT_EQ(j.state, State::done);
  EXPECT_EQ(api_.creates, 1);
  EXPECT_GE(api_.lists, 1);
  EXPECT_EQ(j.remote_id, "remote-1");
  auto h = store_->history(j.id);
  bool adopted = false;
  for (const auto& t : *h) adopted = adopted || t.reason.find("adopted remote persona remote-1") != std::string::npos;
  EXPECT_TRUE(adopted);
}

TEST_F(TrackerTest, CreateThatCertainlyNeverLeftIsResentWithoutReconcile) {
  api_.create_faults = {Fault::unsent, Fault::unauthorized};
  make_tracker();
  enqueue({make_spec("retry")});
  ASSERT_TRUE(run_until([&] { return final_state("retry"); }));
  EXPECT_EQ(state("retry"), State::done);
  EXPECT_EQ(api_.creates, 3);
  EXPECT_EQ(api_.lists, 0);
  EXPECT_EQ(api_.personas.size(), 1u);
  EXPECT_EQ(job("retry").attempts, 3);
}

TEST_F(TrackerTest, UnknownOutcomeNotListedIsResentOnlyAfterReconcileWindow) {
  api_.create_faults = {Fault::unknown_not_created};
  make_tracker();
  enqueue({make_spec("unk")});
  ASSERT_TRUE(run_until([&] { return final_state("unk"); }));
  Job j = job("unk");
  EXPECT_EQ(j.state, State::done);
  EXPECT_EQ(api_.creates, 2);
  EXPECT_EQ(api_.personas.size(), 1u);
  EXPECT_EQ(api_.count_label(client_label(j.client_ref)), 1);
  // The resend waited for the API to have had reconcile_after to list the first attempt.
  auto h = store_->history(j.id);
  std::optional<TimePoint> first_submit, resend;
  for (const auto& t : *h) {
    if (t.to == State::submitting && !first_submit) first_submit = t.at;
    else if (t.to == State::submitting) resend = t.at;
  }
  ASSERT_TRUE(first_submit && resend);
  EXPECT_GE(*resend - *first_submit, options_.api.reconcile_after);
}

// A host on a shared store whose lease may have run out sends no create: the job keeps its
// intent record and, once creates may leave again, is reconciled (listed, absent, resent after
// reconcile_after) exactly like a create whose answer was lost: one persona in the end.
TEST_F(TrackerTest, NoCreateLeavesWhileTheLeaseMayHaveRunOut) {
  bool fresh = false;
  options_.may_send = [&fresh] { return fresh; };
  make_tracker();
  enqueue({make_spec("held")});
  ASSERT_TRUE(run_until([&] { return job("held").state == State::submitting; }));
  const TimePoint later = clock_.now() + Millis(20'000);
  ASSERT_TRUE(run_until([&] { return clock_.now() >= later; }));
  EXPECT_EQ(api_.creates, 0);
  EXPECT_TRUE(job("held").send_unknown);
  EXPECT_THAT(log(), HasSubstr("create_held"));
  fresh = true;
  ASSERT_TRUE(run_until([&] { return final_state("held"); }));
  EXPECT_EQ(job("held").state, State::done);
  EXPECT_EQ(api_.creates, 1);
  EXPECT_EQ(api_.personas.size(), 1u);
}

TEST_F(TrackerTest, WithoutLabelsAUniqueFieldMatchIsAdopted) {
  api_.list_has_labels = false;
  api_.create_faults = {Fault::lost_create};
  make_tracker();
  enqueue({make_spec("nolabel", "Unique Name")});
  ASSERT_TRUE(run_until([&] { return final_state("nolabel"); }));
  EXPECT_EQ(state("nolabel"), State::done);
  EXPECT_EQ(api_.creates, 1);
}

TEST_F(TrackerTest, AmbiguousFieldMatchWaitsForOperatorAndResolveAdopts) {
  api_.list_has_labels = false;
  make_tracker();
  // Two personas with the same fields already exist remotely (created by someone else, now).
  enqueue({make_spec("first", "Twin")});
  ASSERT_TRUE(run_until([&] { return final_state("first"); }));
  // Detach the first one's remote persona from its job so it counts as a foreign twin.
  auto foreign = api_.personas["remote-1"];
  foreign.remote.id = "remote-foreign";
  foreign.remote.created_at.reset();  // no creation time listed: the fields alone decide
  api_.personas["remote-foreign"] = foreign;
  api_.order.push_back("remote-foreign");
  api_.create_faults = {Fault::lost_create};
  enqueue({make_spec("second", "Twin")});
  ASSERT_TRUE(run_until([&] { return job("second").needs_operator; }));
  Job j = job("second");
  EXPECT_EQ(j.state, State::submitting);
  run_until([] { return false; }, std::chrono::milliseconds(100));
  EXPECT_EQ(api_.creates, 2);  // never resent on its own
  std::string created = api_.order.back();  // the lost create's persona
  auto r = run_op(tracker_->resolve("second", created, false));
  ASSERT_TRUE(r) << r.message();
  ASSERT_TRUE(run_until([&] { return final_state("second"); }));
  EXPECT_EQ(state("second"), State::done);
  EXPECT_EQ(job("second").remote_id, created);
  EXPECT_EQ(api_.creates, 2);
}

TEST_F(TrackerTest, RestartReconcilesSubmittingRowsInsteadOfResending) {
  // A previous run committed `submitting` (send_unknown) and died during the request, after the
  // API had created the persona.
  make_tracker();
  auto r = store_->enqueue({make_spec("crash")}, "test", "test", clock_.now(),
                           [] { return new_client_ref(); });
  ASSERT_TRUE(r);
  Job j = job("crash");
  Transition t{j.id, clock_.now(), State::queued, State::submitting, "", "submitting"};
  j.state = State::submitting;
  j.send_unknown = true;
  j.attempts = 1;
  j.last_sent_at = clock_.now();
  j.submitting_since = clock_.now();
  j.next_poll_at = clock_.now();
  ASSERT_TRUE(store_->apply(j, t));
  boost::asio::co_spawn(ioc_, api_.create(j.spec, j.client_ref), boost::asio::detached);
  ioc_.run_for(std::chrono::milliseconds(5));
  ASSERT_EQ(api_.creates, 1);

  tracker_.reset();  // the "crash"
  make_tracker();
  ASSERT_TRUE(run_until([&] { return final_state("crash"); }));
  EXPECT_EQ(state("crash"), State::done);
  EXPECT_EQ(api_.creates, 1);
  EXPECT_EQ(api_.count_label(client_label(j.client_ref)), 1);
}

TEST_F(TrackerTest, ExpiresAfterGiveUpAndRetryResumesPolling) {
  api_.statuses = {"pending", "reviewing"};
  options_.poll.give_up_after = Millis(600'000);  // 10 min: 0.3 s real
  make_tracker();
  enqueue({make_spec("slow")});
  ASSERT_TRUE(run_until([&] { return final_state("slow"); }));
  Job j = job("slow");
  EXPECT_EQ(j.state, State::expired);
  EXPECT_EQ(j.remote_status, "reviewing");
  int gets_at_expiry = api_.gets;
  run_until([] { return false; }, std::chrono::milliseconds(100));
  EXPECT_EQ(api_.gets, gets_at_expiry);  // no polling once final

  api_.statuses = {"done"};
  for (auto& [id, p] : api_.personas) p.step = 0;
  auto r = run_op(tracker_->retry("slow", false));
  ASSERT_TRUE(r) << r.message();
  ASSERT_TRUE(run_until([&] { return final_state("slow"); }));
  EXPECT_EQ(state("slow"), State::done);
  EXPECT_EQ(api_.creates, 1);
}

TEST_F(TrackerTest, DoneAwaitsApprovalWhenRequireActive) {
  api_.active_when_done = false;
  api_.statuses = {"done"};
  options_.poll.give_up_after = Millis(300'000);
  make_tracker();
  enqueue({make_spec("unapproved")});
  ASSERT_TRUE(run_until([&] { return job("unapproved").polls >= 3; }));
  EXPECT_EQ(state("unapproved"), State::pending);
  EXPECT_EQ(job("unapproved").remote_status, "done");
  EXPECT_THAT(log(), HasSubstr("awaiting approval"));
  api_.active_when_done = true;
  ASSERT_TRUE(run_until([&] { return final_state("unapproved"); }));
  EXPECT_EQ(state("unapproved"), State::done);
}

TEST_F(TrackerTest, RemoteFailureFailsAndResubmitUsesAFreshReference) {
  api_.statuses = {"processing", "rejected"};
  make_tracker();
  enqueue({make_spec("rej")});
  ASSERT_TRUE(run_until([&] { return final_state("rej"); }));
  Job failed = job("rej");
  EXPECT_EQ(failed.state, State::failed);
  EXPECT_EQ(failed.failed_reason, api_.failed_reason);

  auto refused = run_op(tracker_->retry("rej", false));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.kind(), ErrorKind::conflict);
  EXPECT_THAT(refused.message(), HasSubstr("--resubmit"));

  api_.statuses = {"done"};
  auto r = run_op(tracker_->retry("rej", true));
  ASSERT_TRUE(r) << r.message();
  ASSERT_TRUE(run_until([&] { return final_state("rej"); }));
  Job again = job("rej");
  EXPECT_EQ(again.state, State::done);
  EXPECT_NE(again.client_ref, failed.client_ref);
  EXPECT_NE(again.remote_id, failed.remote_id);
  EXPECT_EQ(api_.creates, 2);
  EXPECT_EQ(api_.count_label(client_label(again.client_ref)), 1);
}

TEST_F(TrackerTest, CancelledQueuedJobIsNeverSent) {
  make_tracker();
  tracker_->stop_taking_work();  // keep it queued while we cancel
  auto r0 = store_->enqueue({make_spec("c")}, "test", "test", clock_.now(),
                            [] { return new_client_ref(); });
  ASSERT_TRUE(r0);
  tracker_.reset();
  make_tracker();
  auto r = run_op(tracker_->cancel("c"));
  ASSERT_TRUE(r) << r.message();
  run_until([] { return false; }, std::chrono::milliseconds(100));
  EXPECT_EQ(state("c"), State::cancelled);
  EXPECT_EQ(api_.creates, 0);
  EXPECT_EQ(run_op(tracker_->cancel("c")).kind(), ErrorKind::conflict);
  EXPECT_EQ(run_op(tracker_->cancel("nope")).kind(), ErrorKind::not_found);
}

TEST_F(TrackerTest, QueuedRowsWrittenBehindItsBackAreAdoptedOnce) {
  make_tracker();
  auto r = store_->enqueue({make_spec("offline")}, "personactl", "offline", clock_.now(),
                           [] { return new_client_ref(); });
  ASSERT_TRUE(r);
  run_until([] { return false; }, std::chrono::milliseconds(30));
  EXPECT_EQ(api_.creates, 0);  // the tracker did not know of it
  EXPECT_EQ(run_op(tracker_->adopt_queued()), 1u);
  EXPECT_EQ(run_op(tracker_->adopt_queued()), 0u);  // already scheduled
  ASSERT_TRUE(run_until([&] { return final_state("offline"); }));
  EXPECT_EQ(api_.creates, 1);
}

TEST_F(TrackerTest, TransientPollErrorsDoNotCountAsPolls) {
  api_.statuses = {"done"};
  api_.get_faults = {Fault::transient, Fault::transient};
  make_tracker();
  enqueue({make_spec("flaky")});
  ASSERT_TRUE(run_until([&] { return final_state("flaky"); }));
  Job j = job("flaky");
  EXPECT_EQ(j.state, State::done);
  EXPECT_EQ(j.polls, 1);
  EXPECT_EQ(api_.gets, 3);
  EXPECT_EQ(tracker_->metrics().api_transient, 2);
}

TEST_F(TrackerTest, MaxInFlightIsHonoured) {
  api_.latency = std::chrono::milliseconds(3);
  options_.api.max_in_flight = 3;
  make_tracker();
  std::vector<PersonaSpec> specs;
  for (int i = 0; i < 12; ++i) specs.push_back(make_spec("j" + std::to_string(i)));
  enqueue(specs);
  ASSERT_TRUE(run_until([&] {
    for (int i = 0; i < 12; ++i)
      if (!final_state("j" + std::to_string(i))) return false;
    return true;
  }));
  EXPECT_EQ(api_.max_in_flight_seen, 3);
  EXPECT_EQ(api_.creates, 12);
}

// Holds writes back until released: a commit as slow as a test wants (an fsync on a busy disk).
class HeldWritesRunner final : public StoreRunner {
 public:
  explicit HeldWritesRunner(StoreRunner& inner) : inner_(inner) {}
  void submit(Task task) override {
    if (task.access != Access::read && (holding || (hold_when && hold_when()))) {
      held.push_back(std::move(task));
      return;
    }
    inner_.submit(std::move(task));
  }
  Stats stats() const override { return inner_.stats(); }
  void release() {
    holding = false;
    hold_when = nullptr;
    auto tasks = std::move(held);
    held.clear();
    for (auto& t : tasks) inner_.submit(std::move(t));
  }
  bool holding = false;
  std::function<bool()> hold_when;  // holds the writes submitted while it says so
  std::vector<Task> held;

 private:
  StoreRunner& inner_;
};

TEST_F(TrackerTest, APollWaitingForItsCommitHoldsNoRequestSlot) {
  // One request slot, three pending jobs due together, and every write held back: the second
  // and third polls go out while the first waits for its commit. The slot counts requests,
  // not steps; a slow fsync must not leave the API's connections idle.
  options_.api.max_in_flight = 1;
  options_.poll.first_after = Millis(400'000);  // 200 ms of real time: past the set-up
  options_.poll.jitter = 0;
  api_.statuses = {"processing"};
  api_.latency = std::chrono::milliseconds(1);
  HeldWritesRunner runner(*runner_);
  make_tracker(&runner);
  enqueue({make_spec("p1"), make_spec("p2"), make_spec("p3")});
  ASSERT_TRUE(run_until([&] {
    return state("p1") == State::pending && state("p2") == State::pending &&
           state("p3") == State::pending;
  }));
  ASSERT_EQ(api_.gets, 0) << "the polls came before the writes were held";
  runner.holding = true;

  ASSERT_TRUE(run_until([&] { return api_.gets == 3; }, std::chrono::seconds(5)))
      << api_.gets << " polls went out while the first one's commit was held";
  EXPECT_EQ(runner.held.size(), 3u);  // every poll's record waits for its commit
  EXPECT_EQ(api_.max_in_flight_seen, 1);
  EXPECT_EQ(job("p1").polls, 0);  // nothing recorded yet

  runner.release();
  ASSERT_TRUE(run_until([&] { return runner.held.empty() && job("p3").polls >= 1; }));
  EXPECT_GE(job("p1").polls, 1);
  EXPECT_GE(job("p2").polls, 1);
  EXPECT_EQ(job("p3").remote_status, "processing");
}

// Two creates answered with one remote id (the API's fault) whose results are committed side by
// side: the one committed first takes the persona, the other waits for the operator. The check
// for another holder is the commit's own: a read before it would not see a result waiting in
// the same group, and the second commit then broke UNIQUE(remote_id) (a store error, the step
// run again and again).
TEST_F(TrackerTest, TwoCreatesAnsweredWithOneIdSideBySideGiveItToOneJobOnly) {
  options_.api.max_in_flight = 2;
  api_.latency = std::chrono::milliseconds(5);
  api_.answer_creates_with_id = "remote-1";
  HeldWritesRunner runner(*runner_);
  make_tracker(&runner);
  // Both intent records pass; every write after the first answer waits for both answers.
  runner.hold_when = [&] { return api_.creates >= 1; };
  enqueue({make_spec("a"), make_spec("b")});
  ASSERT_TRUE(run_until([&] { return api_.creates == 2 && runner.held.size() == 2; }))
      << api_.creates << " creates, " << runner.held.size() << " writes held";
  runner.release();
  ASSERT_TRUE(run_until([&] { return job("a").needs_operator || job("b").needs_operator; }))
      << log();
  const Job a = job("a"), b = job("b");
  const Job& holder = a.needs_operator ? b : a;
  const Job& flagged = a.needs_operator ? a : b;
  EXPECT_EQ(holder.remote_id, "remote-1");
  EXPECT_NE(holder.state, State::submitting);
  EXPECT_EQ(flagged.state, State::submitting);
  EXPECT_FALSE(flagged.remote_id);
  EXPECT_THAT(flagged.operator_reason.value_or(""),
              HasSubstr("which belongs to job '" + holder.key + "'"));
  run_until([] { return false; }, std::chrono::milliseconds(200));
  EXPECT_EQ(api_.creates, 2);  // nothing resent
  EXPECT_EQ(job(flagged.key).attempts, 1);
  EXPECT_THAT(log(), Not(HasSubstr("store_error")));
}

TEST_F(TrackerTest, AnOperatorActionCutOffByAStoppedLoopMayOutliveTheTracker) {
  // A lost lease stops the daemon's loop at once: an operator action waiting for its commit is
  // never resumed, and its coroutine is destroyed after the tracker (with the loop's queue).
  // Unwinding it then must not touch the tracker (ASan and valgrind saw a use-after-free).
  ASSERT_TRUE(store_->enqueue({make_spec("c")}, "test", "test", clock_.now(),
                              [] { return new_client_ref(); }));
  HeldWritesRunner runner(*runner_);
  runner.holding = true;
  make_tracker(&runner);
  tracker_->stop_taking_work();  // keeps it queued: only the cancel writes
  bool completed = false;
  boost::asio::co_spawn(ioc_, tracker_->cancel("c"),
                        [&](std::exception_ptr, Result<ActionOutcome>) { completed = true; });
  ASSERT_TRUE(run_until([&] { return runner.held.size() == 1; }));
  tracker_.reset();
  runner.held.clear();  // the write never runs; its waiting coroutine unwinds on the loop
  ioc_.restart();
  ioc_.poll();
  EXPECT_FALSE(completed);
  EXPECT_EQ(state("c"), State::queued);  // nothing was written
}

TEST_F(TrackerTest, ACreateWaitingForItsResultCommitHoldsNoRequestSlot) {
  // One request slot, and a create's result held back before its commit: a poll due meanwhile
  // still goes out. A create holds its slot from before its intent record to the end of its
  // request (the sent time recorded must be the real one), not through its result's commit.
  options_.api.max_in_flight = 1;
  options_.poll.first_after = Millis(400'000);  // 200 ms of real time
  options_.poll.jitter = 0;
  api_.statuses = {"processing"};
  api_.latency = std::chrono::milliseconds(1);
  HeldWritesRunner runner(*runner_);
  make_tracker(&runner);
  enqueue({make_spec("p")});
  ASSERT_TRUE(run_until([&] { return state("p") == State::pending; }));
  ASSERT_EQ(api_.gets, 0) << "the poll came before the second create";
  runner.hold_when = [&] { return api_.creates > 1; };  // the second create's result
  enqueue({make_spec("c")});

  ASSERT_TRUE(run_until([&] { return api_.gets >= 1; }, std::chrono::seconds(5)))
      << "the poll waited for the create's result commit";
  EXPECT_EQ(api_.creates, 2);
  EXPECT_EQ(api_.max_in_flight_seen, 1);
  EXPECT_EQ(state("c"), State::submitting);  // its result is not committed yet

  runner.release();
  ASSERT_TRUE(run_until([&] { return state("c") == State::pending; }));
}

TEST_F(TrackerTest, ACreateLeavesRightAfterItsIntentRecord) {
  // The intent record's sent time (last_sent_at) is where a reconcile counts from, here or on
  // the host that takes over: a create must not wait for a request slot after it. One slot,
  // three creates of 100 ms each: the later ones wait for the slot before their record.
  options_.api.max_in_flight = 1;
  api_.latency = std::chrono::milliseconds(100);
  make_tracker();
  enqueue({make_spec("w1"), make_spec("w2"), make_spec("w3")});
  ASSERT_TRUE(run_until([&] {
    return state("w1") != State::queued && state("w2") != State::queued &&
           state("w3") != State::queued && api_.create_arrivals.size() == 3;
  }));
  ASSERT_TRUE(run_until([&] { return final_state("w3"); }, std::chrono::seconds(30)));
  const Millis request{static_cast<std::int64_t>(100 * kScale)};  // one create, in clock time
  std::vector<TimePoint> sent;
  for (const char* key : {"w1", "w2", "w3"}) sent.push_back(*job(key).last_sent_at);
  std::sort(sent.begin(), sent.end());
  ASSERT_EQ(api_.create_arrivals.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_LE(api_.create_arrivals[i] - sent[i], request / 2)
        << "create " << i + 1 << " left long after its recorded sent time";
  }
}

TEST_F(TrackerTest, StepsWaitingForARequestSlotSendNothingOnceStopping) {
  // Steps may outnumber request slots; at a stop, those still waiting for a slot end without
  // sending and without writing: their jobs stay queued (a create's intent record is written
  // only once it has its slot), and the next start sends them without a reconcile.
  options_.api.max_in_flight = 1;
  api_.latency = std::chrono::milliseconds(100);
  make_tracker();
  enqueue({make_spec("s1"), make_spec("s2"), make_spec("s3")});
  // (Not run_until: it lets running steps finish.)
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (api_.in_flight == 0 && std::chrono::steady_clock::now() < deadline) {
    ioc_.restart();
    ioc_.run_one_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(api_.in_flight, 1);
  EXPECT_EQ(tracker_->in_flight(), 3u);  // one step sends, two wait for the slot
  tracker_->stop_taking_work();
  ASSERT_TRUE(run_until([&] { return tracker_->in_flight() == 0; }));
  EXPECT_EQ(api_.creates, 1);
  EXPECT_EQ(state("s2"), State::queued);
  EXPECT_EQ(state("s3"), State::queued);
  tracker_.reset();
  make_tracker();
  ASSERT_TRUE(run_until([&] { return final_state("s2") && final_state("s3"); }));
  EXPECT_EQ(api_.creates, 3);
  EXPECT_EQ(tracker_->metrics().reconciles, 0u);
}

TEST_F(TrackerTest, StepsThatNeverSuspendLoseNoWakeUps) {
  // With an API that answers without suspending, a step can become due again before its
  // completion handler has run; the job must run again, not be forgotten.
  options_.poll.first_after = Millis(0);
  options_.poll.jitter = 0;
  options_.api.max_in_flight = 64;
  make_tracker();
  std::vector<PersonaSpec> specs;
  for (int i = 0; i < 400; ++i) specs.push_back(make_spec("z" + std::to_string(i)));
  enqueue(specs);
  auto all_final = [&] {
    auto active = store_->load_active();
    return active && active->empty();
  };
  ASSERT_TRUE(run_until(all_final, std::chrono::seconds(30)))
      << store_->load_active()->size() << " jobs never finished; scheduled "
      << tracker_->scheduled() << ", running " << tracker_->in_flight();
  EXPECT_EQ(api_.creates, 400);
}

TEST_F(TrackerTest, KnownKeyIsNotResubmittedAndChangedSpecWarns) {
  make_tracker();
  enqueue({make_spec("k")});
  ASSERT_TRUE(run_until([&] { return final_state("k"); }));
  auto changed = make_spec("k", "Someone Else");
  auto r = run_op(tracker_->enqueue({changed}, "again.toml"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  EXPECT_FALSE((*r)[0].inserted);
  EXPECT_TRUE((*r)[0].spec_changed);
  EXPECT_EQ((*r)[0].state, State::done);
  run_until([] { return false; }, std::chrono::milliseconds(50));
  EXPECT_EQ(api_.creates, 1);
  EXPECT_THAT(log(), HasSubstr("spec_changed key=k"));
}

TEST_F(TrackerTest, UnknownRemoteStatusIsKeptVerbatimAndWarnedOnce) {
  api_.statuses = {"quantum_review", "quantum_review", "quantum_review", "done"};
  make_tracker();
  enqueue({make_spec("odd")});
  ASSERT_TRUE(run_until([&] { return final_state("odd"); }));
  EXPECT_EQ(state("odd"), State::done);
  std::string l = log();
  auto first = l.find("unknown_status");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(l.find("unknown_status", first + 1), std::string::npos);
  EXPECT_THAT(l, HasSubstr("remote_status=quantum_review"));
}

// A poll that changes nothing leaves the job in memory exactly as written: the next poll of it
// reads nothing from the store. An operator's action (on any job) drops what is kept, and the
// next poll reads the row again once.
TEST_F(TrackerTest, APollThatChangesNothingKeepsTheJobSoItsNextPollReadsNothing) {
  api_.statuses = {"pending", "processing"};  // then "processing" for good
  make_tracker();
  enqueue({make_spec("kept"), make_spec("other")});
  ASSERT_TRUE(run_until([&] { return job("kept").polls >= 4 && job("other").polls >= 4; }));
  const auto reads = runner_->stats().reads;
  const auto polls = job("kept").polls;
  ASSERT_TRUE(run_until([&] { return job("kept").polls >= polls + 5; }));
  EXPECT_EQ(runner_->stats().reads, reads);
  EXPECT_EQ(job("kept").state, State::pending);

  auto cancelled = run_op(tracker_->cancel("other"));
  ASSERT_TRUE(cancelled) << cancelled.message();
  const auto after_action = runner_->stats().reads;
  const auto polls_then = job("kept").polls;
  ASSERT_TRUE(run_until([&] { return job("kept").polls >= polls_then + 4; }));
  EXPECT_EQ(runner_->stats().reads, after_action + 1);
  EXPECT_EQ(job("other").state, State::cancelled);
  EXPECT_EQ(job("kept").state, State::pending);
}

}  // namespace
}  // namespace personad::testing
