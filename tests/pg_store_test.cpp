// What only the PostgreSQL store has (the suite both backends share is store_test.cpp): its
// schema's migration (once, also when hosts start together; a newer or foreign database refused),
// the password kept out of every message, and the fence: a host that lost the lease writes
// nothing, not even inside a group of writes already queued. Each test on a database of its own
// (pg_test_db.hpp); skipped without a server.
#include "personad/pg_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "personad/pg_lease.hpp"
#include "personad/pg_migrations_data.hpp"
#include "pg_test_db.hpp"

namespace personad {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::PgTestDb;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);
const int kLatest = pg_migrations::kAll.back().version;

PersonaSpec spec(std::string key) {
  PersonaSpec s;
  s.key = std::move(key);
  s.gender = "f";
  s.labels = {"acme"};
  return s;
}

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = PgTestDb::create();
    if (!db) PERSONAD_PG_UNAVAILABLE(db.message());
    db_ = std::move(*db);
  }

  std::unique_ptr<Store> open(OpenMode mode = OpenMode::read_write,
                              std::optional<PgFence> fence = std::nullopt) {
    auto s = open_pg_store(db_->target(), mode, std::move(fence));
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }

  std::unique_ptr<PgLease> lease(const std::string& holder) {
    auto l = PgLease::connect(db_->target(), holder);
    EXPECT_TRUE(l) << l.message();
    return l ? std::move(*l) : nullptr;
  }

  std::function<std::string()> refs() {
    return [this] { return "ref-" + std::to_string(++refs_); };
  }

  std::unique_ptr<PgTestDb> db_;
  int refs_ = 0;
};

// ---- Schema ----------------------------------------------------------------------------------

TEST_F(PgStoreTest, OpenCreatesTheSchemaOnceAndReopensAtTheSameVersion) {
  {
    auto s = open();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->schema_version(), kLatest);
    ASSERT_TRUE(s->enqueue({spec("a")}, "t", "r", kT0, refs()));
  }
  EXPECT_EQ(db_->query("SELECT version FROM personad_schema"), std::to_string(kLatest));
  auto again = open();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->schema_version(), kLatest);
  EXPECT_EQ(db_->query("SELECT count(*) FROM jobs"), "1");
  EXPECT_EQ(db_->query("SELECT count(*) FROM personad_schema"), "1");
  // The lease row is there from the start, held by nobody.
  EXPECT_EQ(db_->query("SELECT holder || ':' || epoch FROM personad_lease"), ":0");
}

// Two hosts (here eight connections) starting at once on an empty database: one migrates,
// the others wait for its advisory lock and find nothing left to do.
TEST_F(PgStoreTest, HostsStartingTogetherMigrateOnce) {
  constexpr int kHosts = 8;
  std::vector<std::thread> hosts;
  std::atomic<int> ok{0};
  std::vector<std::string> errors(kHosts);
  for (int i = 0; i < kHosts; ++i)
    hosts.emplace_back([&, i] {
      auto s = open_pg_store(db_->target(), OpenMode::read_write);
      if (s && (*s)->schema_version() == kLatest)
        ++ok;
      else if (!s)
        errors[i] = s.message();
    });
  for (auto& t : hosts) t.join();
  EXPECT_EQ(ok, kHosts) << ::testing::PrintToString(errors);
  EXPECT_EQ(db_->query("SELECT count(*) FROM job_counts"), "7");  // not inserted twice
  EXPECT_EQ(db_->query("SELECT count(*) FROM personad_lease"), "1");
}

// A database of the first schema (0001, as every host of an earlier personad left it) migrates
// to the latest when a newer personad opens it: the jobs stay, batch_files (0002) appears.
TEST_F(PgStoreTest, ADatabaseOfTheFirstSchemaMigratesToTheLatest) {
  const auto& first = pg_migrations::kAll.front();
  ASSERT_EQ(db_->exec("CREATE TABLE personad_schema (id integer PRIMARY KEY CHECK (id = 1), "
                      "version integer NOT NULL); INSERT INTO personad_schema VALUES (1, " +
                      std::to_string(first.version) + ");" + std::string(first.sql)),
            "");
  ASSERT_EQ(db_->exec("INSERT INTO jobs (key, state, client_ref, spec, source, created_at, "
                      "updated_at) VALUES ('old-1', 'queued', 'ref-old', "
                      "'{\"key\":\"old-1\",\"gender\":\"f\",\"labels\":[]}', 'b.toml', 1000, "
                      "1000)"),
            "");
  EXPECT_EQ(db_->query("SELECT to_regclass('batch_files') IS NULL"), "t");
  auto s = open();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->schema_version(), kLatest);
  EXPECT_EQ(db_->query("SELECT version FROM personad_schema"), std::to_string(kLatest));
  EXPECT_EQ(db_->query("SELECT to_regclass('batch_files') IS NOT NULL"), "t");
  auto j = s->find("old-1");
  ASSERT_TRUE(j && *j) << j.message();
  EXPECT_EQ((*j)->client_ref, "ref-old");
  EXPECT_EQ(s->stats()->counts.at(State::queued), 1);  // the trigger of 0001 counted it
  ASSERT_TRUE(s->remember_batch("/b/a.toml", "sha256:x:1", 1, kT0));
  EXPECT_EQ((*s->remembered_batch("/b/a.toml"))->entries, 1);
  // The lease and the action table accept the migrated database.
  EXPECT_TRUE(PgLease::connect(db_->target(), "h"));
}

