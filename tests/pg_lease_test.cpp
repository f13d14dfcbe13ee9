// The lease (pg_lease.hpp) and the action queue (pg_actions.hpp) on a real PostgreSQL: one
// holder at a time by the database's clock, a new epoch at every acquisition that is not a
// renewal, and operator actions that reach the active host once per epoch. Each test on a
// database of its own (pg_test_db.hpp); skipped without a server.
#include "personad/pg_lease.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>

#include <poll.h>

#include "personad/pg_actions.hpp"
#include "personad/pg_connection.hpp"
#include "pg_test_db.hpp"

namespace personad {
namespace {

using ::testing::HasSubstr;
using testing::PgTestDb;

class PgLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = PgTestDb::create();
    if (!db) PERSONAD_PG_UNAVAILABLE(db.message());
    db_ = std::move(*db);
    auto s = open_pg_store(db_->target(), OpenMode::read_write);  // creates the schema
    ASSERT_TRUE(s) << s.message();
  }

  std::unique_ptr<PgLease> lease(const std::string& holder) {
    auto l = PgLease::connect(db_->target(), holder);
    EXPECT_TRUE(l) << l.message();
    return l ? std::move(*l) : nullptr;
  }
  std::unique_ptr<PgActionQueue> queue() {
    auto q = PgActionQueue::connect(db_->target());
    EXPECT_TRUE(q) << q.message();
    return q ? std::move(*q) : nullptr;
  }
  // Takes the lease for `holder`, which must be free.
  PgFence take(PgLease& l, Millis ttl = Millis(60'000)) {
    auto f = l.try_acquire(ttl);
    EXPECT_TRUE(f && *f) << (f ? "held by another" : f.message());
    return f && *f ? **f : PgFence{};
  }
  // Until the database's clock has passed the lease's end (well under a second here).
  void wait_for_expiry(PgLease& l) {
    for (int i = 0; i < 100; ++i) {
      auto info = l.current();
      ASSERT_TRUE(info) << info.message();
      if (info->expires_in <= Millis(0)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "the lease never expired";
  }

  std::unique_ptr<PgTestDb> db_;
};

TEST_F(PgLeaseTest, NobodyHoldsItAtFirst) {
  auto a = lease("host-a");
  auto info = a->current();
  ASSERT_TRUE(info) << info.message();
  EXPECT_EQ(info->holder, "");
  EXPECT_EQ(info->epoch, 0);
  EXPECT_LE(info->expires_in, Millis(0));
}

TEST_F(PgLeaseTest, AcquireRenewExpireAndTakeOver) {
  auto a = lease("host-a");
  auto b = lease("host-b");
  const PgFence fa = take(*a, Millis(300));
  EXPECT_EQ(fa.holder, "host-a");
  EXPECT_EQ(fa.epoch, 1);
  auto busy = b->try_acquire(Millis(300));
  ASSERT_TRUE(busy);
  EXPECT_FALSE(*busy) << "held by host-a";
  auto info = b->current();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->holder, "host-a");
  EXPECT_GT(info->expires_in, Millis(0));
  EXPECT_LE(info->expires_in, Millis(300));

  // Renewing a live lease keeps its epoch; so does try_acquire by its holder.
  auto renewed = a->renew(fa, Millis(200));
  ASSERT_TRUE(renewed);
  EXPECT_TRUE(*renewed);
  auto mine = a->try_acquire(Millis(200));
  ASSERT_TRUE(mine && *mine);
  EXPECT_EQ((*mine)->epoch, 1);

  wait_for_expiry(*a);
  const PgFence fb = take(*b);
  EXPECT_EQ(fb.epoch, 2);
  auto late = a->renew(fa, Millis(60'000));
  ASSERT_TRUE(late);
  EXPECT_FALSE(*late) << "taken over: the old holder must stop";
  ASSERT_TRUE(a->release(fa));  // not its lease any more: no effect
  info = a->current();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->holder, "host-b");
  EXPECT_EQ(info->epoch, 2);
  EXPECT_GT(info->expires_in, Millis(0));
}

TEST_F(PgLeaseTest, ReleaseLetsAnotherTakeItAtOnce) {
  auto a = lease("host-a");
  auto b = lease("host-b");
  const PgFence fa = take(*a);
  ASSERT_TRUE(a->release(fa));
  const PgFence fb = take(*b);
  EXPECT_EQ(fb.epoch, 2);
  // And back: every change of holder is a new epoch.
  ASSERT_TRUE(b->release(fb));
  EXPECT_EQ(take(*a).epoch, 3);
}

TEST_F(PgLeaseTest, OfHostsRacingForAFreeLeaseExactlyOneWins) {
  constexpr int kHosts = 8;
  std::vector<std::unique_ptr<PgLease>> hosts;
  for (int i = 0; i < kHosts; ++i) hosts.push_back(lease("host-" + std::to_string(i)));
  std::barrier start(kHosts);
  std::atomic<int> won{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kHosts; ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto f = hosts[i]->try_acquire(Millis(60'000));
      if (!f)
        ++errors;
      else if (*f && (*f)->epoch == 1)
        ++won;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(won, 1);
  EXPECT_EQ(db_->query("SELECT epoch FROM personad_lease"), "1");
}

TEST_F(PgLeaseTest, AnEmptyHolderNameOrAnUnmigratedDatabaseIsRefused) {
  auto empty = PgLease::connect(db_->target(), "");
  ASSERT_FALSE(empty);
  auto fresh = PgTestDb::create();
  ASSERT_TRUE(fresh) << fresh.message();
  auto l = PgLease::connect((*fresh)->target(), "host-a");
  ASSERT_FALSE(l);
  EXPECT_THAT(l.message(), HasSubstr("no personad schema yet"));
  auto q = PgActionQueue::connect((*fresh)->target());
  ASSERT_FALSE(q);
}

// ---- Actions ---------------------------------------------------------------------------------

PgAction cancel(const std::string& key, const std::string& from = "host-b") {
  return PgAction{0, "POST", "/v1/jobs/" + key + "/cancel", "{}", from};
}

TEST_F(PgLeaseTest, AnActionGoesFromTheStandbyToTheActiveHostAndItsAnswerBack) {
  auto active = lease("host-a");
  const PgFence fa = take(*active);
  auto standby_q = queue();
  auto active_q = queue();
  auto id = standby_q->post(cancel("acme-1"));
  ASSERT_TRUE(id) << id.message();
  auto none = standby_q->answer(*id);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);

  auto taken = active_q->claim(fa, 16);
  ASSERT_TRUE(taken) << taken.message();
  ASSERT_EQ(taken->size(), 1u);
  const PgAction& a = taken->front();
  EXPECT_EQ(a.id, *id);
  EXPECT_EQ(a.method, "POST");
  EXPECT_EQ(a.target, "/v1/jobs/acme-1/cancel");
  EXPECT_EQ(a.body, "{}");
  EXPECT_EQ(a.requested_by, "host-b");
  auto again = active_q->claim(fa, 16);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->empty()) << "claimed once per epoch";
  auto late = standby_q->withdraw(*id);
  ASSERT_TRUE(late);
  EXPECT_FALSE(*late) << "taken: too late to withdraw";
  EXPECT_FALSE(*standby_q->answer(*id));

  ASSERT_TRUE(active_q->set_answer(fa, *id, PgActionAnswer{200, "{\"state\":\"cancelled\"}"}));
  auto answer = standby_q->answer(*id);
  ASSERT_TRUE(answer && *answer) << answer.message();
  EXPECT_EQ((*answer)->status, 200);
  EXPECT_EQ((*answer)->body, "{\"state\":\"cancelled\"}");
  auto twice = active_q->set_answer(fa, *id, PgActionAnswer{500, "x"});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.kind(), ErrorKind::conflict);

  auto unknown = standby_q->answer(424242);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.kind(), ErrorKind::not_found);
}

// Whether `fd` turns readable within `ms` (poll(2): the wait the daemon's loop makes).
bool readable_within(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return fd >= 0 && ::poll(&p, 1, ms) == 1;
}

// The active host waits for a notice rather than asking the table every quarter second; its
// LISTEN survives the server ending its session (the next claim re-establishes both).
TEST_F(PgLeaseTest, APostNotifiesTheListeningActiveHostAlsoAfterItsSessionWasEnded) {
  auto active = lease("host-a");
  const PgFence fa = take(*active);
  auto standby_q = queue();
  auto active_q = queue();
  ASSERT_TRUE(active_q->listen());
  auto quiet = active_q->take_notices();
  ASSERT_TRUE(quiet) << quiet.message();
  EXPECT_FALSE(*quiet);
  EXPECT_FALSE(readable_within(active_q->socket(), 0));

  ASSERT_TRUE(standby_q->post(cancel("acme-1")));
  ASSERT_TRUE(readable_within(active_q->socket(), 10'000)) << "no notice";
  auto noticed = active_q->take_notices();
  ASSERT_TRUE(noticed) << noticed.message();
  EXPECT_TRUE(*noticed);
  auto drained = active_q->take_notices();
  ASSERT_TRUE(drained);
  EXPECT_FALSE(*drained) << "each notice is taken once";

  // The server ends every session of the action queues (a restart, an administrator).
  auto admin = pg::Connection::connect(db_->target(), "test admin");
  ASSERT_TRUE(admin) << admin.message();
  ASSERT_TRUE(admin->run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'personad actions'"));
  ASSERT_TRUE(readable_within(active_q->socket(), 10'000)) << "the end shows on the socket";
  Result<std::vector<PgAction>> taken = make_error(ErrorKind::unavailable, "not tried");
  for (int i = 0; i < 3 && !taken; ++i) {
    (void)active_q->take_notices();  // reads the server's farewell
    taken = active_q->claim(fa, 16);
  }
  ASSERT_TRUE(taken) << taken.message();
  EXPECT_EQ(taken->size(), 1u) << "the request posted before the break";
  // The standby's own connection was ended too: its first statement finds that out.
  auto posted = standby_q->post(cancel("acme-2"));
  if (!posted) posted = standby_q->post(cancel("acme-2"));
  ASSERT_TRUE(posted) << posted.message();
  ASSERT_TRUE(readable_within(active_q->socket(), 10'000)) << "no notice after reconnecting";
  auto again = active_q->take_notices();
  ASSERT_TRUE(again) << again.message();
  EXPECT_TRUE(*again);
}

TEST_F(PgLeaseTest, AWithdrawnActionIsNeverClaimed) {
  auto active = lease("host-a");
  const PgFence fa = take(*active);
  auto q = queue();
  auto id = q->post(cancel("acme-1"));
  ASSERT_TRUE(id);
  auto withdrawn = q->withdraw(*id);
  ASSERT_TRUE(withdrawn);
  EXPECT_TRUE(*withdrawn);
  auto taken = q->claim(fa, 16);
  ASSERT_TRUE(taken);
  EXPECT_TRUE(taken->empty());
}

TEST_F(PgLeaseTest, ActionsAreClaimedOldestFirstAtMostMaxAtATime) {
  auto active = lease("host-a");
  const PgFence fa = take(*active);
  auto q = queue();
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(*q->post(cancel("k" + std::to_string(i))));
  auto first = q->claim(fa, 3);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].id, ids[0]);
  EXPECT_EQ((*first)[2].id, ids[2]);
  auto rest = q->claim(fa, 3);
  ASSERT_TRUE(rest);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].id, ids[3]);
}

// The active host died between running an action and answering it: the next active host (a
// newer epoch) claims it again (actions are idempotent by key); the dead one's answer, should it
// wake up, is refused.
TEST_F(PgLeaseTest, AnUnansweredClaimOfAnOlderEpochIsClaimedAgain) {
  auto a = lease("host-a");
  auto b = lease("host-b");
  auto q = queue();
  const PgFence fa = take(*a);
  auto id = q->post(cancel("acme-1", "host-c"));
  ASSERT_TRUE(id);
  ASSERT_EQ(q->claim(fa, 16)->size(), 1u);

  ASSERT_TRUE(a->release(fa));  // (or expiry: the same for the epoch)
  const PgFence fb = take(*b);
  auto again = q->claim(fb, 16);
  ASSERT_TRUE(again) << again.message();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().id, *id);

  auto stale = q->set_answer(fa, *id, PgActionAnswer{200, "old"});
  ASSERT_FALSE(stale);
  EXPECT_TRUE(is_lease_lost(stale.error())) << stale.message();
  ASSERT_TRUE(q->set_answer(fb, *id, PgActionAnswer{200, "new"}));
  EXPECT_EQ((*q->answer(*id))->body, "new");
}

TEST_F(PgLeaseTest, AClaimByAFencedOutEpochFailsAndTakesNothing) {
  auto a = lease("host-a");
  auto b = lease("host-b");
  auto q = queue();
  const PgFence fa = take(*a);
  ASSERT_TRUE(a->release(fa));
  const PgFence fb = take(*b);
  auto id = q->post(cancel("acme-1"));
  ASSERT_TRUE(id);
  auto taken = q->claim(fa, 16);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.kind(), ErrorKind::conflict);
  EXPECT_TRUE(is_lease_lost(taken.error())) << taken.message();
  EXPECT_EQ(db_->query("SELECT claimed_epoch IS NULL FROM personad_actions"), "t");
  EXPECT_EQ(q->claim(fb, 16)->size(), 1u);
}

}  // namespace
}  // namespace personad
