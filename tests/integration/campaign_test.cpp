// The campaign tools against the real daemon: bulk cancel/retry (count, --dry-run, the --yes
// rule, one line per job, exit codes), wait's exit codes (0, 3, 124), watch in line mode and
// its screen through a pseudo-terminal, and the shell completion generated from the CLI.
#include <fcntl.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "harness.hpp"

namespace personad::it {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using std::chrono::seconds;

std::size_t lines_starting(const std::string& text, const std::string& prefix) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

bool all_in(Environment& env, const std::string& prefix, std::size_t n, const std::string& state) {
  std::size_t seen = 0;
  for (auto& [key, j] : jobs(env))
    if (key.rfind(prefix, 0) == 0 && j.at("state").as_string() == state) ++seen;
  return seen == n;
}

TEST(Campaign, BulkCancelAndRetryCountConfirmAndPrintOneLinePerJob) {
  Environment env("bulk");
  // Real time: nothing finishes during the test; every job stays pending.
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "1", "--seed", "3"},
                         .batches = {{"b.toml", make_batch("b", 12)}}}));
  ASSERT_TRUE(wait_until([&] { return all_in(env, "b-", 12, "pending"); }, seconds(30)))
      << read_file(env.log_path());

  auto dry = env.ctl({"cancel", "--label", "b", "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_THAT(dry.out, HasSubstr("12 jobs match\n"));
  EXPECT_EQ(lines_starting(dry.out, "  b-"), 10u) << dry.out;
  EXPECT_THAT(dry.out, HasSubstr("2 more"));
  EXPECT_TRUE(all_in(env, "b-", 12, "pending")) << "a dry run changes nothing";

  // stdin is not a terminal (the harness gives /dev/null): --yes is needed.
  auto no_yes = env.ctl({"cancel", "--label", "b"});
  EXPECT_EQ(no_yes.code, 2);
  EXPECT_THAT(no_yes.err, HasSubstr("--yes"));
  EXPECT_TRUE(all_in(env, "b-", 12, "pending"));

  EXPECT_EQ(env.ctl({"cancel", "b-0", "--label", "b"}).code, 2) << "KEYs and filters";
  EXPECT_EQ(env.ctl({"cancel", "--state", "bogus", "--yes"}).code, 2);
  EXPECT_EQ(env.ctl({"cancel", "--no-such-flag"}).code, 2) << "CLI11's parse errors are exit 2";
  EXPECT_EQ(env.ctl({"retry"}).code, 2) << "neither KEYs nor filters";

  // wait on pending jobs runs out.
  auto timed_out = env.ctl({"wait", "--label", "b", "--timeout", "1s"});
  EXPECT_EQ(timed_out.code, 124) << timed_out.out << timed_out.err;
  EXPECT_THAT(timed_out.out, HasSubstr("12 jobs: 12 pending"));

  auto some = env.ctl({"cancel", "--key", "b-1*", "--yes"});
  EXPECT_EQ(some.code, 0) << some.err;
  EXPECT_THAT(some.out, HasSubstr("3 jobs match\n"));
  EXPECT_THAT(some.out, HasSubstr("\ncancelled b-1\n"));
  EXPECT_THAT(some.out, HasSubstr("\ncancelled b-10\n"));
  EXPECT_THAT(some.out, HasSubstr("\ncancelled b-11\n"));

  auto rest = env.ctl({"cancel", "--label", "b", "--yes"});
  EXPECT_EQ(rest.code, 0) << rest.err;
  EXPECT_EQ(lines_starting(rest.out, "cancelled b-"), 9u) << rest.out;
  EXPECT_EQ(lines_starting(rest.out, "skipped b-"), 3u) << rest.out;
  EXPECT_THAT(rest.out, HasSubstr("skipped b-1 cancelled: "));
  EXPECT_TRUE(all_in(env, "b-", 12, "cancelled"));

  auto retry = env.ctl({"retry", "--label", "b", "--yes", "--resubmit"});
  EXPECT_EQ(retry.code, 0) << retry.err;
  EXPECT_EQ(lines_starting(retry.out, "skipped b-"), 12u) << retry.out;
  EXPECT_THAT(retry.out, HasSubstr("only failed or expired jobs can be retried"));

  // Every selected job final, some cancelled: exit 3 at once.
  auto waited = env.ctl({"wait", "--label", "b"});
  EXPECT_EQ(waited.code, 3) << waited.err;
  EXPECT_THAT(waited.out, HasSubstr("12 jobs: 12 cancelled"));
  EXPECT_EQ(count_of(read_file(env.log_path()), "to=cancelled"), 12u);
}

TEST(Campaign, WaitExitsZeroWhenAllDoneAndThreeWhenAnyFailed) {
  Environment env("wait");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "20000", "--seed", "5"},
                         .batches = {{"ok.toml", make_batch("ok", 4)},
                                     {"bad.toml", make_batch("bad", 3, {"", "[fail]"})}}}));
  ASSERT_TRUE(wait_until([&] { return jobs(env).size() == 7; }, seconds(10)));
  auto ok = env.ctl({"wait", "--label", "ok", "--timeout", "120s"});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("4 jobs: 4 done (4 final)"));
  auto bad = env.ctl({"wait", "--label", "bad", "--timeout", "120s"});
  EXPECT_EQ(bad.code, 3) << bad.out << bad.err;
  EXPECT_THAT(bad.out, HasSubstr("failed"));
  auto keys = env.ctl({"wait", "ok-0", "ok-1"});
  EXPECT_EQ(keys.code, 0) << keys.err;
  EXPECT_THAT(keys.out, HasSubstr("2 jobs: 2 done"));
  EXPECT_EQ(env.ctl({"wait", "nobody"}).code, 1);
  // The retry of the failed one, by filter, as a dry run: the count, nothing done.
  auto dry = env.ctl({"retry", "--state", "failed", "--resubmit", "--dry-run"});
  EXPECT_EQ(dry.code, 0);
  EXPECT_THAT(dry.out, HasSubstr("1 job matches\n  bad-1\n"));
}