TEST_F(PgStoreTest, NewerSchemaIsRefusedAndLeftUntouched) {
  open().reset();
  EXPECT_EQ(db_->exec("UPDATE personad_schema SET version = 99"), "");
  for (auto mode : {OpenMode::read_write, OpenMode::read_only}) {
    auto s = open_pg_store(db_->target(), mode);
    ASSERT_FALSE(s);
    EXPECT_THAT(s.message(), HasSubstr("has schema version 99, this personad knows up to " +
                                       std::to_string(kLatest) + ": upgrade personad"));
  }
  EXPECT_EQ(db_->query("SELECT version FROM personad_schema"), "99");
  auto l = PgLease::connect(db_->target(), "a");
  ASSERT_FALSE(l);
  EXPECT_THAT(l.message(), HasSubstr("upgrade personad"));
}

TEST_F(PgStoreTest, ReadOnlyOpenOfAnEmptyDatabaseAsksToRunPersonadAndCreatesNothing) {
  auto s = open_pg_store(db_->target(), OpenMode::read_only);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("has schema version 0"));
  EXPECT_THAT(s.message(), HasSubstr("run personad once to migrate"));
  EXPECT_EQ(db_->query("SELECT to_regclass('personad_schema') IS NULL"), "t");
  EXPECT_EQ(db_->query("SELECT to_regclass('jobs') IS NULL"), "t");
}

TEST_F(PgStoreTest, AnotherProgramsJobsTableIsRefused) {
  EXPECT_EQ(db_->exec("CREATE TABLE jobs (x integer); INSERT INTO jobs VALUES (1)"), "");
  auto s = open_pg_store(db_->target(), OpenMode::read_write);
  ASSERT_FALSE(s);
  EXPECT_THAT(s.message(), HasSubstr("is not a personad database"));
  EXPECT_EQ(db_->query("SELECT to_regclass('personad_schema') IS NULL"), "t");
  EXPECT_EQ(db_->query("SELECT x FROM jobs"), "1");
}

// A read-only store's session refuses writes on the server too, whatever a bug might send.
TEST_F(PgStoreTest, ReadOnlyStoreCannotWrite) {
  open().reset();
  auto r = open(OpenMode::read_only);
  ASSERT_TRUE(r);
  auto e = r->enqueue({spec("a")}, "t", "r", kT0, refs());
  ASSERT_FALSE(e);
  EXPECT_THAT(e.message(), HasSubstr("read-only"));
  EXPECT_EQ(db_->query("SELECT count(*) FROM jobs"), "0");
}

// ---- The password ----------------------------------------------------------------------------

TEST_F(PgStoreTest, ThePasswordIsInNoErrorMessage) {
  const std::string secret = "Sup3r-Secret-pw";
  std::string good_url = db_->url();
  // A wrong password for the real server, given apart and in the URL.
  PgTarget apart{good_url, secret};
  PgTarget in_url{good_url, ""};
  in_url.url.insert(in_url.url.find('@'), ":" + secret);
  // No server at all there; and a URL libpq cannot read, quoting its bad part.
  PgTarget nobody{"postgresql://someone:" + secret + "@127.0.0.1:1/db", ""};
  PgTarget bad_url{"postgresql://someone:" + secret + "%zz@localhost/db", ""};
  for (const auto& t : {apart, in_url, nobody, bad_url}) {
    auto s = open_pg_store(t, OpenMode::read_write);
    ASSERT_FALSE(s) << t.url;
    EXPECT_THAT(s.message(), Not(HasSubstr(secret))) << s.message();
    EXPECT_THAT(s.message(), Not(HasSubstr("Secret"))) << s.message();
    auto l = PgLease::connect(t, "h");
    ASSERT_FALSE(l);
    EXPECT_THAT(l.message(), Not(HasSubstr(secret))) << l.message();
  }
  auto s = open_pg_store(nobody, OpenMode::read_write);
  EXPECT_THAT(s.message(), HasSubstr("someone@127.0.0.1:1/db"));  // where it went, though
}

// ---- Fencing ---------------------------------------------------------------------------------

