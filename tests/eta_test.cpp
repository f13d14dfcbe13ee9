// Estimates (eta.hpp) on synthetic histories whose truth is known: stage durations drawn from
// known uniform distributions, so the true median and 90th percentile of the time left are
// computable; the documented window while few jobs finished; the last completion of a set.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <random>
#include <tuple>

#include "personad/eta.hpp"
#include "personad/job_query.hpp"
#include "personad/store.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

namespace json = boost::json;
using std::chrono::hours;
using std::chrono::minutes;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

Millis h(double x) { return Millis(std::llround(x * 3600'000)); }
double in_hours(Millis d) { return static_cast<double>(d.count()) / 3600'000.0; }

// A done job's history: queued, submitting, pending (remote "pending"), then "processing" after
// U(1h, 3h), "reviewing" after U(10h, 20h) more, done after U(20h, 30h) more.
std::vector<Transition> done_history(std::mt19937_64& rng, TimePoint start) {
  std::uniform_real_distribution<double> p(1, 3), q(10, 20), r(20, 30);
  std::vector<Transition> t;
  TimePoint at = start;
  t.push_back({1, at, std::nullopt, State::queued, "", "batch"});
  t.push_back({1, at, State::queued, State::submitting, "", "send"});
  t.push_back({1, at, State::submitting, State::pending, "pending", "created"});
  at += h(p(rng));
  t.push_back({1, at, State::pending, State::pending, "processing", "poll"});
  at += h(q(rng));
  t.push_back({1, at, State::pending, State::pending, "reviewing", "poll"});
  at += h(r(rng));
  t.push_back({1, at, State::pending, State::done, "done", "poll"});
  return t;
}

std::vector<std::vector<Transition>> campaign(std::size_t n, std::uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<Transition>> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(done_history(rng, kT0 + minutes(10 * i)));
  return out;
}

Job pending_job(const std::string& remote_status, TimePoint entered, TimePoint submitted) {
  Job j;
  j.id = 99;
  j.key = "j";
  j.state = State::pending;
  j.remote_status = remote_status;
  j.status_since = entered;
  j.submitted_at = submitted;
  return j;
}

TEST(Eta, ObservedStageDurationsGiveTheTrueQuantiles) {
  const EtaModel m = EtaModel::from_histories(campaign(500));
  EXPECT_EQ(m.finished(), 500u);
  ASSERT_TRUE(m.observed());
  const TimePoint now = kT0 + hours(1000);
  // Just entered reviewing: time left ~ U(20h, 30h): median 25h, p90 29h.
  auto e = m.estimate(pending_job("reviewing", now, now - hours(20)), now);
  ASSERT_TRUE(e && e->eta && e->eta_p90);
  EXPECT_EQ(e->basis, "observed");
  EXPECT_NEAR(in_hours(*e->eta - now), 25, 0.6);
  EXPECT_NEAR(in_hours(*e->eta_p90 - now), 29, 0.6);
  // Just entered processing: U(10, 20) + U(20, 30), triangular on [30, 50]: median 40h,
  // p90 50 − sqrt(20) = 45.53h.
  e = m.estimate(pending_job("processing", now, now), now);
  ASSERT_TRUE(e && e->eta && e->eta_p90);
  EXPECT_NEAR(in_hours(*e->eta - now), 40, 0.8);
  EXPECT_NEAR(in_hours(*e->eta_p90 - now), 45.53, 0.8);
}

TEST(Eta, TimeAlreadySpentConditionsTheEstimate) {
  const EtaModel m = EtaModel::from_histories(campaign(500));
  const TimePoint now = kT0 + hours(1000);
  // In reviewing for 27h already: the rest ~ U(27h, 30h) from entry: median 28.5h, p90 29.7h.
  auto e = m.estimate(pending_job("reviewing", now - hours(27), now - hours(50)), now);
  ASSERT_TRUE(e && e->eta);
  EXPECT_NEAR(in_hours(*e->eta - (now - hours(27))), 28.5, 0.4);
  EXPECT_NEAR(in_hours(*e->eta_p90 - (now - hours(27))), 29.7, 0.4);
  EXPECT_GE(*e->eta, now);
  // Longer than any job ever took: overdue, no estimate (null), still observed.
  e = m.estimate(pending_job("reviewing", now - hours(31), now - hours(60)), now);
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->eta);
  EXPECT_EQ(e->basis, "observed");
}

TEST(Eta, UnseenStageFallsBackToTheTimeFromSubmission) {
  const EtaModel m = EtaModel::from_histories(campaign(500));
  const TimePoint now = kT0 + hours(1000);
  // From submission: U(1,3) + U(10,20) + U(20,30), mean 42h, symmetric: median ≈ 42h.
  auto e = m.estimate(pending_job("crop_and_matte", now, now), now);
  ASSERT_TRUE(e && e->eta);
  EXPECT_EQ(e->basis, "observed");
  EXPECT_NEAR(in_hours(*e->eta - now), 42, 1.0);
}

TEST(Eta, DocumentedWindowWhileFewerThanTwentyFinished) {
  const EtaModel m = EtaModel::from_histories(campaign(19));
  EXPECT_FALSE(m.observed());
  const TimePoint submitted = kT0 + hours(1000);
  // Uniform over 1–5 days from submission: median day 3, p90 day 4.6.
  auto e = m.estimate(pending_job("reviewing", submitted, submitted), submitted + hours(2));
  ASSERT_TRUE(e && e->eta && e->eta_p90);
  EXPECT_EQ(e->basis, "documented");
  EXPECT_EQ(*e->eta, submitted + hours(72));
  EXPECT_EQ(*e->eta_p90, submitted + h(4.6 * 24));
  // A queued job: the window counts from when it was queued, the same answer an hour later.
  Job q;
  q.state = State::queued;
  q.status_since = submitted;
  e = m.estimate(q, submitted + hours(1));
  ASSERT_TRUE(e && e->eta);
  EXPECT_EQ(*e->eta, submitted + hours(72));
  EXPECT_EQ(m.estimate(q, submitted + hours(2))->eta, e->eta);
  // Once the window is open, the time already spent conditions it: uniform over [now, day 5].
  e = m.estimate(q, submitted + hours(96));
  EXPECT_EQ(*e->eta, submitted + hours(108));
  // Final jobs have no estimate.
  Job d;
  d.state = State::done;
  EXPECT_FALSE(m.estimate(d, submitted));
}

TEST(Eta, LastCompletionOfASetIsTheQuantileOfItsMaximum) {
  const EtaModel m = EtaModel::from_histories(campaign(2000));
  const TimePoint now = kT0 + hours(1000);
  std::vector<Job> jobs;
  for (int i = 0; i < 10; ++i) jobs.push_back(pending_job("reviewing", now, now));
  // Max of 10 U(20, 30): P(max <= x) = ((x − 20)/10)^10: median 20 + 10·0.5^0.1 = 29.33h,
  // p90 20 + 10·0.9^0.1 = 29.89h.
  const SelectionEta e = m.last_completion(jobs, now);
  ASSERT_TRUE(e.p50 && e.p90);
  EXPECT_EQ(e.jobs, 10u);
  EXPECT_EQ(e.basis, "observed");
  EXPECT_NEAR(in_hours(*e.p50 - now), 29.33, 0.3);
  EXPECT_NEAR(in_hours(*e.p90 - now), 29.89, 0.3);
  EXPECT_FALSE(m.last_completion(std::vector<Job>{}, now).p50);
}

// A group of alike jobs (what the store reads for a campaign) weighs as many jobs as it holds:
// the same estimate as the jobs one by one, whatever the mix of groups.
TEST(Eta, GroupsOfAlikeJobsGiveTheEstimateOfTheJobsOneByOne) {
  const EtaModel m = EtaModel::from_histories(campaign(2000));
  const TimePoint now = kT0 + hours(1000);
  std::vector<Job> jobs;
  std::vector<ActiveCohort> groups;
  const std::vector<std::tuple<std::string, Millis, int>> mix = {
      {"reviewing", h(2), 300}, {"processing", h(5), 40}, {"pending", h(0.5), 7}};
  for (const auto& [status, ago, n] : mix) {
    for (int i = 0; i < n; ++i) jobs.push_back(pending_job(status, now - ago, now - ago - h(1)));
    ActiveCohort c = cohort_of(jobs.back());
    c.jobs = n;
    groups.push_back(c);
  }
  const SelectionEta one_by_one = m.last_completion(jobs, now);
  const SelectionEta grouped = m.last_completion(groups, now);
  ASSERT_TRUE(one_by_one.p50 && one_by_one.p90);
  EXPECT_EQ(grouped.jobs, 347u);
  EXPECT_EQ(grouped.jobs, one_by_one.jobs);
  EXPECT_EQ(grouped.basis, one_by_one.basis);
  // (n·log p against log p added n times: equal but for rounding, so to the second)
  ASSERT_TRUE(grouped.p50 && grouped.p90);
  EXPECT_LE(std::abs((*grouped.p50 - *one_by_one.p50).count()), 1'000);
  EXPECT_LE(std::abs((*grouped.p90 - *one_by_one.p90).count()), 1'000);
  // More jobs alike push the last completion later, never earlier.
  groups[0].jobs *= 10;
  const SelectionEta more = m.last_completion(groups, now);
  ASSERT_TRUE(more.p50);
  EXPECT_GE(*more.p50, *grouped.p50);
  EXPECT_EQ(more.jobs, 347u + 2700u);
}

TEST(Eta, JobObjectsAndStatsCarryTheEstimate) {
  testing::TempDir dir("eta");
  auto store = Store::open((dir.path() / "p.db").string(), OpenMode::read_write);
  ASSERT_TRUE(store) << store.message();
  PersonaSpec s;
  s.key = "x";
  ASSERT_TRUE((*store)->enqueue({s}, "t", "test", kT0, [] { return std::string("r1"); }));
  Job j = **(*store)->find("x");
  for (State to : {State::submitting, State::pending}) {
    Transition t{j.id, kT0, j.state, to, to == State::pending ? "pending" : "", "test"};
    j.state = to;
    if (to == State::pending) {
      j.submitted_at = kT0;
      j.remote_status = "pending";
      j.remote_id = "rid";
    }
    ASSERT_TRUE((*store)->apply(j, t));
  }
  const QueryContext ctx{kT0 + hours(1), hours(72)};
  auto job = answer_query(**store, "/v1/jobs/x", ctx);
  ASSERT_EQ(job.status, 200);
  EXPECT_EQ(job.body.at("eta_basis"), "documented");
  EXPECT_EQ(job.body.at("eta").as_string(), format_rfc3339(kT0 + hours(72)));
  EXPECT_EQ(job.body.at("eta_p90").as_string(), format_rfc3339(kT0 + h(4.6 * 24)));
  auto stats = answer_query(**store, "/v1/stats", ctx);
  ASSERT_EQ(stats.status, 200);
  // The campaign's estimate groups jobs by the minute they entered their stage
  // (kEtaCohortBucket): kT0 is 20 s past a minute, so the last completion is 20 s earlier.
  const TimePoint grouped_submission = floor_to(kT0, kEtaCohortBucket);
  EXPECT_EQ(kT0 - grouped_submission, Millis(20'000));
  EXPECT_EQ(stats.body.at("eta").at("p50").as_string(),
            format_rfc3339(grouped_submission + hours(72)));
  EXPECT_EQ(stats.body.at("eta").at("jobs"), 1);
}

}  // namespace
}  // namespace personad
