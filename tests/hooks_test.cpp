// Hooks: the environment a hook sees (the transition's fields, none of the daemon's secrets),
// and the runner: one run per transition, failures and timeouts counted, an overrunning hook
// killed, and a hook that ends just as its deadline fires leaves nothing behind (run this file
// under valgrind or -fsanitize=address to see it clean).
#include "personad/hooks.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <signal.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace personad {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

Job job() {
  Job j;
  j.key = "acme-jane-01";
  j.remote_id = "r-1";
  j.client_ref = "ref-1";
  return j;
}

Transition transition() {
  Transition t;
  t.at = from_unix_ms(0);
  t.from = State::pending;
  t.to = State::done;
  t.remote_status = "done";
  t.reason = "process_status=done is_active=true";
  return t;
}

TEST(Hooks, EnvironmentCarriesTheTransitionAndDropsSecrets) {
  std::vector<std::string> inherited{"PATH=/usr/bin", "CREATIFY_API_KEY=s3cret",
                                     "CREATIFY_API_ID=id", "NOTIFY_SOCKET=/run/x",
                                     "WATCHDOG_USEC=1", "CREDENTIALS_DIRECTORY=/run/creds",
                                     "PERSONA_KEY=stale", "LANG=C.UTF-8"};
  auto env = hook_environment(job(), transition(), inherited);
  EXPECT_THAT(env, Contains("PATH=/usr/bin"));
  EXPECT_THAT(env, Contains("LANG=C.UTF-8"));
  EXPECT_THAT(env, Contains("PERSONA_KEY=acme-jane-01"));
  EXPECT_THAT(env, Contains("REMOTE_ID=r-1"));
  EXPECT_THAT(env, Contains("FROM_STATE=pending"));
  EXPECT_THAT(env, Contains("TO_STATE=done"));
  EXPECT_THAT(env, Contains("REMOTE_STATUS=done"));
  EXPECT_THAT(env, Contains("REASON=process_status=done is_active=true"));
  EXPECT_THAT(env, Contains("PERSONAD_CLIENT_REF=ref-1"));
  for (const auto& e : env) {
    EXPECT_THAT(e, Not(HasSubstr("s3cret")));
    EXPECT_THAT(e, Not(HasSubstr("NOTIFY_SOCKET")));
    EXPECT_THAT(e, Not(HasSubstr("CREDENTIALS_DIRECTORY")));
    EXPECT_NE(e, "PERSONA_KEY=stale");
  }
}

class HookRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("personad-hooks-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    auto logger = std::make_shared<spdlog::logger>(
        "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_));
    logger->set_pattern("%v");
    log_events_ = std::make_unique<EventLog>(logger, LogFormat::text);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string script(const std::string& name, const std::string& body) {
    auto p = dir_ / name;
    std::ofstream(p) << "#!/bin/sh\n" << body << "\n";
    std::filesystem::permissions(p, std::filesystem::perms::owner_all);
    return p.string();
  }

  void run_until_idle(HookRunner& r) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!r.idle() && std::chrono::steady_clock::now() < deadline) {
      ioc_.restart();
      ioc_.run_for(std::chrono::milliseconds(10));
    }
  }

  std::filesystem::path dir_;
  std::ostringstream log_;
  std::unique_ptr<EventLog> log_events_;
  boost::asio::io_context ioc_;
};

TEST_F(HookRunnerTest, RunsOncePerTransition) {
  auto out = (dir_ / "out").string();
  HookOptions o;
  o.program = script("ok.sh", "echo \"$PERSONA_KEY $TO_STATE\" >> " + out);
  HookRunner r(ioc_.get_executor(), o, *log_events_);
  for (int i = 0; i < 10; ++i) r.on_transition(job(), transition());
  run_until_idle(r);
  std::ifstream in(out);
  int lines = 0;
  for (std::string l; std::getline(in, l);) {
    EXPECT_EQ(l, "acme-jane-01 done");
    ++lines;
  }
  EXPECT_EQ(lines, 10);
  EXPECT_EQ(r.stats().runs, 10);
  EXPECT_EQ(r.stats().failures, 0);
}

