// Tracker::act_on_selection: a bulk cancel or retry reads and writes the selection in chunks
// (one store write, one transaction, per 500 jobs; never one per job), acts on the jobs the
// action applies to and skips the others with the reason, and honours the selection's limit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tracker_fixture.hpp"

namespace personad::testing {
namespace {

using ::testing::HasSubstr;

class BulkActionTest : public TrackerFixture {
 protected:
  void SetUp() override {
    TrackerFixture::SetUp();
    make_tracker();
    std::vector<PersonaSpec> specs;
    for (int i = 0; i < 1100; ++i) {
      char key[32];
      std::snprintf(key, sizeof key, "acme-%04d", i);
      specs.push_back(make_spec(key));
    }
    specs.push_back(make_spec("other-1"));
    specs.back().labels = {"other"};
    enqueue(std::move(specs));
    tracker_->stop_taking_work();  // nothing is sent: the jobs stay queued for the test
  }

  std::vector<BulkLine> act(BulkAction a, Selection s, bool resubmit = false) {
    auto r = run_op(tracker_->act_on_selection(a, std::move(s), SelectOptions{}, resubmit));
    EXPECT_TRUE(r) << r.message();
    return r ? *r : std::vector<BulkLine>{};
  }

  static Selection acme() {
    Selection s;
    s.labels = {"acme"};
    return s;
  }
};

TEST_F(BulkActionTest, CancelsASelectionInChunksOfOneWriteEach) {
  const auto before = runner_->stats();
  const auto lines = act(BulkAction::cancel, acme());
  ASSERT_EQ(lines.size(), 1100u);
  for (const auto& l : lines) {
    EXPECT_EQ(l.result, BulkLine::Kind::acted) << l.key << ": " << l.why;
    EXPECT_EQ(l.state, "cancelled");
  }
  EXPECT_EQ(lines.front().key, "acme-0000");
  EXPECT_EQ(lines.back().key, "acme-1099");
  // 1,100 jobs: three writes (500, 500, 100), not 1,100.
  EXPECT_EQ(runner_->stats().writes - before.writes, 3u);
  EXPECT_EQ(state("acme-0500"), State::cancelled);
  EXPECT_EQ(path("acme-0500").back(), State::cancelled);
  EXPECT_EQ(state("other-1"), State::queued) << "outside the selection";
  EXPECT_THAT(log(), HasSubstr("key=acme-1099"));

  // Again: every job is skipped with its state and why; nothing is written.
  const auto mid = runner_->stats();
  const auto again = act(BulkAction::cancel, acme());
  ASSERT_EQ(again.size(), 1100u);
  EXPECT_EQ(again[0].result, BulkLine::Kind::skipped);
  EXPECT_EQ(again[0].state, "cancelled");
  EXPECT_THAT(again[0].why, HasSubstr("already cancelled"));
  EXPECT_EQ(runner_->stats().writes, mid.writes);

  // Retry does not apply to cancelled jobs.
  const auto retried = act(BulkAction::retry, acme(), true);
  ASSERT_EQ(retried.size(), 1100u);
  EXPECT_EQ(retried[0].result, BulkLine::Kind::skipped);
  EXPECT_THAT(retried[0].why, HasSubstr("only failed or expired jobs can be retried"));
}

TEST_F(BulkActionTest, HonoursTheLimitAndTheFilters) {
  Selection s = acme();
  s.key_glob = "acme-00*";
  s.limit = 7;
  const auto lines = act(BulkAction::cancel, s);
  ASSERT_EQ(lines.size(), 7u);
  EXPECT_EQ(lines[6].key, "acme-0006");
  EXPECT_EQ(state("acme-0006"), State::cancelled);
  EXPECT_EQ(state("acme-0007"), State::queued);
}

}  // namespace
}  // namespace personad::testing