TEST(Campaign, WatchPrintsOneLinePerTransitionThenASummary) {
  Environment env("watch");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "20000", "--seed", "7"},
                         .batches = {{"w.toml", make_batch("w", 5, {"", "", "[fail]"})}}}));
  ASSERT_TRUE(wait_until([&] { return jobs(env).size() == 5; }, seconds(10)));
  auto w = env.ctl({"watch", "--label", "w"});
  EXPECT_EQ(w.code, 0) << w.err;
  EXPECT_THAT(w.out, HasSubstr(" -> done"));
  EXPECT_THAT(w.out, HasSubstr("w-2 pending -> failed"));
  EXPECT_THAT(w.out, HasSubstr("5 jobs: 4 done, 1 failed (5 final)\n"));
  // Every line but the summary is one event of a followed job.
  std::istringstream in(w.out);
  std::size_t events = 0;
  for (std::string line; std::getline(in, line);) events += line.find(" w-") != std::string::npos;
  EXPECT_GE(events, 1u);
}

TEST(Campaign, WatchFollowsThroughADaemonRestartAndLosesNothing) {
  Environment env("restart");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "1", "--seed", "11"},
                         .batches = {{"r.toml", make_batch("r", 3)}}}));
  ASSERT_TRUE(wait_until([&] { return all_in(env, "r-", 3, "pending"); }, seconds(30)));
  Process watch({PERSONACTL_BIN, "--config", env.config_path().string(), "watch", "--label", "r"},
                {}, env.dir() / "watch.out", env.dir() / "watch.err");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  env.stop_daemon(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_TRUE(watch.running()) << "watch waits for the daemon to come back";
  env.start_daemon();
  ASSERT_TRUE(env.wait_for_socket()) << read_file(env.log_path());
  auto cancel = env.ctl({"cancel", "r-0", "r-1"});
  EXPECT_EQ(cancel.code, 0) << cancel.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(env.ctl({"cancel", "r-2"}).code, 0);
  ASSERT_TRUE(wait_until([&] { return !watch.running(); }, seconds(15)))
      << read_file(env.dir() / "watch.out") << read_file(env.dir() / "watch.err");
  EXPECT_EQ(watch.wait(), 0) << read_file(env.dir() / "watch.err");
  const std::string out = read_file(env.dir() / "watch.out");
  EXPECT_THAT(out, HasSubstr("3 jobs: 3 cancelled (3 final)"));
  EXPECT_THAT(out, HasSubstr("r-2 pending -> cancelled")) << "an event after the restart";
}

