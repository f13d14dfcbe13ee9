// Stuck jobs ([alerts] stuck_after): the rule, the one-event-per-spell log decision, and the
// job field `stuck` as the query side answers it, agreeing with the `--stuck` filter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "personad/job_query.hpp"
#include "personad/store.hpp"
#include "personad/stuck.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

namespace json = boost::json;
using std::chrono::hours;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

Job job_at(std::int64_t id, State s, TimePoint since) {
  Job j;
  j.id = id;
  j.key = "k" + std::to_string(id);
  j.state = s;
  j.status_since = since;
  j.updated_at = since;
  return j;
}

TEST(Stuck, NonFinalJobUnchangedForStuckAfter) {
  const Job j = job_at(1, State::pending, kT0);
  EXPECT_FALSE(is_stuck(j, kT0 + hours(71), hours(72)));
  EXPECT_TRUE(is_stuck(j, kT0 + hours(72), hours(72)));  // the filter's bound: <=
  EXPECT_TRUE(is_stuck(job_at(2, State::queued, kT0), kT0 + hours(100), hours(72)));
  for (State final_state : {State::done, State::failed, State::expired, State::cancelled})
    EXPECT_FALSE(is_stuck(job_at(3, final_state, kT0), kT0 + hours(1000), hours(72)));
}

TEST(Stuck, WithoutStatusSinceCountsFromTheLastUpdate) {
  Job j = job_at(1, State::pending, kT0);
  j.status_since.reset();
  j.updated_at = kT0 + hours(10);
  EXPECT_FALSE(is_stuck(j, kT0 + hours(72), hours(72)));
  EXPECT_TRUE(is_stuck(j, kT0 + hours(82), hours(72)));
}

TEST(StuckLog, NamesEachJobOncePerStuckSpell) {
  StuckLog log;
  auto keys = [](const std::vector<Job>& jobs) {
    std::vector<std::string> k;
    for (const auto& j : jobs) k.push_back(j.key);
    return k;
  };
  EXPECT_EQ(keys(log.newly_stuck({job_at(1, State::pending, kT0), job_at(2, State::queued, kT0)})),
            (std::vector<std::string>{"k1", "k2"}));
  // The next scan: same jobs, same spell: nothing new.
  EXPECT_TRUE(log.newly_stuck({job_at(1, State::pending, kT0), job_at(2, State::queued, kT0)}).empty());
  // k2 moved on (not stuck any more), k1 changed status and got stuck again.
  EXPECT_EQ(keys(log.newly_stuck({job_at(1, State::pending, kT0 + hours(80))})),
            (std::vector<std::string>{"k1"}));
  EXPECT_EQ(log.named(), 1u);
  // k2 stuck again later: named again.
  EXPECT_EQ(keys(log.newly_stuck({job_at(1, State::pending, kT0 + hours(80)),
                                  job_at(2, State::pending, kT0 + hours(90))})),
            (std::vector<std::string>{"k2"}));
}

class StuckQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open((dir_.path() / "p.db").string(), OpenMode::read_write);
    ASSERT_TRUE(s) << s.message();
    store_ = std::move(*s);
    PersonaSpec a, b;
    a.key = "old";
    b.key = "fresh";
    int n = 0;
    ASSERT_TRUE(store_->enqueue({a, b}, "t", "test", kT0, [&] { return "r" + std::to_string(++n); }));
    // "fresh" moves to pending with a remote status at kT0 + 50h; "old" stays queued.
    Job j = **store_->find("fresh");
    for (State to : {State::submitting, State::pending}) {
      const TimePoint at = kT0 + hours(50);
      Transition t{j.id, at, j.state, to, to == State::pending ? "processing" : "", "test"};
      j.state = to;
      j.updated_at = at;
      if (to == State::pending) {
        j.remote_id = "rid";
        j.remote_status = "processing";
        j.submitted_at = at;
      }
      ASSERT_TRUE(store_->apply(j, t));
    }
  }
  json::value get(const std::string& target, TimePoint now) {
    auto a = answer_query(*store_, target, QueryContext{now, hours(72)});
    EXPECT_EQ(a.status, 200) << json::serialize(a.body);
    return a.body;
  }

  testing::TempDir dir_{"stuck"};
  std::unique_ptr<Store> store_;
};

TEST_F(StuckQueryTest, TheStoreKeepsWhenTheStatusLastChanged) {
  EXPECT_EQ((*store_->find("fresh"))->status_since, kT0 + hours(50));
  EXPECT_EQ((*store_->find("old"))->status_since, kT0);
}

TEST_F(StuckQueryTest, JobFieldAgreesWithTheFilter) {
  const TimePoint now = kT0 + hours(100);
  EXPECT_EQ(get("/v1/jobs/old", now).at("stuck"), true);
  EXPECT_EQ(get("/v1/jobs/fresh", now).at("stuck"), false);
  auto stuck = get("/v1/jobs?stuck=1", now).as_array();
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0].at("key"), "old");
  EXPECT_EQ(stuck[0].at("stuck"), true);
  const json::value all = get("/v1/jobs", now);
  for (const auto& j : all.as_array())
    EXPECT_EQ(j.at("stuck").as_bool(), j.at("key") == "old");
  // Later, both are stuck.
  EXPECT_EQ(get("/v1/jobs?stuck=1", kT0 + hours(122)).as_array().size(), 2u);
}

}  // namespace
}  // namespace personad