TEST_F(HookRunnerTest, FailuresAndTimeoutsAreCountedAndLogged) {
  HookOptions o;
  o.program = script("fail.sh", "exit 7");
  HookRunner r(ioc_.get_executor(), o, *log_events_);
  r.on_transition(job(), transition());
  run_until_idle(r);
  EXPECT_EQ(r.stats().failures, 1);
  EXPECT_THAT(log_.str(), HasSubstr("hook_failed key=acme-jane-01"));
  EXPECT_THAT(log_.str(), HasSubstr("exit status 7"));

  o.program = script("slow.sh", "sleep 5");
  o.timeout = Millis(100);
  r.update(o);
  auto start = std::chrono::steady_clock::now();
  r.on_transition(job(), transition());
  run_until_idle(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(r.stats().failures, 2);
  EXPECT_THAT(log_.str(), HasSubstr("timed out after 100ms"));

  o.program = (dir_ / "missing").string();
  r.update(o);
  r.on_transition(job(), transition());
  run_until_idle(r);
  EXPECT_EQ(r.stats().failures, 3);
  EXPECT_THAT(log_.str(), HasSubstr("cannot start"));
}

// The overrunning hook itself is killed (exec: the script's pid is the sleeping program), and the
// run counts once, as a failure.
TEST_F(HookRunnerTest, OverrunningHookIsKilledAndCounted) {
  auto pidfile = (dir_ / "pid").string();
  HookOptions o;
  o.program = script("overrun.sh", "echo $$ > " + pidfile + "\nexec sleep 30");
  o.timeout = Millis(200);
  HookRunner r(ioc_.get_executor(), o, *log_events_);
  auto start = std::chrono::steady_clock::now();
  r.on_transition(job(), transition());
  run_until_idle(r);
  EXPECT_TRUE(r.idle());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(r.stats().runs, 1);
  EXPECT_EQ(r.stats().failures, 1);
  EXPECT_THAT(log_.str(), HasSubstr("timed out after 200ms; killed"));
  pid_t pid = 0;
  std::ifstream(pidfile) >> pid;
  ASSERT_GT(pid, 0);
  // Killed and reaped: no such process (or, at worst, an unrelated one that reused the pid,
  // which then is not our sleeping hook).
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string cmd;
  std::getline(cmdline, cmd);
  EXPECT_THAT(cmd, Not(HasSubstr("sleep")));
}

// The hook ends and its deadline passes while the loop is busy elsewhere, so both are ready in
// the same turn of the loop. Nothing of the run may outlive it: before the fix the deadline's
// handler ran after the coroutine frame was freed, wrote into it and kill()ed a reaped pid
// (heap-use-after-free under ASan/valgrind).
TEST_F(HookRunnerTest, HookEndingAtItsDeadlineIsSafe) {
  HookOptions o;
  o.program = script("quick.sh", "exit 0");
  o.timeout = Millis(20);
  o.max_running = 4;
  HookRunner r(ioc_.get_executor(), o, *log_events_);
  constexpr int kRuns = 40;
  for (int i = 0; i < kRuns; i += 4) {
    for (int k = 0; k < 4; ++k) r.on_transition(job(), transition());
    // Let the runs start and reach their wait, then block the loop past the deadline and the
    // hooks' exit, so both completions are ready together.
    ioc_.restart();
    ioc_.poll();
    boost::asio::post(ioc_, [] { std::this_thread::sleep_for(std::chrono::milliseconds(80)); });
    run_until_idle(r);
    ASSERT_TRUE(r.idle());
  }
  // A few more turns for anything left queued behind a finished run.
  ioc_.restart();
  ioc_.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(r.stats().runs, kRuns);
  // Each run either ended in time or was timed out; both are counted once.
  EXPECT_LE(r.stats().failures, kRuns);
}

TEST_F(HookRunnerTest, FullQueueDropsAndCounts) {
  HookOptions o;
  o.program = script("ok.sh", "true");
  o.max_running = 1;
  o.max_queued = 2;
  HookRunner r(ioc_.get_executor(), o, *log_events_);
  for (int i = 0; i < 6; ++i) r.on_transition(job(), transition());
  run_until_idle(r);
  EXPECT_EQ(r.stats().runs, 3);  // one running at once + two queued
  EXPECT_EQ(r.stats().dropped, 3);
}

}  // namespace
}  // namespace personad
