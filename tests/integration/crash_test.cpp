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

}  // namespace
}  // namespace personad::it
