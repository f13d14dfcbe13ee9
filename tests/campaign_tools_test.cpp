// The pure parts of the campaign tools: operator action plans (one rule for one key and for a
// selection), the event feed's answers and its wake-up, the followed jobs of watch/wait (counts,
// lines, exit code), the bulk confirmation rule and lines, and completion from a CLI11 tree.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "personad/completion.hpp"
#include "personad/ctl.hpp"
#include "personad/event_feed.hpp"
#include "personad/follow.hpp"
#include "personad/operator_action.hpp"

namespace personad::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

Job job_in(State s) {
  Job j;
  j.id = 7;
  j.key = "k-7";
  j.state = s;
  j.client_ref = "ref-old";
  j.remote_id = "rid-1";
  j.remote_status = "reviewing";
  return j;
}

const TimePoint kNow = TimePoint(std::chrono::hours(24 * 365 * 50));
std::string fresh_ref() { return "ref-new"; }

TEST(OperatorAction, CancelAppliesToEveryNonFinalStateOnly) {
  for (State s : {State::queued, State::submitting, State::pending}) {
    auto p = plan_cancel(job_in(s));
    ASSERT_TRUE(p) << to_string(s);
    EXPECT_EQ(p->to, State::cancelled);
    EXPECT_THAT(p->reason, HasSubstr("cancelled by operator"));
  }
  EXPECT_THAT(plan_cancel(job_in(State::pending))->reason, HasSubstr("rid-1 is no longer tracked"));
  for (State s : {State::done, State::failed, State::expired, State::cancelled}) {
    auto p = plan_cancel(job_in(s));
    ASSERT_FALSE(p);
    EXPECT_EQ(p.kind(), ErrorKind::conflict);
    EXPECT_THAT(p.message(), HasSubstr("already " + std::string(to_string(s))));
  }
}

