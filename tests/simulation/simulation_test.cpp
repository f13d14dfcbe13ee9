// The deterministic simulation in CI: a fixed range of seeds (500 by default;
// PERSONAD_SIM_SEEDS raises it), each checking exactly-once and never-stuck.
#include <gtest/gtest.h>

#include <cstdlib>

#include "simulation.hpp"

namespace personad::simulation {
namespace {

std::uint64_t seeds_to_run() {
  if (const char* env = std::getenv("PERSONAD_SIM_SEEDS")) return std::strtoull(env, nullptr, 10);
  return 500;
}

// Split in slices so CTest runs them in parallel and a failure names a small range.
class SimulationSeeds : public ::testing::TestWithParam<int> {};

TEST_P(SimulationSeeds, EverySeedKeepsExactlyOnceAndNeverStuck) {
  const std::uint64_t total = seeds_to_run();
  const std::uint64_t slices = 10;
  const std::uint64_t per = (total + slices - 1) / slices;
  const std::uint64_t first = 1 + static_cast<std::uint64_t>(GetParam()) * per;
  for (std::uint64_t s = first; s < first + per && s <= total; ++s) {
    auto r = run_seed(s);
    EXPECT_TRUE(r.ok()) << describe(r);
  }
}

INSTANTIATE_TEST_SUITE_P(Slices, SimulationSeeds, ::testing::Range(0, 10));

TEST(Simulation, TheSameSeedReplaysTheSameRun) {
  auto a = run_seed(7, {true, false});
  auto b = run_seed(7, {true, false});
  EXPECT_EQ(a.log, b.log);
  EXPECT_EQ(a.requests, b.requests);
  EXPECT_GT(a.requests, 0u);
}

}  // namespace
}  // namespace personad::simulation
