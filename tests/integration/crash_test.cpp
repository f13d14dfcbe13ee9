// The crash test: a batch against a simulator that loses creates and injects faults, while
// personad is killed with SIGKILL at random moments; afterwards the server holds exactly one
// persona per job and every job is final with the server's status.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "harness.hpp"

namespace personad::it {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(Crash, SigkillAtRandomMomentsNeverLosesOrDuplicatesAPersona) {
  Environment env("crash");
  ASSERT_TRUE(env.start_sim({"--time-scale", "20000", "--seed", "23", "--fail-rate", "0.2",
                             "--lost-create", "0.15", "--fault-5xx", "0.05", "--fault-429",
                             "0.05", "--fault-reset", "0.05", "--fault-malformed", "0.02"}));
  env.write_config();
  constexpr int kJobs = 60;
  write_file(env.dir() / "batches.d" / "crash.toml", make_batch("cr", kJobs));

  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pause_ms(50, 900);
  for (int kill = 0; kill < 12; ++kill) {
    env.start_daemon();
    std::this_thread::sleep_for(milliseconds(pause_ms(rng)));
    env.stop_daemon(SIGKILL);
  }
  env.start_daemon();
  ASSERT_TRUE(wait_until([&] { return all_final(env, kJobs); }, seconds(120)))
      << read_file(env.log_path());
  expect_consistent_with_server(env, kJobs);

  // No label twice on the server, whatever personad believes.
  std::set<std::string> labels;
  for (auto& p : env.sim_personas())
    for (auto& l : p.at("labels").as_array()) {
      if (l.as_string().starts_with("personad:")) {
        EXPECT_TRUE(labels.insert(std::string(l.as_string())).second) << l;
      }
    }
}

// Starts a simulator whose every answer takes `slow_ms`, and personad with `grace` on a batch
// of `jobs`; returns once a create is in flight, then stops personad with SIGTERM and returns
// how long it took to exit (its exit code is checked to be 0).
std::chrono::steady_clock::duration stop_during_a_create(Environment& env, const char* slow_ms,
                                                         const char* grace, int jobs) {
  EXPECT_TRUE(env.start_sim({"--time-scale", "100000", "--fault-slow", "1", "--slow-ms", slow_ms}));
  env.write_config("", "", std::string("[daemon]\nshutdown_grace = \"") + grace + "\"\n");
  write_file(env.dir() / "batches.d" / "g.toml", make_batch("gr", jobs));
  env.start_daemon();
  EXPECT_TRUE(wait_until(
      [&] { return read_file(env.log_path()).find("to=submitting") != std::string::npos; },
      seconds(10)));
  auto t0 = std::chrono::steady_clock::now();
  env.daemon()->signal(SIGTERM);
  EXPECT_EQ(env.daemon()->wait(), 0);
  return std::chrono::steady_clock::now() - t0;
}

TEST(Crash, SigtermLetsInFlightCreatesFinishAndCommit) {
  Environment env("graceful");
  EXPECT_LT(stop_during_a_create(env, "1500", "10s", 2), seconds(5));
  // Both creates completed and were committed before the exit: nothing is left unknown.
  for (auto& [key, j] : jobs(env)) {
    EXPECT_EQ(j.at("state"), "pending") << key;
    EXPECT_FALSE(j.at("remote_id").is_null()) << key;
  }
  EXPECT_EQ(env.sim_personas().size(), 2u);
}

TEST(Crash, GraceRunsOutThenTheNextStartReconciles) {
  Environment env("grace");
  EXPECT_LT(stop_during_a_create(env, "2500", "300ms", 1), milliseconds(2000));
  EXPECT_EQ(jobs(env)["gr-0"].at("state"), "submitting");
  // The create still lands on the server; the next start finds it by its label.
  ASSERT_TRUE(wait_until([&] { return env.sim_personas().size() == 1; }, seconds(5)));
  http(env.sim_port(), "POST", "/_sim/faults", R"({"slow": 0})");
  env.start_daemon();
  ASSERT_TRUE(wait_until([&] { return all_final(env, 1); }, seconds(60)))
      << read_file(env.log_path());
  expect_consistent_with_server(env, 1);
  EXPECT_NE(read_file(env.log_path()).find("adopted remote persona"), std::string::npos);
}

TEST(Crash, DamagedDatabaseIsAClearStartupErrorAndIsLeftAlone) {
  Environment env("baddb");
  ASSERT_TRUE(env.start_sim({}));
  env.write_config();
  write_file(env.dir() / "personad.db", std::string(8192, 'x'));
  auto r = run({PERSONAD_BIN, "--config", env.config_path().string()}, env.dir(),
               env.credentials_env());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is not a personad database"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(env.dir() / "personad.db"), std::string(8192, 'x'));
}

}  // namespace
}  // namespace personad::it