TEST(OperatorAction, RetryResumesExpiredAndResubmitsFailedOnlyWhenConfirmed) {
  auto expired = plan_retry(job_in(State::expired), false, kNow, Millis(3600'000), fresh_ref);
  ASSERT_TRUE(expired);
  EXPECT_EQ(expired->to, State::pending);
  EXPECT_EQ(expired->job.next_poll_at, kNow);
  EXPECT_EQ(expired->job.expires_at, kNow + Millis(3600'000));

  auto unconfirmed = plan_retry(job_in(State::failed), false, kNow, Millis(1), fresh_ref);
  ASSERT_FALSE(unconfirmed);
  EXPECT_THAT(unconfirmed.message(), HasSubstr("--resubmit"));

  auto resubmit = plan_retry(job_in(State::failed), true, kNow, Millis(1), fresh_ref);
  ASSERT_TRUE(resubmit);
  EXPECT_EQ(resubmit->to, State::queued);
  EXPECT_EQ(resubmit->job.client_ref, "ref-new");
  EXPECT_FALSE(resubmit->job.remote_id);
  EXPECT_THAT(resubmit->reason, HasSubstr("previous remote persona: rid-1"));

  Job missing = job_in(State::failed);
  missing.missing_since = kNow;
  auto back = plan_retry(missing, false, kNow, Millis(1), fresh_ref);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->to, State::pending);
  EXPECT_FALSE(back->job.missing_since);

  for (State s : {State::queued, State::pending, State::done, State::cancelled})
    EXPECT_FALSE(plan_retry(job_in(s), true, kNow, Millis(1), fresh_ref)) << to_string(s);
}

std::deque<FeedEvent> events(std::int64_t first, std::int64_t last) {
  std::deque<FeedEvent> d;
  for (std::int64_t i = first; i <= last; ++i) d.push_back(FeedEvent{i, kNow, "k" + std::to_string(i)});
  return d;
}

TEST(EventFeed, AnswersTheEventsAfterTheResumePointOrAGap) {
  const auto d = events(5, 9);  // 1-4 dropped already
  auto a = feed_answer(d, "e1", 9, FeedRequest{"e1", 6, 2, Millis(0)});
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->gap);
  ASSERT_EQ(a->events.size(), 2u);
  EXPECT_EQ(a->events[0].seq, 7);
  EXPECT_EQ(a->events[1].seq, 8);
  EXPECT_TRUE(feed_answer(d, "e1", 9, FeedRequest{"e1", 4, 10, Millis(0)})->events.size() == 5);
  EXPECT_TRUE(feed_answer(d, "e1", 9, FeedRequest{"e1", 3, 10, Millis(0)})->gap) << "event 4 is gone";
  EXPECT_TRUE(feed_answer(d, "e1", 9, FeedRequest{"e0", 9, 10, Millis(0)})->gap) << "another epoch";
  EXPECT_TRUE(feed_answer(d, "e1", 9, FeedRequest{"e1", 12, 10, Millis(0)})->gap) << "from the future";
  auto now = feed_answer(d, "e1", 9, FeedRequest{"", 9, 10, Millis(0)});
  ASSERT_TRUE(now);
  EXPECT_TRUE(now->events.empty());
  EXPECT_EQ(now->last_seq, 9);
  EXPECT_FALSE(feed_answer(d, "e1", 9, FeedRequest{"e1", 9, 10, Millis(5000)})) << "waits";
  EXPECT_FALSE(feed_answer({}, "e1", 0, FeedRequest{"e1", 0, 10, Millis(5000)})) << "waits";
}

TEST(EventFeed, AWaitingFollowerWakesOnTheNextCommit) {
  boost::asio::io_context ioc;
  EventFeed feed(ioc.get_executor(), "e", 3);
  std::optional<FeedBatch> got;
  FeedRequest request;
  request.epoch = "e";
  request.wait = Millis(3'600'000);
  boost::asio::co_spawn(
      ioc, feed.next(request),
      [&](std::exception_ptr, FeedBatch b) { got = std::move(b); });
  ioc.poll();
  EXPECT_FALSE(got);
  EXPECT_EQ(feed.waiting(), 1u);
  Job j = job_in(State::pending);
  Transition t{j.id, kNow, State::pending, State::done, "done", "done"};
  feed.publish(j, t);
  ioc.poll();
  ASSERT_TRUE(got);
  ASSERT_EQ(got->events.size(), 1u);
  EXPECT_EQ(got->events[0].key, "k-7");
  EXPECT_EQ(got->events[0].to, State::done);
  EXPECT_EQ(feed.waiting(), 0u);
  for (int i = 0; i < 5; ++i) feed.publish(j, t);  // capacity 3: 1-3 dropped
  ioc.poll();
  EXPECT_TRUE(feed_answer({}, "e", 6, FeedRequest{"e", 1, 10, Millis(0)})->gap);
  auto json_text = feed_batch_json(*got);
  EXPECT_THAT(json_text, HasSubstr("\"to\":\"done\""));
  EXPECT_THAT(json_text, HasSubstr("\"from\":\"pending\""));
}

TEST(EventFeed, KeepsAtMostItsDefaultCapacityAndTellsAFollowerBehindAGap) {
  // The feed lives as long as the daemon: after an intake of many jobs it must not hold every
  // transition (memory), and a follower further behind than what it keeps reads the store again.
  boost::asio::io_context ioc;
  EventFeed feed(ioc.get_executor(), "e");
  Job j = job_in(State::pending);
  Transition t{j.id, kNow, State::pending, State::done, "done", "done"};
  const auto n = static_cast<std::int64_t>(EventFeed::kDefaultCapacity) + 5;
  for (std::int64_t i = 0; i < n; ++i) feed.publish(j, t);
  EXPECT_EQ(feed.size(), EventFeed::kDefaultCapacity);
  EXPECT_EQ(feed.last_seq(), n);
  auto ask = [&](std::int64_t after) {
    std::optional<FeedBatch> got;
    FeedRequest request;  // (named: no braced temporary into a coroutine with GCC 12)
    request.epoch = "e";
    request.after = after;
    request.max = 10;
    boost::asio::co_spawn(ioc, feed.next(request),
                          [&](std::exception_ptr, FeedBatch b) { got = std::move(b); });
    ioc.restart();  // the previous ask ran the context out of work
    ioc.poll();
    return got;
  };
  auto behind = ask(4);  // event 5 is the oldest dropped: 6.. are kept
  ASSERT_TRUE(behind);
  EXPECT_TRUE(behind->gap);
  auto oldest = ask(5);
  ASSERT_TRUE(oldest);
  EXPECT_FALSE(oldest->gap);
  ASSERT_EQ(oldest->events.size(), 10u);
  EXPECT_EQ(oldest->events.front().seq, 6);
}

json::object job_obj(const std::string& key, const std::string& state, const std::string& rs = "",
                     const std::string& eta = "") {
  json::object o;
  o["key"] = key;
  o["state"] = state;
  o["remote_status"] = rs.empty() ? json::value(nullptr) : json::value(rs);
  o["eta"] = eta.empty() ? json::value(nullptr) : json::value(eta);
  return o;
}

json::object event(const std::string& key, const std::string& from, const std::string& to,
                   const std::string& rs) {
  json::object o;
  o["seq"] = 1;
  o["at"] = "2026-12-01T00:00:00Z";
  o["key"] = key;
  o["from"] = from;
  o["to"] = to;
  o["remote_status"] = rs;
  o["reason"] = "because";
  return o;
}

TEST(Follow, CountsStagesLinesAndTheExitCodeOfWait) {
  Campaign c;
  c.add(job_obj("a", "pending", "reviewing", "2026-12-03T00:00:00Z"));
  c.add(job_obj("b", "pending", "processing", "2026-12-02T00:00:00Z"));
  c.add(job_obj("c", "queued"));
  EXPECT_EQ(c.total(), 3u);
  EXPECT_FALSE(c.all_final());
  EXPECT_EQ(c.stages().at("reviewing"), 1u);
  EXPECT_EQ(c.stages().at("-"), 1u);
  EXPECT_EQ(c.eta(), "2026-12-03T00:00:00Z");
  EXPECT_FALSE(c.apply(event("zz", "pending", "done", "done"))) << "not followed";
  EXPECT_TRUE(c.apply(event("a", "pending", "done", "done")));
  EXPECT_EQ(c.eta(), "2026-12-02T00:00:00Z");
  EXPECT_EQ(c.latest().back(),
            "2026-12-01T00:00:00Z a pending -> done remote_status=done reason=\"because\"");
  EXPECT_TRUE(c.apply(event("b", "pending", "done", "done")));
  EXPECT_TRUE(c.apply(event("c", "queued", "cancelled", "")));
  EXPECT_TRUE(c.all_final());
  EXPECT_EQ(summary_line(c), "3 jobs: 2 done, 1 cancelled (3 final)");
  EXPECT_EQ(wait_exit_code(c), 3);
  Campaign ok;
  ok.add(job_obj("a", "done"));
  EXPECT_EQ(wait_exit_code(ok), 0);
  EXPECT_EQ(summary_line(ok), "1 job: 1 done (1 final)");
  EXPECT_EQ(progress_bar(1, 4, 8), "[##......] 1/4");
  EXPECT_EQ(progress_bar(0, 0, 4), "[####] 0/0");
}

TEST(Bulk, DryRunStopsYesGoesATerminalIsAskedAndOtherwiseYesIsNeeded) {
  using ctl::ConfirmStep;
  EXPECT_EQ(ctl::confirm_step(true, true, true), ConfirmStep::preview_only);
  EXPECT_EQ(ctl::confirm_step(true, false, false), ConfirmStep::preview_only);
  EXPECT_EQ(ctl::confirm_step(false, true, false), ConfirmStep::go);
  EXPECT_EQ(ctl::confirm_step(false, true, true), ConfirmStep::go);
  EXPECT_EQ(ctl::confirm_step(false, false, true), ConfirmStep::ask);
  EXPECT_EQ(ctl::confirm_step(false, false, false), ConfirmStep::need_yes);
  EXPECT_TRUE(ctl::is_yes("y"));
  EXPECT_TRUE(ctl::is_yes(" YES \n"));
  EXPECT_FALSE(ctl::is_yes(""));
  EXPECT_FALSE(ctl::is_yes("n"));
  EXPECT_FALSE(ctl::is_yes("yes please"));
}

TEST(Bulk, OneLinePerJob) {
  json::object acted{{"key", "k1"}, {"result", "cancelled"}, {"state", "cancelled"}, {"why", "x"}};
  EXPECT_EQ(ctl::bulk_result_line(acted), "cancelled k1");
  json::object retried{{"key", "k2"}, {"result", "retried"}, {"state", "queued"}, {"why", "x"}};
  EXPECT_EQ(ctl::bulk_result_line(retried), "retried k2");
  json::object skipped{{"key", "k3"}, {"result", "skipped"}, {"state", "done"},
                       {"why", "job 'k3' is already done"}};
  EXPECT_EQ(ctl::bulk_result_line(skipped), "skipped k3 done: job 'k3' is already done");
}

TEST(Completion, ScriptsNameEverySubcommandFlagAndState) {
  CLI::App app{"demo", "personactl"};
  std::string s;
  std::vector<std::string> v;
  bool b = false;
  app.add_option("-c,--config", s, "config file");
  auto* list = app.add_subcommand("list", "one row per job");
  list->add_option("--state", v, "state")->type_name("S");
  list->add_flag("--json", b, "json");
  list->add_flag("--keys-only", b, "hidden")->group("");
  auto* show = app.add_subcommand("show", "one job");
  show->add_option("KEY", s);
  app.add_subcommand("secret", "")->group("");
  const std::string bash = completion_script(app, Shell::bash);
  EXPECT_THAT(bash, HasSubstr("list|show)"));
  EXPECT_THAT(bash, HasSubstr("--state --json"));
  EXPECT_THAT(bash, HasSubstr("queued submitting pending done failed expired cancelled"));
  EXPECT_THAT(bash, HasSubstr("list --keys-only"));
  EXPECT_THAT(bash, HasSubstr("complete -F _personactl personactl"));
  EXPECT_THAT(bash, ::testing::Not(HasSubstr("secret")));
  EXPECT_THAT(bash, ::testing::Not(HasSubstr("--keys-only'")));
  const std::string zsh = completion_script(app, Shell::zsh);
  EXPECT_THAT(zsh, HasSubstr("'list:one row per job'"));
  EXPECT_THAT(zsh, HasSubstr("'--state[state]:state:(queued"));
  EXPECT_THAT(zsh, HasSubstr("'--json[json]' "));  // a flag takes no value
  const std::string fish = completion_script(app, Shell::fish);
  EXPECT_THAT(fish, HasSubstr("complete -c personactl -n '__fish_use_subcommand' -a show -d 'one job'"));
  EXPECT_THAT(fish, HasSubstr("-l state -r -x -a 'queued"));
  EXPECT_THAT(fish, HasSubstr("-l json -d 'json'"));
  EXPECT_EQ(parse_shell("tcsh"), std::nullopt);
}

}  // namespace
}  // namespace personad::testing
