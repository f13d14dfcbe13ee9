// Tests of fault selection: rates observed over many draws with a fixed seed, determinism,
// precedence between faults, and lost creates only ever applying to creates.
#include "fault_plan.hpp"

#include <gtest/gtest.h>

#include <map>

namespace creatify_sim {
namespace {

using D = FaultDecision;

TEST(FaultPlan, NoRatesNoFaults) {
  FaultPlan plan({}, 1);
  for (int i = 0; i < 10000; ++i) EXPECT_FALSE(plan.decide(i % 2 == 0).any());
}

TEST(FaultPlan, ObservedRatesMatchConfiguredProbabilities) {
  FaultRates rates;
  rates.server_error = 0.10;
  rates.slow = 0.25;
  FaultPlan plan(rates, 42);
  constexpr int kDraws = 20000;
  int errors = 0, slow = 0;
  std::map<unsigned, int> statuses;
  for (int i = 0; i < kDraws; ++i) {
    const D d = plan.decide(false);
    if (d.preempt == D::Preempt::server_error) {
      ++errors;
      ++statuses[d.error_status];
    }
    slow += d.slow;
    EXPECT_FALSE(d.malformed);
    EXPECT_EQ(d.lost_create, D::LostCreate::none);
  }
  EXPECT_NEAR(errors / double(kDraws), 0.10, 0.01);
  EXPECT_NEAR(slow / double(kDraws), 0.25, 0.015);
  EXPECT_EQ(statuses.size(), 3u);  // 500, 502 and 503 all occur
  for (const auto& [status, n] : statuses)
    EXPECT_TRUE(status == 500 || status == 502 || status == 503);
}

TEST(FaultPlan, SameSeedSameFaults) {
  FaultRates rates{0.2, 0.2, 0.2, 0.2, 0.2, 0.2};
  FaultPlan a(rates, 5), b(rates, 5);
  for (int i = 0; i < 1000; ++i) {
    const D da = a.decide(i % 3 == 0), db = b.decide(i % 3 == 0);
    EXPECT_EQ(da.preempt, db.preempt);
    EXPECT_EQ(da.slow, db.slow);
    EXPECT_EQ(da.malformed, db.malformed);
    EXPECT_EQ(da.lost_create, db.lost_create);
    EXPECT_EQ(da.error_status, db.error_status);
  }
}

TEST(FaultPlan, ResetWinsThenServerErrorThenRateLimit) {
  FaultPlan all({1, 1, 1, 1, 1, 1}, 3);
  const D d = all.decide(true);
  EXPECT_EQ(d.preempt, D::Preempt::reset);
  EXPECT_TRUE(d.slow);  // slow combines with anything
  EXPECT_FALSE(d.malformed);
  EXPECT_EQ(d.lost_create, D::LostCreate::none);

  FaultPlan no_reset({1, 1, 0, 0, 0, 0}, 3);
  EXPECT_EQ(no_reset.decide(false).preempt, D::Preempt::server_error);
  FaultPlan only_429({0, 1, 0, 0, 0, 0}, 3);
  EXPECT_EQ(only_429.decide(false).preempt, D::Preempt::rate_limited);
}

TEST(FaultPlan, LostCreateOnlyForCreatesAndBeatsMalformed) {
  FaultRates rates;
  rates.lost_create = 1;
  rates.malformed = 1;
  FaultPlan plan(rates, 11);
  std::map<D::LostCreate, int> kinds;
  for (int i = 0; i < 2000; ++i) {
    const D create = plan.decide(true);
    EXPECT_NE(create.lost_create, D::LostCreate::none);
    EXPECT_FALSE(create.malformed);
    ++kinds[create.lost_create];
    const D get = plan.decide(false);
    EXPECT_EQ(get.lost_create, D::LostCreate::none);
    EXPECT_TRUE(get.malformed);
    EXPECT_GT(get.truncate_at, 0.0);
    EXPECT_LT(get.truncate_at, 1.0);
  }
  // Half are answered with a 500, half with a reset.
  EXPECT_NEAR(kinds[D::LostCreate::reset] / 2000.0, 0.5, 0.05);
}

TEST(FaultPlan, SlowCreateOnlyForCreatesThatAreHandled) {
  FaultRates rates;
  rates.slow_create = 1;
  rates.lost_create = 0.5;
  rates.server_error = 0.3;
  FaultPlan plan(rates, 7);
  int slow_and_lost = 0;
  for (int i = 0; i < 2000; ++i) {
    const D create = plan.decide(FaultTarget::create);
    // A create that is not handled (5xx before handling) is never stored, late or not.
    EXPECT_EQ(create.slow_create, create.preempt == D::Preempt::none);
    slow_and_lost += create.slow_create && create.lost_create != D::LostCreate::none;
    EXPECT_FALSE(plan.decide(FaultTarget::list).slow_create);
    EXPECT_FALSE(plan.decide(FaultTarget::other).slow_create);
  }
  EXPECT_GT(slow_and_lost, 400);  // stored late and then the answer is lost: both happen
}

TEST(FaultPlan, ListPageFaultsOnlyListsWith502IndependentlyOf5xx) {
  FaultRates rates;
  rates.list_page = 0.3;
  FaultPlan plan(rates, 9);
  constexpr int kDraws = 20000;
  int failed = 0;
  for (int i = 0; i < kDraws; ++i) {
    const D list = plan.decide(FaultTarget::list);
    if (list.preempt == D::Preempt::list_page) {
      ++failed;
      EXPECT_EQ(list.error_status, 502u);
    } else {
      EXPECT_EQ(list.preempt, D::Preempt::none);
    }
    EXPECT_EQ(plan.decide(FaultTarget::create).preempt, D::Preempt::none);
    EXPECT_EQ(plan.decide(FaultTarget::other).preempt, D::Preempt::none);
  }
  EXPECT_NEAR(failed / double(kDraws), 0.3, 0.015);
}

TEST(FaultPlan, AbsurdRetryAfterIsAShareOf429s) {
  FaultRates rates;
  rates.rate_limited = 0.5;
  rates.retry_after_absurd = 0.25;
  FaultPlan plan(rates, 13);
  int throttled = 0, absurd = 0;
  for (int i = 0; i < 20000; ++i) {
    const D d = plan.decide(i % 3 == 0 ? FaultTarget::create : FaultTarget::list);
    if (d.preempt == D::Preempt::rate_limited) {
      ++throttled;
      absurd += d.retry_after_absurd;
    } else {
      EXPECT_FALSE(d.retry_after_absurd);
    }
  }
  EXPECT_NEAR(absurd / double(throttled), 0.25, 0.02);
}

TEST(FaultPlan, NewerFaultsDoNotShiftTheOriginalSequence) {
  FaultRates base{0.2, 0.2, 0.2, 0.2, 0.2, 0.2};
  FaultRates more = base;
  more.slow_create = 0.5;
  more.retry_after_absurd = 0.5;
  FaultPlan a(base, 21), b(more, 21);
  for (int i = 0; i < 1000; ++i) {
    const auto target = i % 3 == 0 ? FaultTarget::create : FaultTarget::other;
    const D da = a.decide(target), db = b.decide(target);
    EXPECT_EQ(da.preempt, db.preempt);
    EXPECT_EQ(da.slow, db.slow);
    EXPECT_EQ(da.malformed, db.malformed);
    EXPECT_EQ(da.lost_create, db.lost_create);
    EXPECT_EQ(da.error_status, db.error_status);
  }
}

TEST(FaultPlan, RatesCanChangeAtRunTime) {
  FaultPlan plan({}, 1);
  EXPECT_FALSE(plan.decide(false).any());
  FaultRates rates;
  rates.rate_limited = 1;
  plan.set_rates(rates);
  EXPECT_EQ(plan.decide(false).preempt, D::Preempt::rate_limited);
  EXPECT_EQ(plan.rates().rate_limited, 1.0);
}

}  // namespace
}  // namespace creatify_sim