// Runs personactl under a pseudo-terminal (as a person at a terminal would), returns what the
// terminal received and the exit code.
std::pair<std::string, int> run_in_pty(const std::vector<std::string>& args, seconds limit) {
  int master = -1;
  struct winsize ws {};
  ws.ws_row = 30;
  ws.ws_col = 100;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    ::setenv("TERM", "xterm", 1);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    if (exited && n <= 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  ::close(master);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)};
}

TEST(Campaign, WatchOnATerminalDrawsTheScreenAndEndsWhenAllAreFinal) {
  Environment env("screen");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "20000", "--seed", "9"},
                         .batches = {{"s.toml", make_batch("s", 4)}}}));
  ASSERT_TRUE(wait_until([&] { return jobs(env).size() == 4; }, seconds(10)));
  auto [screen, code] = run_in_pty(
      {PERSONACTL_BIN, "--config", env.config_path().string(), "watch", "--label", "s"},
      seconds(120));
  EXPECT_EQ(code, 0) << screen;
  EXPECT_THAT(screen, HasSubstr("personactl watch label=s"));
  EXPECT_THAT(screen, HasSubstr("states:"));
  EXPECT_THAT(screen, HasSubstr("remote stages:"));
  EXPECT_THAT(screen, HasSubstr("latest transitions:"));
  EXPECT_THAT(screen, HasSubstr(" final"));
  EXPECT_THAT(screen, HasSubstr("4 jobs: 4 done (4 final)"));
  // The terminal is given back: ncurses leaves the alternate screen (rmcup) on the way out.
  EXPECT_THAT(screen, HasSubstr("\x1b[?1049l"));
}