// Every write kind of `store`, each expected to fail as lease lost and write nothing.
void expect_every_write_fenced(Store& store, PgTestDb& db) {
  const auto jobs_before = db.query("SELECT string_agg(key || state || polls, ',' ORDER BY id) FROM jobs");
  const auto history_before = db.query("SELECT count(*) FROM transitions");
  auto a = *store.find("a");
  ASSERT_TRUE(a);
  Job j = **store.find("a");

  auto e = store.enqueue({spec("new")}, "t", "r", kT0, [] { return std::string("ref-new"); });
  ASSERT_FALSE(e);
  EXPECT_EQ(e.kind(), ErrorKind::conflict);
  EXPECT_TRUE(is_lease_lost(e.error())) << e.message();
  EXPECT_THAT(e.message(), HasSubstr("this host is no longer the active one; nothing written"));

  Job moved = j;
  moved.state = State::submitting;
  auto ap = store.apply(moved, Transition{j.id, kT0, State::queued, State::submitting, "", "s"});
  ASSERT_FALSE(ap);
  EXPECT_TRUE(is_lease_lost(ap.error())) << ap.message();

  Job polled = j;
  polled.polls = 99;
  auto up = store.update(polled);
  ASSERT_FALSE(up);
  EXPECT_TRUE(is_lease_lost(up.error())) << up.message();

  auto dr = store.drop_archived({j.id}, "archive.jsonl", kT0);
  ASSERT_FALSE(dr);
  EXPECT_TRUE(is_lease_lost(dr.error())) << dr.message();

  auto g = store.begin_group();
  ASSERT_FALSE(g);
  EXPECT_TRUE(is_lease_lost(g.error())) << g.message();

  const auto batches_before = db.query("SELECT count(*) FROM batch_files");
  auto rb = store.remember_batch("/b/fenced.toml", "sha256:x:1", 1, kT0);
  ASSERT_FALSE(rb);
  EXPECT_TRUE(is_lease_lost(rb.error())) << rb.message();
  EXPECT_EQ(db.query("SELECT count(*) FROM batch_files"), batches_before);

  EXPECT_EQ(db.query("SELECT string_agg(key || state || polls, ',' ORDER BY id) FROM jobs"),
            jobs_before);
  EXPECT_EQ(db.query("SELECT count(*) FROM transitions"), history_before);
  // Reads go on: a standby answers them.
  EXPECT_TRUE(store.stats());
}

TEST_F(PgStoreTest, AFencedStoreWritesWhileItHoldsTheLease) {
  open().reset();
  auto a = lease("host-a");
  auto fence = a->try_acquire(Millis(60'000));
  ASSERT_TRUE(fence && *fence) << fence.message();
  EXPECT_EQ((*fence)->epoch, 1);
  auto s = open(OpenMode::read_write, **fence);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->enqueue({spec("a"), spec("b")}, "t", "r", kT0, refs()));
  Job j = **s->find("a");
  j.state = State::submitting;
  ASSERT_TRUE(s->apply(j, Transition{j.id, kT0, State::queued, State::submitting, "", "s"}));
  j.polls = 3;
  ASSERT_TRUE(s->update(j));
  ASSERT_TRUE(s->begin_group());
  Job b = **s->find("b");
  b.polls = 4;
  ASSERT_TRUE(s->update(b));
  ASSERT_TRUE(s->end_group());
  EXPECT_EQ(db_->query("SELECT sum(polls) FROM jobs"), "7");
}

// The host that lost the lease (another took it over: epoch N+1) writes nothing from then on:
// no enqueue, apply, update, archive or group, each a conflict saying the lease was lost.
TEST_F(PgStoreTest, AfterATakeoverEveryWriteOfTheOldHolderFailsAndWritesNothing) {
  open().reset();
  auto a = lease("host-a");
  auto b = lease("host-b");
  auto fa = a->try_acquire(Millis(60'000));
  ASSERT_TRUE(fa && *fa);
  auto old_store = open(OpenMode::read_write, **fa);
  ASSERT_TRUE(old_store->enqueue({spec("a")}, "t", "r", kT0, refs()));

  ASSERT_TRUE(a->release(**fa));
  auto fb = b->try_acquire(Millis(60'000));
  ASSERT_TRUE(fb && *fb) << "released: free at once";
  EXPECT_EQ((*fb)->epoch, 2);

  expect_every_write_fenced(*old_store, *db_);
  auto failed = old_store->enqueue({spec("x")}, "t", "r", kT0, refs());
  EXPECT_THAT(failed.message(), HasSubstr("the lease is now 'host-b' epoch 2"));

  // The new holder's store writes.
  auto new_store = open(OpenMode::read_write, **fb);
  Job j = **new_store->find("a");
  j.polls = 5;
  EXPECT_TRUE(new_store->update(j));
}

// A host that slept past its lease (SIGSTOP, a long pause) and comes back finds its epoch over,
// even when nobody took the lease meanwhile: re-acquiring gives a new epoch, and the store it
// opened with the old one never writes again.
TEST_F(PgStoreTest, AnExpiredLeaseFencesItsStoreEvenIfNobodyTookIt) {
  open().reset();
  auto a = lease("host-a");
  auto fa = a->try_acquire(Millis(150));
  ASSERT_TRUE(fa && *fa);
  auto old_store = open(OpenMode::read_write, **fa);
  ASSERT_TRUE(old_store->enqueue({spec("a")}, "t", "r", kT0, refs()));
  // Wait for the database's clock (the lease is timed there, never by a host's clock).
  for (int i = 0; i < 100; ++i) {
    auto info = a->current();
    ASSERT_TRUE(info);
    if (info->expires_in <= Millis(0)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto renewed = a->renew(**fa, Millis(60'000));
  ASSERT_TRUE(renewed);
  EXPECT_FALSE(*renewed) << "an expired lease is not renewed";
  auto again = a->try_acquire(Millis(60'000));
  ASSERT_TRUE(again && *again);
  EXPECT_EQ((*again)->epoch, (*fa)->epoch + 1);
  expect_every_write_fenced(*old_store, *db_);
}

// A group of writes begun while the lease was held has the lease row locked: a takeover (here
// the holder's own release, then another host's acquisition) waits until the group has
// committed, so the new holder reads everything the old one wrote, and nothing after.
TEST_F(PgStoreTest, ATakeoverWaitsForAGroupInFlightAndTheNextGroupIsFenced) {
  open().reset();
  auto a = lease("host-a");
  auto b = lease("host-b");
  auto fa = a->try_acquire(Millis(60'000));
  ASSERT_TRUE(fa && *fa);
  auto s = open(OpenMode::read_write, **fa);
  ASSERT_TRUE(s->enqueue({spec("a"), spec("b")}, "t", "r", kT0, refs()));

  ASSERT_TRUE(s->begin_group());
  Job j = **s->find("a");
  j.polls = 1;
  ASSERT_TRUE(s->update(j));
  std::atomic<bool> taken{false};
  std::thread takeover([&] {
    EXPECT_TRUE(a->release(**fa));  // an UPDATE of the lease row: waits for the group
    auto fb = b->try_acquire(Millis(60'000));
    EXPECT_TRUE(fb && *fb && (*fb)->epoch == 2);
    taken = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE(taken) << "the takeover must wait for the group in flight";
  Job k = **s->find("b");
  k.polls = 2;
  ASSERT_TRUE(s->update(k));
  ASSERT_TRUE(s->end_group());
  takeover.join();
  EXPECT_TRUE(taken);
  EXPECT_EQ(db_->query("SELECT sum(polls) FROM jobs"), "3");

  // The next group of the old holder: refused whole, nothing of it written.
  auto g = s->begin_group();
  ASSERT_FALSE(g);
  EXPECT_TRUE(is_lease_lost(g.error())) << g.message();
  expect_every_write_fenced(*s, *db_);
}

// Inside a group each write is a savepoint: one that fails (here a constraint) leaves the others,
// and the group still commits them.
TEST_F(PgStoreTest, AFailingWriteInAGroupLeavesTheOthers) {
  auto s = open();
  ASSERT_TRUE(s->enqueue({spec("a"), spec("b"), spec("c")}, "t", "r", kT0, refs()));
  Job a = **s->find("a");
  a.remote_id = "r-1";
  ASSERT_TRUE(s->update(a));
  ASSERT_TRUE(s->begin_group());
  Job b = **s->find("b");
  b.remote_id = "r-1";  // taken by a: fails
  EXPECT_FALSE(s->update(b));
  Job c = **s->find("c");
  c.polls = 7;
  EXPECT_TRUE(s->update(c));
  auto dup = s->enqueue({spec("d")}, "t", "r", kT0, [] { return std::string("ref-1"); });
  EXPECT_FALSE(dup);  // a client_ref clash
  ASSERT_TRUE(s->end_group());
  EXPECT_EQ(db_->query("SELECT polls FROM jobs WHERE key = 'c'"), "7");
  EXPECT_EQ(db_->query("SELECT remote_id IS NULL FROM jobs WHERE key = 'b'"), "t");
  EXPECT_EQ(db_->query("SELECT count(*) FROM jobs"), "3");

  // abort_group: none of it happened.
  ASSERT_TRUE(s->begin_group());
  c.polls = 8;
  EXPECT_TRUE(s->update(c));
  s->abort_group();
  EXPECT_EQ(db_->query("SELECT polls FROM jobs WHERE key = 'c'"), "7");
}

}  // namespace
}  // namespace personad