TEST(Campaign, WatchOnATerminalEndsOnCtrlCWith130) {
  Environment env("ctrlc");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "1", "--seed", "9"},
                         .batches = {{"c.toml", make_batch("c", 2)}}}));
  ASSERT_TRUE(wait_until([&] { return jobs(env).size() == 2; }, seconds(10)));
  int master = -1;
  struct winsize ws {};
  ws.ws_row = 30;
  ws.ws_col = 100;
  const std::string config = env.config_path().string();
  pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    ::setenv("TERM", "xterm", 1);
    ::execl(PERSONACTL_BIN, PERSONACTL_BIN, "--config", config.c_str(), "watch", nullptr);
    ::_exit(127);
  }
  std::string out;
  ::fcntl(master, F_SETFL, O_NONBLOCK);
  ASSERT_TRUE(wait_until(
      [&] {
        char buf[4096];
        ssize_t n;
        while ((n = ::read(master, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
        return out.find("latest transitions:") != std::string::npos;
      },
      seconds(20)));
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_TRUE(wait_until([&] {
    char buf[4096];
    while (::read(master, buf, sizeof buf) > 0) {}
    return ::waitpid(pid, &status, WNOHANG) == pid;
  }, seconds(10)));
  ::close(master);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
}

TEST(Campaign, BulkActionOnATerminalAsksAndActsOnlyOnYes) {
  Environment env("ask");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "1", "--seed", "4"},
                         .batches = {{"a.toml", make_batch("a", 3)}}}));
  ASSERT_TRUE(wait_until([&] { return jobs(env).size() == 3; }, seconds(10)));
  auto ask = [&](const std::string& answer) {
    int master = -1;
    const std::string config = env.config_path().string();
    pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    if (pid == 0) {
      ::execl(PERSONACTL_BIN, PERSONACTL_BIN, "--config", config.c_str(), "cancel", "--label", "a",
              nullptr);
      ::_exit(127);
    }
    ::fcntl(master, F_SETFL, O_NONBLOCK);
    std::string out;
    auto drain = [&] {
      char buf[4096];
      ssize_t n;
      while ((n = ::read(master, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    };
    EXPECT_TRUE(wait_until([&] { drain(); return out.find("[y/N] ") != std::string::npos; }, seconds(10)))
        << out;
    EXPECT_THAT(out, HasSubstr("3 jobs match"));
    EXPECT_THAT(out, HasSubstr("cancel 3 jobs? [y/N] "));
    const std::string line = answer + "\n";
    EXPECT_EQ(::write(master, line.data(), line.size()), static_cast<ssize_t>(line.size()));
    int status = 0;
    EXPECT_TRUE(wait_until([&] { drain(); return ::waitpid(pid, &status, WNOHANG) == pid; }, seconds(10)));
    drain();
    ::close(master);
    return std::make_pair(out, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  };
  auto [no, no_code] = ask("n");
  EXPECT_EQ(no_code, 0);
  EXPECT_THAT(no, HasSubstr("nothing done"));
  EXPECT_EQ(count_of(read_file(env.log_path()), "to=cancelled"), 0u);
  auto [yes, yes_code] = ask("y");
  EXPECT_EQ(yes_code, 0) << yes;
  EXPECT_THAT(yes, HasSubstr("cancelled a-0"));
  EXPECT_THAT(yes, HasSubstr("cancelled a-2"));
  EXPECT_TRUE(all_in(env, "a-", 3, "cancelled"));
}

TEST(Campaign, CompletionScriptsComeFromTheCommandTree) {
  Environment env("completion");
  ASSERT_TRUE(env.start_sim({}));  // only for a valid base_url: the daemon does not run
  env.write_config();
  auto bash = env.ctl({"completion", "bash"});
  ASSERT_EQ(bash.code, 0) << bash.err;
  for (const char* sub : {"submit", "list", "show", "history", "retry", "cancel", "stats",
                          "resolve", "watch", "wait", "completion"})
    EXPECT_THAT(bash.out, HasSubstr(std::string(sub) + ")")) << sub;
  EXPECT_THAT(bash.out, HasSubstr("--needs-operator"));
  EXPECT_THAT(bash.out, HasSubstr("queued submitting pending done failed expired cancelled"));
  EXPECT_THAT(bash.out, Not(HasSubstr("--keys-only'")));
  auto zsh = env.ctl({"completion", "zsh"});
  EXPECT_EQ(zsh.code, 0);
  EXPECT_THAT(zsh.out, HasSubstr("#compdef personactl"));
  EXPECT_THAT(zsh.out, HasSubstr("'watch:"));
  auto fish = env.ctl({"completion", "fish"});
  EXPECT_EQ(fish.code, 0);
  EXPECT_THAT(fish.out, HasSubstr("__fish_use_subcommand' -a wait"));
  EXPECT_EQ(env.ctl({"completion", "tcsh"}).code, 2);

  // Bash reads it, and completes keys from the database (the daemon is not running).
  write_file(env.dir() / "k.toml", make_batch("key", 3));
  ASSERT_EQ(env.ctl({"submit", (env.dir() / "k.toml").string()}).code, 0);
  write_file(env.dir() / "completion.bash", bash.out);
  const std::string bin_dir = fs::path(PERSONACTL_BIN).parent_path().string();
  const std::string script =
      "source '" + (env.dir() / "completion.bash").string() + "'\n"
      "COMP_WORDS=(personactl --config '" + env.config_path().string() + "' show key-)\n"
      "COMP_CWORD=4\n_personactl\necho \"${COMPREPLY[*]}\"\n"
      "COMP_WORDS=(personactl list --state fa)\nCOMP_CWORD=3\n_personactl\necho \"${COMPREPLY[*]}\"\n"
      "COMP_WORDS=(personactl wa)\nCOMP_CWORD=1\n_personactl\necho \"${COMPREPLY[*]}\"\n";
  write_file(env.dir() / "try.bash", script);
  auto tried = run({"/bin/bash", (env.dir() / "try.bash").string()}, env.dir(),
                   {{"PATH", bin_dir + ":/usr/bin:/bin"}});
  EXPECT_EQ(tried.code, 0) << tried.err;
  EXPECT_THAT(tried.out, HasSubstr("key-0 key-1 key-2\nfailed\nwatch wait\n")) << tried.err;
}

}  // namespace
}  // namespace personad::it
