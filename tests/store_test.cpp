// Tests of the store: every read and write of jobs and transitions on both backends (SQLite and
// PostgreSQL, TEST_P), each against a fresh database; and what only SQLite has (opening and
// migrating files, refusing foreign, damaged or newer ones: SqliteStoreTest).
#include "personad/store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>

#include "personad/migrations_data.hpp"
#include "store_backend.hpp"

namespace personad {
namespace {

namespace fs = std::filesystem;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);  // 2026-09-21, a fixed start

PersonaSpec make_spec(std::string key) {
  PersonaSpec s;
  s.key = std::move(key);
  s.gender = "f";
  s.creator_name = "Jane Doe";
  s.video_scene = "office";
  s.keywords = "friendly, professional";
  s.lipsync_input = "https://cdn.example.com/jane/lipsync.mp4";
  s.consent_video = "https://cdn.example.com/jane/consent.mp4";
  s.labels = {"acme", "batch-7"};
  return s;
}

// Reading a selection with `--stuck` counting from t.
SelectOptions stuck_before(TimePoint t) {
  SelectOptions o;
  o.stuck_before = t;
  return o;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs SQL through a raw connection of its own, as another program (or an older personad) would.
void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err != nullptr ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

// The fixture of every store test: a fresh store place (a SQLite file, or a PostgreSQL database
// of its own) and the helpers that drive jobs through it.
class StoreFixture : public ::testing::Test {
 protected:
  void make_backend(testing::StoreBackendKind kind) {
    auto b = testing::StoreBackend::make(kind);
    if (!b) PERSONAD_PG_UNAVAILABLE(b.message());
    backend_ = std::move(*b);
  }

  std::unique_ptr<Store> open(OpenMode mode = OpenMode::read_write) {
    auto store = backend_->open(mode);
    EXPECT_TRUE(store.ok()) << store.message();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // The first column of the first row of `sql`, read behind the store's back.
  std::string query(const std::string& sql) { return backend_->query(sql); }

  // Client references "ref-1", "ref-2", …: unique and predictable.
  std::function<std::string()> refs() {
    return [this] { return "ref-" + std::to_string(++refs_made_); };
  }

  std::vector<EnqueueOutcome> enqueue(Store& store, const std::vector<PersonaSpec>& specs,
                                      TimePoint now = kT0) {
    auto out = store.enqueue(specs, "batches.d/acme.toml", "batch acme.toml", now, refs());
    EXPECT_TRUE(out.ok()) << out.message();
    return out.ok() ? *out : std::vector<EnqueueOutcome>{};
  }

  Job job(Store& store, std::string_view key) {
    auto found = store.find(key);
    EXPECT_TRUE(found.ok()) << found.message();
    EXPECT_TRUE(found.ok() && found->has_value()) << "no job " << key;
    return found.ok() && found->has_value() ? **found : Job{};
  }

  // Moves a job to `to` along the transition table (queued → submitting → pending → …),
  // recording each transition as the tracker would.
  void move(Store& store, Job& j, State to, TimePoint at, std::string reason = "test") {
    std::vector<State> path;
    if (to == State::cancelled || transition_allowed(j.state, to)) {
      path = {to};
    } else {
      for (State s : {State::submitting, State::pending})
        if (j.state != s && s != to) path.push_back(s);
      path.push_back(to);
    }
    for (State next : path) {
      ASSERT_TRUE(transition_allowed(j.state, next))
          << to_string(j.state) << " → " << to_string(next);
      Transition t{.job_id = j.id, .at = at, .from = j.state, .to = next, .remote_status = {},
                   .reason = reason};
      j.state = next;
      j.updated_at = at;
      auto r = store.apply(j, t);
      ASSERT_TRUE(r.ok()) << r.message();
    }
  }

  // A job taken to pending as "remote-1" and then to the remote status `status` (at kT0 + 1,
  // 2 and 3 ms), read back from the store.
  Job remote_job(Store& store, const std::string& key, const std::string& status) {
    enqueue(store, {make_spec(key)});
    Job j = job(store, key);
    move(store, j, State::submitting, kT0 + Millis(1));
    j.remote_id = "remote-1";
    move(store, j, State::pending, kT0 + Millis(2));
    j.remote_status = status;
    j.updated_at = kT0 + Millis(3);
    Transition t{.job_id = j.id, .at = j.updated_at, .from = State::pending,
                 .to = State::pending, .remote_status = status, .reason = "status changed"};
    auto r = store.apply(j, t);
    EXPECT_TRUE(r.ok()) << r.message();
    return job(store, key);
  }

  std::unique_ptr<testing::StoreBackend> backend_;
  int refs_made_ = 0;
};

// The tests every backend must pass alike: TEST_P, once on SQLite and once on PostgreSQL (which
// skips without a server, see pg_test_db.hpp).
class StoreTest : public StoreFixture,
                  public ::testing::WithParamInterface<testing::StoreBackendKind> {
 protected:
  void SetUp() override { make_backend(GetParam()); }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, testing::kAllStoreBackends,
                         testing::store_backend_name);

// What only a SQLite file has: its path, its bytes, its pragmas, its old schemas.
class SqliteStoreTest : public StoreFixture {
 protected:
  void SetUp() override {
    make_backend(testing::StoreBackendKind::sqlite);
    path_ = backend_->sqlite_path();
    dir_ = fs::path(path_).parent_path();
  }

  fs::path dir_;
  std::string path_;
};

void expect_same_job(const Job& a, const Job& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.client_ref, b.client_ref);
  EXPECT_EQ(a.spec, b.spec);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.remote_id, b.remote_id);
  EXPECT_EQ(a.remote_status, b.remote_status);
  EXPECT_EQ(a.failed_reason, b.failed_reason);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.submitted_at, b.submitted_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
  EXPECT_EQ(a.next_poll_at, b.next_poll_at);
  EXPECT_EQ(a.polls, b.polls);
  EXPECT_EQ(a.attempts, b.attempts);
  EXPECT_EQ(a.errors, b.errors);
  EXPECT_EQ(a.submitting_since, b.submitting_since);
  EXPECT_EQ(a.needs_operator, b.needs_operator);
  EXPECT_EQ(a.send_unknown, b.send_unknown);
  EXPECT_EQ(a.last_sent_at, b.last_sent_at);
  EXPECT_EQ(a.expires_at, b.expires_at);
  EXPECT_EQ(a.unknown_since, b.unknown_since);
  EXPECT_EQ(a.operator_reason, b.operator_reason);
}

// ---- Opening ---------------------------------------------------------------------------------

TEST_F(SqliteStoreTest, OpenCreatesAndMigratesToTheLatestVersion) {
  auto store = open();
  ASSERT_TRUE(store);
  const int latest = migrations::kAll.back().version;
  EXPECT_EQ(store->schema_version(), latest);
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_EQ(query("PRAGMA user_version"), std::to_string(latest));
  EXPECT_EQ(query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query("SELECT count(*) FROM sqlite_schema WHERE name = 'jobs'"), "1");
  EXPECT_EQ(query("SELECT count(*) FROM sqlite_schema WHERE name = 'transitions'"),
            "1");
}

// The writer copies its WAL back into the database every 10,000 pages (~40 MiB), not SQLite's
// 1,000 (~4 MiB): a page that many commits rewrite is copied back once per 40 MiB.
TEST_F(SqliteStoreTest, TheWalIsCheckpointedEveryFortyMebibytesNotEveryFour) {
  auto store = open();
  ASSERT_TRUE(store);
  for (int chunk = 0; chunk < 16; ++chunk) {
    std::vector<PersonaSpec> specs;
    for (int i = 0; i < 500; ++i)
      specs.push_back(make_spec("wal-" + std::to_string(chunk) + "-" + std::to_string(i)));
    ASSERT_EQ(enqueue(*store, specs).size(), specs.size());
  }
  ASSERT_TRUE(fs::exists(path_ + "-wal"));
  const auto wal = fs::file_size(path_ + "-wal");
  // At 1,000 pages the WAL would have been reset and reused from its start: ~4 MiB.
  EXPECT_GT(wal, 8u << 20) << wal;
  EXPECT_LT(wal, 48u << 20) << wal;
}

TEST_F(SqliteStoreTest, OpenFailsNamingAMissingDirectory) {
  const auto missing = dir_ / "no-such-dir";
  auto store = Store::open((missing / "personad.db").string(), OpenMode::read_write);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find(missing.string()), std::string::npos) << store.message();
  EXPECT_NE(store.message().find("does not exist"), std::string::npos) << store.message();
  EXPECT_FALSE(fs::exists(missing));
}

TEST_P(StoreTest, ReopenKeepsData) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    enqueue(*store, {make_spec("acme-1"), make_spec("acme-2")});
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto jobs = store->list();
  ASSERT_TRUE(jobs.ok()) << jobs.message();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].key, "acme-1");
  EXPECT_EQ((*jobs)[1].key, "acme-2");
  EXPECT_EQ((*jobs)[1].spec, make_spec("acme-2"));
}

TEST_P(StoreTest, ReadOnlyOpensWhileNoWriterIsOpen) {
  {
    auto writer = open();
    ASSERT_TRUE(writer);
    enqueue(*writer, {make_spec("acme-1")});
  }
  auto reader = open(OpenMode::read_only);
  ASSERT_TRUE(reader);
  EXPECT_EQ(job(*reader, "acme-1").spec, make_spec("acme-1"));
  auto stats = reader->stats();
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->counts.at(State::queued), 1);
}

TEST_F(SqliteStoreTest, NonSqliteFileIsRefusedAndLeftUntouched) {
  std::string garbage(8192, '\0');
  std::mt19937 random(42);
  for (auto& c : garbage) c = static_cast<char>(random());
  {
    std::ofstream out(path_, std::ios::binary);
    out.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  for (auto mode : {OpenMode::read_write, OpenMode::read_only}) {
    auto store = Store::open(path_, mode);
    ASSERT_FALSE(store.ok());
    EXPECT_NE(store.message().find(path_ + " is not a personad database (file is not a database)"),
              std::string::npos)
        << store.message();
  }
  EXPECT_EQ(read_bytes(path_), garbage);
  EXPECT_FALSE(fs::exists(path_ + "-wal"));
  EXPECT_FALSE(fs::exists(path_ + "-shm"));
}

TEST_F(SqliteStoreTest, AnotherProgramsSqliteDatabaseIsRefused) {
  raw_exec(path_, "CREATE TABLE jobs (x INTEGER); INSERT INTO jobs VALUES (1);");
  const auto before = read_bytes(path_);
  auto store = Store::open(path_, OpenMode::read_write);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("is not a personad database"), std::string::npos)
      << store.message();
  EXPECT_EQ(read_bytes(path_), before);
}

// Operators upgrade in place: a database written by the oldest schema (0001) opens, migrates
// to the latest, and keeps every job and transition.
TEST_F(SqliteStoreTest, DatabaseOfTheOldestSchemaMigratesWithNothingLost) {
  const auto& oldest = migrations::kAll.front();
  raw_exec(path_, std::string(oldest.sql) + "; PRAGMA user_version = " +
                      std::to_string(oldest.version) + ";");
  raw_exec(path_,
           "INSERT INTO jobs (id, key, state, client_ref, spec, source, remote_id, remote_status, "
           "created_at, submitted_at, updated_at, next_poll_at, polls, attempts, "
           "submitting_since, send_unknown, last_sent_at, expires_at) VALUES (1, 'old-1', "
           "'pending', 'ref-1', '{\"key\":\"old-1\",\"gender\":\"f\",\"labels\":[\"a\"]}', "
           "'batch.toml', 'remote-1', 'reviewing', 1000, 2000, 3000, 4000, 7, 1, 1500, 0, 1500, "
           "9000);"
           "INSERT INTO transitions (job_id, at, from_state, to_state, remote_status, reason) "
           "VALUES (1, 1000, NULL, 'queued', NULL, 'enqueued'), "
           "(1, 1500, 'queued', 'submitting', NULL, 'submitting'), "
           "(1, 2000, 'submitting', 'pending', 'pending', 'created');");
  auto store = open();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->schema_version(), migrations::kAll.back().version);
  Job j = job(*store, "old-1");
  EXPECT_EQ(j.state, State::pending);
  EXPECT_EQ(j.client_ref, "ref-1");
  EXPECT_EQ(j.remote_id, "remote-1");
  EXPECT_EQ(j.remote_status, "reviewing");
  EXPECT_EQ(j.polls, 7);
  EXPECT_EQ(j.spec.labels, std::vector<std::string>{"a"});
  EXPECT_EQ(j.expires_at, from_unix_ms(9000));
  EXPECT_FALSE(j.unknown_since);  // columns added later read as absent
  EXPECT_FALSE(j.operator_reason);
  auto h = store->history(j.id);
  ASSERT_TRUE(h.ok()) << h.message();
  ASSERT_EQ(h->size(), 3u);
  EXPECT_EQ((*h)[2].reason, "created");
  // Counts per state were built from the rows by the migration.
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->counts.at(State::pending), 1);
  EXPECT_EQ(stats->polls, 7);
  // And it keeps working: the next poll's write goes through, counted.
  j.polls = 8;
  EXPECT_TRUE(store->update(j).ok());
  EXPECT_EQ(store->stats()->polls, 8);
  // Selections (0005) see the old rows: labels from the stored spec, the last change of status
  // from the history (its latest row, at 2000).
  Selection by_label;
  by_label.labels = {"a"};
  by_label.states = {State::pending};
  by_label.key_glob = "old-*";
  auto page = store->select(by_label, SelectOptions{});
  ASSERT_TRUE(page.ok()) << page.message();
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].key, "old-1");
  Selection stuck;
  stuck.stuck = true;
  page = store->select(stuck, stuck_before(from_unix_ms(2000)));
  ASSERT_TRUE(page.ok()) << page.message();
  EXPECT_EQ(page->jobs.size(), 1u);
  page = store->select(stuck, stuck_before(from_unix_ms(1999)));
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->jobs.empty());
  // A poll that changes nothing writes its columns only (record_poll), counted as well; the
  // campaign's estimate groups the old row by what the migrations derived (0009's index).
  j = job(*store, "old-1");
  j.polls = 9;
  j.next_poll_at = from_unix_ms(5000);
  ASSERT_TRUE(store->record_poll(j).ok());
  EXPECT_EQ(store->stats()->polls, 9);
  auto groups = store->active_cohorts(Millis(1000));
  ASSERT_TRUE(groups.ok()) << groups.message();
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ((*groups)[0].remote_status, "reviewing");
  EXPECT_EQ((*groups)[0].entry, from_unix_ms(2000));
  EXPECT_EQ((*groups)[0].submitted, from_unix_ms(2000));
  EXPECT_EQ((*groups)[0].jobs, 1);
  // Batch files enqueued whole (0010): none remembered yet; remembering works at once.
  auto none = store->remembered_batch("/b/old.toml");
  ASSERT_TRUE(none.ok()) << none.message();
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(store->remember_batch("/b/old.toml", "sha256:x:1", 1, kT0).ok());
  EXPECT_EQ((*store->remembered_batch("/b/old.toml"))->entries, 1);
}

// The counts kept by triggers (0003) always equal a recount of the rows, whatever moves,
// updates and offline enqueues happened.
TEST_P(StoreTest, KeptCountsAlwaysEqualARecount) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<PersonaSpec> specs;
  for (int i = 0; i < 60; ++i) specs.push_back(make_spec("job-" + std::to_string(i)));
  enqueue(*store, specs);
  std::mt19937 random(7);
  for (int round = 0; round < 400; ++round) {
    Job j = job(*store, "job-" + std::to_string(random() % 60));
    if (is_final(j.state)) continue;
    switch (random() % 4) {
      case 0: {
        std::vector<State> next;
        for (State s : all_states())
          if (transition_allowed(j.state, s)) next.push_back(s);
        move(*store, j, next[random() % next.size()], kT0);
        break;
      }
      case 1:
        j.polls += 1 + random() % 3;
        ASSERT_TRUE(store->update(j).ok());
        break;
      case 2:
        j.attempts += 1;
        ASSERT_TRUE(store->update(j).ok());
        break;
      default:
        j.needs_operator = !j.needs_operator;
        ASSERT_TRUE(store->update(j).ok());
    }
  }
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok()) << stats.message();
  for (State st : all_states())
    EXPECT_EQ(std::to_string(stats->counts.at(st)),
              query("SELECT count(*) FROM jobs WHERE state = '" +
                                   std::string(to_string(st)) + "'"))
        << to_string(st);
  EXPECT_EQ(std::to_string(stats->polls), query("SELECT sum(polls) FROM jobs"));
  EXPECT_EQ(std::to_string(stats->attempts), query("SELECT sum(attempts) FROM jobs"));
  EXPECT_EQ(std::to_string(stats->needs_operator),
            query("SELECT count(*) FROM jobs WHERE needs_operator AND state IN "
                             "('queued', 'submitting', 'pending')"));
}

// The transition table lives in one place and the store enforces it: a move the table forbids
// writes nothing, whoever asks.
TEST_P(StoreTest, ApplyRefusesAMoveTheTableForbids) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job j = job(*store, "acme-1");
  j.state = State::done;
  Transition skip{.job_id = j.id, .at = kT0, .from = State::queued, .to = State::done,
                  .remote_status = {}, .reason = "skipping ahead"};
  auto r = store->apply(j, skip);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::conflict);
  EXPECT_NE(r.message().find("queued → done is not an allowed transition"), std::string::npos)
      << r.message();
  EXPECT_EQ(job(*store, "acme-1").state, State::queued);
  EXPECT_EQ(query("SELECT count(*) FROM transitions"), "1");

  // submitting → submitting is allowed: a resend after a proved absence, or a flag.
  Job k = job(*store, "acme-1");
  move(*store, k, State::submitting, kT0);
  move(*store, k, State::submitting, kT0 + Millis(1), "submitting again");
  EXPECT_EQ(query("SELECT count(*) FROM transitions"), "3");
}

// A write of a job that moved on meanwhile (an operator cancelled it while its request was in
// flight) is refused as a conflict and changes nothing: the cancel stands.
TEST_P(StoreTest, WritesOfAJobThatMovedOnAreConflicts) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job stale = job(*store, "acme-1");
  move(*store, stale, State::submitting, kT0);
  Job current = job(*store, "acme-1");
  move(*store, current, State::cancelled, kT0 + Millis(1), "cancelled by operator");

  stale.remote_id = "remote-1";
  stale.state = State::pending;
  Transition created{.job_id = stale.id, .at = kT0 + Millis(2), .from = State::submitting,
                     .to = State::pending, .remote_status = "pending", .reason = "created"};
  auto r = store->apply(stale, created);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::conflict);
  EXPECT_NE(r.message().find("the job is cancelled now"), std::string::npos) << r.message();

  stale.state = State::submitting;
  auto u = store->update(stale);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.kind(), ErrorKind::conflict);
  Job after = job(*store, "acme-1");
  EXPECT_EQ(after.state, State::cancelled);
  EXPECT_FALSE(after.remote_id);
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefused) {
  open().reset();
  raw_exec(path_, "PRAGMA user_version = 99");
  const int latest = migrations::kAll.back().version;
  for (auto mode : {OpenMode::read_write, OpenMode::read_only}) {
    auto store = Store::open(path_, mode);
    ASSERT_FALSE(store.ok());
    EXPECT_NE(store.message().find("database " + path_ + " has schema version 99, this personad "
                                   "knows up to " + std::to_string(latest) + ": upgrade personad"),
              std::string::npos)
        << store.message();
  }
  EXPECT_EQ(query("PRAGMA user_version"), "99");
}

TEST_F(SqliteStoreTest, DamagedDatabaseIsRefused) {
  {
    auto store = open();
    ASSERT_TRUE(store);
    std::vector<PersonaSpec> specs;
    for (int i = 0; i < 500; ++i) specs.push_back(make_spec("acme-" + std::to_string(i)));
    enqueue(*store, specs);
  }  // the last close checkpoints the WAL into the main file
  ASSERT_FALSE(fs::exists(path_ + "-wal"));
  // Overwrite the middle of the file (table and index pages), keeping the header intact.
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 16384u);
  {
    std::fstream f(path_, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(size / 2));
    const std::string junk(8192, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  const auto damaged = read_bytes(path_);
  auto store = Store::open(path_, OpenMode::read_write);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("database " + path_ + " is damaged"), std::string::npos)
      << store.message();
  EXPECT_EQ(read_bytes(path_), damaged) << "a damaged database is left for the operator";

  // The daemon's way: open without the check (the schema is current), check on a connection
  // of its own. Same verdict, same file.
  auto unchecked = Store::open(path_, OpenMode::read_write, IntegrityCheck::by_caller);
  ASSERT_TRUE(unchecked.ok()) << unchecked.message();
  auto verdict = Store::check_integrity(path_);
  ASSERT_FALSE(verdict.ok());
  EXPECT_NE(verdict.message().find("database " + path_ + " is damaged"), std::string::npos)
      << verdict.message();
  unchecked->reset();
  EXPECT_EQ(read_bytes(path_), damaged) << "opening without the check wrote nothing";
}

// A sound file passes the separate check; an empty one (a database about to be made) too; a
// file that needs migrating is checked at open all the same, since migrating writes.
TEST_F(SqliteStoreTest, IntegrityCheckApartFromTheOpen) {
  {
    std::ofstream touch(path_);
  }
  EXPECT_TRUE(Store::check_integrity(path_).ok());
  {
    auto store = open();
    ASSERT_TRUE(store);
    enqueue(*store, {make_spec("acme-1")});
  }
  auto verdict = Store::check_integrity(path_);
  EXPECT_TRUE(verdict.ok()) << verdict.message();
  auto missing = Store::check_integrity((dir_ / "none.db").string());
  EXPECT_FALSE(missing.ok());
}

TEST_F(SqliteStoreTest, ReadOnlyOpenOfAMissingFileFails) {
  auto store = Store::open(path_, OpenMode::read_only);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find(path_ + " does not exist"), std::string::npos)
      << store.message();
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(SqliteStoreTest, ReadOnlyOpenOfAnUnmigratedFileAsksToRunPersonad) {
  { std::ofstream touch(path_); }  // an empty file is an empty SQLite database
  auto store = Store::open(path_, OpenMode::read_only);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.message().find("has schema version 0"), std::string::npos) << store.message();
  EXPECT_NE(store.message().find("run personad once to migrate"), std::string::npos)
      << store.message();
  EXPECT_EQ(fs::file_size(path_), 0u);
}

TEST_P(StoreTest, ReadOnlySeesWhatTheWriterCommitsAndCannotWrite) {
  auto writer = open();
  ASSERT_TRUE(writer);
  enqueue(*writer, {make_spec("acme-1")});
  auto reader = open(OpenMode::read_only);
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->schema_version(), writer->schema_version());
  ASSERT_EQ(job(*reader, "acme-1").spec, make_spec("acme-1"));

  // Both open at once (the daemon running, personactl inspecting): later commits are seen.
  Job j = job(*writer, "acme-1");
  move(*writer, j, State::submitting, kT0 + Millis(10));
  EXPECT_EQ(job(*reader, "acme-1").state, State::submitting);
  auto history = reader->history(j.id);
  ASSERT_TRUE(history.ok()) << history.message();
  EXPECT_EQ(history->size(), 2u);

  auto refused = reader->enqueue({make_spec("acme-2")}, "personactl", "r", kT0, refs());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("read-only"), std::string::npos) << refused.message();
  EXPECT_FALSE(reader->update(j).ok());
  auto absent = writer->find("acme-2");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());
}

// ---- Enqueue ---------------------------------------------------------------------------------

TEST_P(StoreTest, EnqueueInsertsQueuedJobsWithAFirstTransition) {
  auto store = open();
  ASSERT_TRUE(store);
  auto out = enqueue(*store, {make_spec("acme-1"), make_spec("acme-2")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].key, "acme-1");
  EXPECT_TRUE(out[0].inserted);
  EXPECT_EQ(out[0].state, State::queued);
  EXPECT_FALSE(out[0].spec_changed);
  EXPECT_NE(out[0].job_id, out[1].job_id);

  Job j = job(*store, "acme-1");
  EXPECT_EQ(j.id, out[0].job_id);
  EXPECT_EQ(j.state, State::queued);
  EXPECT_EQ(j.client_ref, "ref-1");
  EXPECT_EQ(job(*store, "acme-2").client_ref, "ref-2");
  EXPECT_EQ(j.spec, make_spec("acme-1"));
  EXPECT_EQ(j.source, "batches.d/acme.toml");
  EXPECT_EQ(j.created_at, kT0);
  EXPECT_EQ(j.updated_at, kT0);
  EXPECT_EQ(j.next_poll_at, kT0);  // due at once
  EXPECT_FALSE(j.remote_id);
  EXPECT_FALSE(j.submitted_at);
  EXPECT_EQ(j.polls, 0);
  EXPECT_EQ(j.attempts, 0);

  auto history = store->history(j.id);
  ASSERT_TRUE(history.ok()) << history.message();
  ASSERT_EQ(history->size(), 1u);
  const auto& first = history->front();
  EXPECT_EQ(first.job_id, j.id);
  EXPECT_EQ(first.at, kT0);
  EXPECT_FALSE(first.from.has_value());
  EXPECT_EQ(first.to, State::queued);
  EXPECT_EQ(first.reason, "batch acme.toml");
  EXPECT_EQ(first.remote_status, "");
}

TEST_P(StoreTest, KnownKeyIsNeverInsertedAgain) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job j = job(*store, "acme-1");
  move(*store, j, State::submitting, kT0 + Millis(5));

  auto again = enqueue(*store, {make_spec("acme-1")}, kT0 + Millis(100));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_FALSE(again[0].inserted);
  EXPECT_EQ(again[0].state, State::submitting);
  EXPECT_FALSE(again[0].spec_changed);
  EXPECT_EQ(again[0].job_id, j.id);
  EXPECT_EQ(refs_made_, 1) << "no client reference is drawn for a known key";

  PersonaSpec edited = make_spec("acme-1");
  edited.labels = {"batch-7", "acme"};  // the same labels in another order are another spec
  auto changed = enqueue(*store, {edited}, kT0 + Millis(200));
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_FALSE(changed[0].inserted);
  EXPECT_TRUE(changed[0].spec_changed);

  Job after = job(*store, "acme-1");
  EXPECT_EQ(after.spec, make_spec("acme-1")) << "the stored spec is never overwritten";
  EXPECT_EQ(after.updated_at, kT0 + Millis(5));
  auto history = store->history(j.id);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 2u);
  auto all = store->list();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST_P(StoreTest, DuplicateKeyWithinOneCallIsReportedAsKnown) {
  auto store = open();
  ASSERT_TRUE(store);
  PersonaSpec other = make_spec("acme-1");
  other.creator_name = "John Doe";
  auto out = enqueue(*store, {make_spec("acme-1"), make_spec("acme-1"), other});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_TRUE(out[0].inserted);
  EXPECT_FALSE(out[1].inserted);
  EXPECT_FALSE(out[1].spec_changed);
  EXPECT_EQ(out[1].job_id, out[0].job_id);
  EXPECT_FALSE(out[2].inserted);
  EXPECT_TRUE(out[2].spec_changed);
  EXPECT_EQ(out[2].state, State::queued);
  auto all = store->list();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST_P(StoreTest, EnqueueIsAllOrNothing) {
  auto store = open();
  ASSERT_TRUE(store);
  // A clashing client reference on the third spec fails the whole call.
  int calls = 0;
  auto clashing = [&calls] { return ++calls < 3 ? "ref-" + std::to_string(calls) : "ref-1"; };
  auto out = store->enqueue({make_spec("a"), make_spec("b"), make_spec("c")}, "personactl", "r",
                            kT0, clashing);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.message().find("store: enqueue 'c'"), std::string::npos) << out.message();
  EXPECT_NE(out.message().find("client_ref"), std::string::npos) << out.message();
  auto all = store->list();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  EXPECT_EQ(query("SELECT count(*) FROM transitions"), "0");

  // The store is usable afterwards: the failed transaction did not stay open.
  EXPECT_EQ(enqueue(*store, {make_spec("a")}).size(), 1u);
}

TEST_P(StoreTest, SpecThatCannotBeReadBackIsRefused) {
  auto store = open();
  ASSERT_TRUE(store);
  PersonaSpec bad = make_spec("latin1");
  bad.creator_name = "Jos\xe9";  // ISO-8859-1, not UTF-8
  auto out = store->enqueue({make_spec("ok"), bad}, "personactl", "r", kT0, refs());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.message().find("'latin1'"), std::string::npos) << out.message();
  auto all = store->list();
  ASSERT_TRUE(all.ok()) << all.message();
  EXPECT_TRUE(all->empty());
}

// In a group (the store thread), a spec that cannot be stored is found before the first row
// is written: the enqueue fails alone and the group's other writes commit.
TEST_P(StoreTest, SpecThatCannotBeReadBackFailsOnlyItsEnqueueInAGroup) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("other")});
  Job other = job(*store, "other");
  PersonaSpec bad = make_spec("latin1");
  bad.creator_name = "Jos\xe9";
  ASSERT_TRUE(store->begin_group().ok());
  auto out = store->enqueue({make_spec("ok"), bad}, "personactl", "r", kT0, refs());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.message().find("'latin1'"), std::string::npos) << out.message();
  move(*store, other, State::submitting, kT0 + Millis(1));
  auto committed = store->end_group();
  ASSERT_TRUE(committed.ok()) << committed.message();
  EXPECT_EQ(job(*store, "other").state, State::submitting);
  EXPECT_FALSE(store->find("ok")->has_value());
}

// In a group, a write refused before it changed anything (a conflict) leaves the others: they
// commit, and the refused job's row and history are as they were.
TEST_P(StoreTest, AConflictInAGroupLeavesTheOtherWrites) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("a"), make_spec("b"), make_spec("c")});
  Job a = job(*store, "a"), b = job(*store, "b"), c = job(*store, "c");
  Job b_stale = b;
  move(*store, b, State::cancelled, kT0, "cancelled by operator");

  ASSERT_TRUE(store->begin_group().ok());
  move(*store, a, State::submitting, kT0 + Millis(1));
  b_stale.state = State::submitting;
  auto refused = store->apply(b_stale, Transition{.job_id = b_stale.id, .at = kT0 + Millis(1),
                                                  .from = State::queued, .to = State::submitting,
                                                  .remote_status = {}, .reason = "stale"});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.kind(), ErrorKind::conflict);
  move(*store, c, State::submitting, kT0 + Millis(1));
  auto committed = store->end_group();
  ASSERT_TRUE(committed.ok()) << committed.message();

  EXPECT_EQ(job(*store, "a").state, State::submitting);
  EXPECT_EQ(job(*store, "b").state, State::cancelled);
  EXPECT_EQ(job(*store, "c").state, State::submitting);
  EXPECT_EQ(store->history(b.id)->size(), 2u);  // queued, cancelled
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->counts.at(State::submitting), 2);
  EXPECT_EQ(stats->counts.at(State::cancelled), 1);
}

// On SQLite a grouped write has no savepoint: one that fails after it changed rows (here an
// enqueue that inserted a row, then met a damaged one) cannot be undone alone, so the whole
// group is rolled back and end_group says why. Nothing of it is recorded, the counts agree,
// and the next group is sound.
TEST_F(SqliteStoreTest, AWriteThatFailsHalfWayRollsItsGroupBack) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("damaged"), make_spec("other")});
  Job other = job(*store, "other");
  raw_exec(path_, "UPDATE jobs SET spec = '[1]' WHERE key = 'damaged'");

  ASSERT_TRUE(store->begin_group().ok());
  move(*store, other, State::submitting, kT0 + Millis(1));
  auto out = store->enqueue({make_spec("new"), make_spec("damaged")}, "personactl", "r", kT0,
                            refs());
  ASSERT_FALSE(out.ok());
  auto ended = store->end_group();
  ASSERT_FALSE(ended.ok());
  EXPECT_THAT(ended.message(), ::testing::HasSubstr("enqueue failed after changing rows"));
  EXPECT_THAT(ended.message(), ::testing::HasSubstr("rolled back"));

  EXPECT_EQ(job(*store, "other").state, State::queued);
  EXPECT_EQ(store->history(other.id)->size(), 1u);
  EXPECT_FALSE(store->find("new")->has_value());
  EXPECT_EQ(query("SELECT count(*) FROM jobs"), "2");
  EXPECT_EQ(store->stats()->counts.at(State::queued), 2);
  EXPECT_EQ(store->stats()->counts.at(State::submitting), 0);

  Job again = job(*store, "other");
  ASSERT_TRUE(store->begin_group().ok());
  move(*store, again, State::submitting, kT0 + Millis(2));
  auto next = store->end_group();
  ASSERT_TRUE(next.ok()) << next.message();
  EXPECT_EQ(job(*store, "other").state, State::submitting);
}

TEST_P(StoreTest, SqlInjectionLookingKeyIsStoredVerbatim) {
  auto store = open();
  ASSERT_TRUE(store);
  const std::string key = "x'); DROP TABLE jobs;--";
  PersonaSpec spec = make_spec(key);
  spec.creator_name = "Robert'); DELETE FROM transitions; --";
  auto out = enqueue(*store, {spec});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].inserted);
  Job j = job(*store, key);
  EXPECT_EQ(j.key, key);
  EXPECT_EQ(j.spec, spec);
  auto history = store->history(j.id);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 1u);
  EXPECT_EQ(query("SELECT key FROM jobs"), key);
}

TEST_P(StoreTest, SpecRoundTripIsLossless) {
  auto store = open();
  ASSERT_TRUE(store);
  PersonaSpec full = make_spec("full");
  full.creator_name = "Zoë \"Quote\" O'Brien\n\tline two \\ ✓ 名前";
  full.keywords = "";
  full.consent_video = "/var/lib/personad/media/consent.mov";
  full.labels = {"z", "a", "", "m", "z"};  // order and duplicates kept
  full.webhook_url = "https://hooks.example.com/cb?x=1&y=2";
  full.gdown_url = "https://drive.google.com/file/d/abc";
  PersonaSpec bare;
  bare.key = "bare";  // every other field empty, no labels
  enqueue(*store, {full, bare});
  EXPECT_EQ(job(*store, "full").spec, full);
  EXPECT_EQ(job(*store, "bare").spec, bare);
}

// ---- Apply and update ------------------------------------------------------------------------

TEST_P(StoreTest, ApplyWritesTheRowAndTheTransitionTogether) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job j = job(*store, "acme-1");
  j.attempts = 1;
  j.submitting_since = kT0 + Millis(1'000);
  move(*store, j, State::submitting, kT0 + Millis(1'000), "submit");

  j.remote_id = "7f1c0b5e-0000-4000-8000-000000000001";
  j.remote_status = "pending";
  j.submitted_at = kT0 + Millis(2'000);
  j.next_poll_at = kT0 + Millis(302'000);
  Transition created{.job_id = 0, .at = kT0 + Millis(2'000), .from = State::submitting,
                     .to = State::pending, .remote_status = "pending", .reason = "created"};
  j.state = State::pending;
  auto r = store->apply(j, created);  // job_id 0: taken from the job
  ASSERT_TRUE(r.ok()) << r.message();

  Job stored = job(*store, "acme-1");
  expect_same_job(stored, j);

  auto history = store->history(j.id);
  ASSERT_TRUE(history.ok()) << history.message();
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].to, State::queued);
  EXPECT_EQ((*history)[1].from, State::queued);
  EXPECT_EQ((*history)[1].to, State::submitting);
  EXPECT_EQ((*history)[1].reason, "submit");
  EXPECT_EQ((*history)[2].from, State::submitting);
  EXPECT_EQ((*history)[2].to, State::pending);
  EXPECT_EQ((*history)[2].remote_status, "pending");
  EXPECT_EQ((*history)[2].reason, "created");
  EXPECT_EQ((*history)[2].at, kT0 + Millis(2'000));
  EXPECT_EQ((*history)[2].job_id, j.id);
}

TEST_P(StoreTest, ApplyToAnUnknownJobFailsAndWritesNothing) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job ghost = job(*store, "acme-1");
  ghost.id = 999;
  ghost.state = State::submitting;
  Transition t{.job_id = 999, .at = kT0, .from = State::queued, .to = State::submitting,
               .remote_status = {}, .reason = "submit"};
  auto r = store->apply(ghost, t);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("store: apply to job 'acme-1'"), std::string::npos) << r.message();
  EXPECT_EQ(query("SELECT count(*) FROM transitions"), "1");

  // The right id with another job's key is refused too: the Job is not the row it claims.
  Job renamed = job(*store, "acme-1");
  renamed.key = "acme-2";
  renamed.state = State::submitting;
  t.job_id = renamed.id;
  EXPECT_FALSE(store->apply(renamed, t).ok());
  EXPECT_EQ(job(*store, "acme-1").state, State::queued);
}

TEST_P(StoreTest, ApplyRefusesAHistoryThatContradictsTheRow) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1"), make_spec("acme-2")});
  Job j = job(*store, "acme-1");
  j.state = State::submitting;
  Transition wrong_state{.job_id = j.id, .at = kT0, .from = State::queued, .to = State::pending,
                         .remote_status = {}, .reason = "x"};
  EXPECT_FALSE(store->apply(j, wrong_state).ok());
  Transition wrong_job{.job_id = job(*store, "acme-2").id, .at = kT0, .from = State::queued,
                       .to = State::submitting, .remote_status = {}, .reason = "x"};
  EXPECT_FALSE(store->apply(j, wrong_job).ok());
  EXPECT_EQ(job(*store, "acme-1").state, State::queued);
  EXPECT_EQ(query("SELECT count(*) FROM transitions"), "2");
}

TEST_P(StoreTest, ApplyThatBreaksAConstraintChangesNothing) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1"), make_spec("acme-2")});
  Job a = job(*store, "acme-1");
  a.remote_id = "same-remote";
  ASSERT_TRUE(store->update(a).ok());

  Job b = job(*store, "acme-2");
  move(*store, b, State::submitting, kT0);
  b.remote_id = "same-remote";  // one remote persona cannot belong to two jobs
  b.state = State::pending;
  Transition t{.job_id = b.id, .at = kT0, .from = State::submitting, .to = State::pending,
               .remote_status = "pending", .reason = "adopted"};
  auto r = store->apply(b, t);
  ASSERT_FALSE(r.ok());
  // SQLite says "UNIQUE constraint failed", PostgreSQL "violates unique constraint".
  std::string message = r.message();
  for (auto& c : message) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_NE(message.find("unique"), std::string::npos) << r.message();
  Job after = job(*store, "acme-2");
  EXPECT_EQ(after.state, State::submitting);
  EXPECT_FALSE(after.remote_id);
  auto history = store->history(b.id);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 2u);
}

TEST_P(StoreTest, UpdateWritesTheRowOnly) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job j = job(*store, "acme-1");
  j.polls = 3;
  j.errors = 2;
  j.next_poll_at = kT0 + Millis(3'600'000);
  j.remote_status = "reviewing";
  j.updated_at = kT0 + Millis(60'000);
  auto r = store->update(j);
  ASSERT_TRUE(r.ok()) << r.message();
  expect_same_job(job(*store, "acme-1"), j);
  auto history = store->history(j.id);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 1u);

  Job ghost = j;
  ghost.id = 12345;
  auto missing = store->update(ghost);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("store: update job 'acme-1'"), std::string::npos)
      << missing.message();
}

TEST_P(StoreTest, EveryJobFieldRoundTrips) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("acme-1")});
  Job j = job(*store, "acme-1");
  move(*store, j, State::failed, kT0);
  j.remote_id = "remote-1";
  j.remote_status = "rejected";
  j.failed_reason = "consent video does not match";
  j.submitted_at = kT0 + Millis(1);
  j.updated_at = kT0 + Millis(2);
  j.next_poll_at = kT0 + Millis(3);
  j.polls = 40;
  j.attempts = 2;
  j.errors = 5;
  j.submitting_since = kT0 + Millis(4);
  j.needs_operator = true;
  j.send_unknown = true;
  j.last_sent_at = kT0 + Millis(5);
  j.expires_at = kT0 + Millis(6);
  j.unknown_since = kT0 + Millis(7);
  j.operator_reason = "reconcile ambiguous";
  j.client_ref = "ref-after-resubmit";
  ASSERT_TRUE(store->update(j).ok());
  expect_same_job(job(*store, "acme-1"), j);

  // Back to empty: set optionals read back as empty, not as "" or the epoch.
  j.remote_id.reset();
  j.remote_status.reset();
  j.failed_reason.reset();
  j.submitted_at.reset();
  j.next_poll_at.reset();
  j.submitting_since.reset();
  j.last_sent_at.reset();
  j.expires_at.reset();
  j.needs_operator = false;
  j.send_unknown = false;
  j.unknown_since.reset();
  j.operator_reason.reset();
  ASSERT_TRUE(store->update(j).ok());
  expect_same_job(job(*store, "acme-1"), j);

  // An empty string is a value, distinct from absent; times before 1970 survive too.
  j.remote_status = "";
  j.submitted_at = from_unix_ms(-1);
  ASSERT_TRUE(store->update(j).ok());
  Job back = job(*store, "acme-1");
  expect_same_job(back, j);
  auto by_id = store->get(j.id);
  ASSERT_TRUE(by_id.ok() && by_id->has_value());
  expect_same_job(**by_id, j);
}

// ---- Reads -----------------------------------------------------------------------------------

TEST_P(StoreTest, FindGetFindByRemoteIdAndListWithAStateFilter) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("c"), make_spec("a"), make_spec("b")});
  Job a = job(*store, "a");
  move(*store, a, State::submitting, kT0 + Millis(1));

  auto missing = store->find("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto no_id = store->get(424242);
  ASSERT_TRUE(no_id.ok());
  EXPECT_FALSE(no_id->has_value());
  auto by_id = store->get(a.id);
  ASSERT_TRUE(by_id.ok() && by_id->has_value());
  EXPECT_EQ((*by_id)->key, "a");

  auto all = store->list();
  ASSERT_TRUE(all.ok()) << all.message();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].key, "c");  // by id: the order they were enqueued
  EXPECT_EQ((*all)[1].key, "a");
  EXPECT_EQ((*all)[2].key, "b");
  auto queued = store->list(State::queued);
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 2u);
  EXPECT_EQ((*queued)[0].key, "c");
  EXPECT_EQ((*queued)[1].key, "b");
  auto submitting = store->list(State::submitting);
  ASSERT_TRUE(submitting.ok());
  ASSERT_EQ(submitting->size(), 1u);
  EXPECT_EQ(submitting->front().key, "a");
  auto done = store->list(State::done);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->empty());
  Job b = job(*store, "b");
  b.remote_id = "7f1c0b5e-0000-4000-8000-00000000000b";
  ASSERT_TRUE(store->update(b).ok());
  auto by_remote = store->find_by_remote_id("7f1c0b5e-0000-4000-8000-00000000000b");
  ASSERT_TRUE(by_remote.ok() && by_remote->has_value()) << by_remote.message();
  EXPECT_EQ((*by_remote)->key, "b");
  auto no_remote = store->find_by_remote_id("unknown-remote");
  ASSERT_TRUE(no_remote.ok());
  EXPECT_FALSE(no_remote->has_value());
  auto empty_remote = store->find_by_remote_id("");
  ASSERT_TRUE(empty_remote.ok());
  EXPECT_FALSE(empty_remote->has_value());

  auto none = store->history(424242);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreTest, LoadActiveHoldsExactlyTheNonFinalStates) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<PersonaSpec> specs;
  for (State s : all_states()) specs.push_back(make_spec(std::string(to_string(s))));
  enqueue(*store, specs);
  for (State s : all_states()) {
    Job j = job(*store, to_string(s));
    if (s != State::queued) move(*store, j, s, kT0 + Millis(1));
  }
  auto active = store->load_active();
  ASSERT_TRUE(active.ok()) << active.message();
  std::vector<std::string> keys;
  for (const auto& j : *active) keys.push_back(j.key);
  std::vector<std::string> expected;
  for (State s : all_states())
    if (!is_final(s)) expected.emplace_back(to_string(s));
  EXPECT_EQ(keys, expected);
}

TEST_P(StoreTest, StatsCountEveryStateAndFindTheNextDueJob) {
  auto store = open();
  ASSERT_TRUE(store);
  auto empty = store->stats();
  ASSERT_TRUE(empty.ok()) << empty.message();
  EXPECT_EQ(empty->counts.size(), all_states().size());
  for (State s : all_states()) EXPECT_EQ(empty->counts.at(s), 0) << to_string(s);
  EXPECT_FALSE(empty->next_due);
  EXPECT_FALSE(empty->next_due_key);

  enqueue(*store, {make_spec("q"), make_spec("p1"), make_spec("p2"), make_spec("d")});
  Job q = job(*store, "q");
  q.next_poll_at = kT0 + Millis(50'000);
  ASSERT_TRUE(store->update(q).ok());
  Job p1 = job(*store, "p1");
  p1.polls = 4;
  p1.attempts = 1;
  p1.next_poll_at = kT0 + Millis(20'000);
  move(*store, p1, State::pending, kT0);
  Job p2 = job(*store, "p2");
  p2.polls = 2;
  p2.attempts = 2;
  p2.next_poll_at = kT0 + Millis(30'000);
  move(*store, p2, State::pending, kT0);
  Job d = job(*store, "d");  // final jobs do not count for next due, even with a stale time
  d.polls = 10;
  d.attempts = 1;
  d.next_poll_at = kT0 + Millis(1);
  move(*store, d, State::done, kT0);

  auto stats = store->stats();
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->counts.size(), all_states().size());
  EXPECT_EQ(stats->counts.at(State::queued), 1);
  EXPECT_EQ(stats->counts.at(State::pending), 2);
  EXPECT_EQ(stats->counts.at(State::done), 1);
  EXPECT_EQ(stats->counts.at(State::submitting), 0);
  EXPECT_EQ(stats->counts.at(State::failed), 0);
  EXPECT_EQ(stats->counts.at(State::expired), 0);
  EXPECT_EQ(stats->counts.at(State::cancelled), 0);
  EXPECT_EQ(stats->polls, 16);
  EXPECT_EQ(stats->attempts, 4);
  EXPECT_EQ(stats->next_due, kT0 + Millis(20'000));
  EXPECT_EQ(stats->next_due_key, "p1");
  EXPECT_EQ(stats->needs_operator, 0);
}

TEST_P(StoreTest, StatsCountJobsWaitingForTheOperator) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("held"), make_spec("free"), make_spec("old")});
  Job held = job(*store, "held");
  move(*store, held, State::submitting, kT0);
  held.needs_operator = true;
  held.operator_reason = "reconcile ambiguous";
  ASSERT_TRUE(store->update(held).ok());
  Job old = job(*store, "old");  // flagged once, cancelled since: no longer waiting
  move(*store, old, State::submitting, kT0);
  old.needs_operator = true;
  ASSERT_TRUE(store->update(old).ok());
  move(*store, old, State::cancelled, kT0);
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok()) << stats.message();
  EXPECT_EQ(stats->needs_operator, 1);
}

// The counts per state (job_counts) are kept by every kind of write of a job: intake, a
// transition, an update, a recorded poll, an archive, in a group or alone, and a group rolled
// back leaves them as they were. After each step they must equal a count of the rows.
TEST_P(StoreTest, CountsStayEqualToTheRowsThroughEveryKindOfWrite) {
  auto store = open();
  ASSERT_TRUE(store);
  auto expect_counts_match_rows = [&](const std::string& after) {
    auto rows = store->list();
    ASSERT_TRUE(rows.ok()) << rows.message();
    StoreStats want;
    for (State s : all_states()) want.counts[s] = 0;
    for (const Job& j : *rows) {
      ++want.counts[j.state];
      want.polls += j.polls;
      want.attempts += j.attempts;
      if (j.needs_operator && !is_final(j.state)) ++want.needs_operator;
    }
    auto got = store->stats();
    ASSERT_TRUE(got.ok()) << got.message();
    EXPECT_EQ(got->counts, want.counts) << "after " << after;
    EXPECT_EQ(got->polls, want.polls) << "after " << after;
    EXPECT_EQ(got->attempts, want.attempts) << "after " << after;
    EXPECT_EQ(got->needs_operator, want.needs_operator) << "after " << after;
  };
  std::vector<PersonaSpec> specs;
  for (int i = 0; i < 24; ++i) specs.push_back(make_spec("c-" + std::to_string(i)));
  enqueue(*store, specs);
  expect_counts_match_rows("intake");

  std::mt19937 random(12);
  TimePoint at = kT0;
  for (int step = 0; step < 400 && !HasFatalFailure(); ++step) {
    at += Millis(1000);
    auto found = store->find("c-" + std::to_string(random() % specs.size()));
    ASSERT_TRUE(found.ok()) << found.message();
    if (!found->has_value()) continue;  // archived (its key is never taken again)
    Job j = **found;
    const bool in_group = random() % 3 == 0;
    if (in_group) {
      ASSERT_TRUE(store->begin_group().ok());
    }
    std::string what;
    switch (random() % 5) {
      case 0: {  // a transition along the table, if the job has one
        std::vector<State> next;
        for (State s : all_states())
          if (transition_allowed(j.state, s)) next.push_back(s);
        if (next.empty()) break;
        const State to = next[random() % next.size()];
        if (to == State::submitting) ++j.attempts;
        what = "a transition to " + std::string(to_string(to));
        move(*store, j, to, at);
        break;
      }
      case 1:  // a poll
        ++j.polls;
        j.updated_at = at;
        what = "a recorded poll";
        ASSERT_TRUE(store->record_poll(j).ok());
        break;
      case 2:  // the operator's flag and more attempts, in one update
        j.needs_operator = !j.needs_operator;
        j.attempts += 2;
        j.updated_at = at;
        what = "an update";
        ASSERT_TRUE(store->update(j).ok());
        break;
      case 3:  // a write that finds the row changed: nothing is written, nothing counted
        j.state = j.state == State::queued ? State::pending : State::queued;
        ++j.polls;
        what = "a refused poll";
        EXPECT_FALSE(store->record_poll(j).ok());
        break;
      case 4:  // the final jobs leave for an archive
        if (!is_final(j.state)) break;
        what = "an archive";
        ASSERT_EQ(*store->drop_archived({j.id}, "archive-1.jsonl", at), 1u);
        break;
    }
    if (in_group && random() % 4 == 0) {
      store->abort_group();
      what += ", rolled back with its group";
    } else if (in_group) {
      ASSERT_TRUE(store->end_group().ok());
    }
    if (!what.empty()) expect_counts_match_rows(what);
  }
}

// ---- Selections ------------------------------------------------------------------------------

constexpr Millis kHour{3600'000};

// Moves a pending job to a new remote status, as a poll that sees a change does.
void set_remote_status(Store& store, Job& j, const std::string& status, TimePoint at) {
  ASSERT_EQ(j.state, State::pending);
  j.remote_status = status;
  j.updated_at = at;
  Transition t{.job_id = j.id, .at = at, .from = State::pending, .to = State::pending,
               .remote_status = status, .reason = "status changed"};
  auto r = store.apply(j, t);
  ASSERT_TRUE(r.ok()) << r.message();
}

std::vector<std::string> keys_of(const std::vector<Job>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(j.key);
  return out;
}

// A campaign spread over everything a selection looks at: keys of three clients, two batch
// files and personactl, labels (one, two, none), six creation times (several jobs in the same
// millisecond), every state, remote statuses, jobs waiting for the operator, and last changes
// from long ago to now.
class SelectionStoreTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    store_ = open();
    ASSERT_TRUE(store_);
    std::mt19937 random(42);
    const char* const sources[] = {"batches.d/acme.toml", "batches.d/zeta.toml", "personactl"};
    const char* const clients[] = {"acme", "zeta", "omni"};
    for (int round = 0; round < 6; ++round) {
      std::vector<PersonaSpec> specs;
      for (int i = 0; i < 25; ++i) {
        const int n = round * 25 + i;
        PersonaSpec spec = make_spec(std::string(clients[random() % 3]) + "-" +
                                     std::to_string(random() % 1000) + "-" + std::to_string(n));
        switch (random() % 4) {
          case 0: spec.labels = {}; break;
          case 1: spec.labels = {"spring"}; break;
          case 2: spec.labels = {"spring", "vip"}; break;
          default: spec.labels = {"autumn", "autumn"};  // a repeated label counts once
        }
        specs.push_back(std::move(spec));
      }
      auto out = store_->enqueue(specs, sources[round % 3], "seed", kT0 + kHour * round, refs());
      ASSERT_TRUE(out.ok()) << out.message();
    }
    auto all = store_->list();
    ASSERT_TRUE(all.ok());
    const char* const statuses[] = {"processing", "reviewing", "done", "rejected"};
    for (Job j : *all) {
      const TimePoint at = kT0 + kHour * static_cast<int>(random() % 200);
      switch (random() % 8) {
        case 0: break;  // queued
        case 1: {
          move(*store_, j, State::submitting, at);
          if (random() % 2 == 0) {
            j.needs_operator = true;
            j.operator_reason = "ambiguous";
            ASSERT_TRUE(store_->update(j).ok());
          }
          break;
        }
        case 2:
        case 3: {
          move(*store_, j, State::pending, at);
          set_remote_status(*store_, j, statuses[random() % 2], at + kHour);
          j.polls += 3;  // a poll that changed nothing: not a change of status
          j.updated_at = at + kHour * 50;
          ASSERT_TRUE(store_->update(j).ok());
          break;
        }
        default: {
          move(*store_, j, State::pending, at);
          set_remote_status(*store_, j, statuses[2 + random() % 2], at);
          const State end = all_states()[3 + random() % 4];
          move(*store_, j, end, at + kHour);
        }
      }
    }
  }

  // Every job, as list() reads them.
  std::vector<Job> everything() {
    auto all = store_->list();
    EXPECT_TRUE(all.ok()) << all.message();
    return all.ok() ? *all : std::vector<Job>{};
  }

  // When a job's state or remote status last changed: its latest history row.
  TimePoint last_change(const Job& j) {
    auto h = store_->history(j.id);
    EXPECT_TRUE(h.ok() && !h->empty());
    return h.ok() && !h->empty() ? h->back().at : TimePoint{};
  }

  // What a selection means, decided job by job in C++: the reference for the SQL.
  std::vector<std::string> expected(const Selection& s, TimePoint stuck_before) {
    auto any = [](const auto& list, const auto& v) {
      return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
    };
    std::vector<Job> matching;
    for (const Job& j : everything()) {
      bool label = s.labels.empty();
      for (const auto& l : j.spec.labels) label = label || any(s.labels, l);
      if (!any(s.states, j.state) || !label || !any(s.sources, j.source)) continue;
      if (s.key_glob && !glob_match(*s.key_glob, j.key)) continue;
      if (!s.remote_statuses.empty() &&
          (!j.remote_status || !any(s.remote_statuses, *j.remote_status)))
        continue;
      if (s.since && j.created_at < *s.since) continue;
      if (s.until && j.created_at >= *s.until) continue;
      if (s.needs_operator && (!j.needs_operator || is_final(j.state))) continue;
      if (s.stuck && (is_final(j.state) || last_change(j) > stuck_before)) continue;
      matching.push_back(j);
    }
    std::sort(matching.begin(), matching.end(), [](const Job& a, const Job& b) {
      return std::pair(a.created_at, a.key) < std::pair(b.created_at, b.key);
    });
    std::vector<std::string> keys = keys_of(matching);
    if (s.after) {
      auto from = std::find(keys.begin(), keys.end(), *s.after);
      EXPECT_NE(from, keys.end()) << "reference needs after= inside the selection";
      keys.erase(keys.begin(), from == keys.end() ? from : from + 1);
    }
    return keys;
  }

  // A random selection drawn from values the seed uses (and a few it does not).
  Selection random_selection(std::mt19937& random) {
    Selection s;
    auto maybe = [&](int in) { return static_cast<int>(random() % 10) < in; };
    if (maybe(4))
      for (int k = 1 + random() % 3; k > 0; --k) {
        const State st = all_states()[random() % all_states().size()];
        if (std::find(s.states.begin(), s.states.end(), st) == s.states.end()) s.states.push_back(st);
      }
    const char* const labels[] = {"spring", "vip", "autumn", "nobody"};
    if (maybe(4))
      for (int k = 1 + random() % 2; k > 0; --k) {
        std::string l = labels[random() % 4];
        if (std::find(s.labels.begin(), s.labels.end(), l) == s.labels.end()) s.labels.push_back(l);
      }
    const char* const sources[] = {"batches.d/acme.toml", "batches.d/zeta.toml", "personactl"};
    if (maybe(2)) s.sources = {sources[random() % 3]};
    const char* const globs[] = {"acme-*", "*-1?", "[az]*", "[!a]*-[0-9]", "zeta-?*", "*"};
    if (maybe(3)) s.key_glob = globs[random() % 6];
    const char* const statuses[] = {"processing", "reviewing", "done", "rejected"};
    if (maybe(2)) s.remote_statuses = {statuses[random() % 4]};
    if (maybe(2)) s.since = kT0 + kHour * static_cast<int>(random() % 6);
    if (maybe(2)) s.until = kT0 + kHour * static_cast<int>(random() % 7);
    s.needs_operator = maybe(1);
    s.stuck = maybe(2);
    return s;
  }

  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, SelectionStoreTest, testing::kAllStoreBackends,
                         testing::store_backend_name);

// Every filter of the contract, alone and combined (AND; any of a list), evaluated by the
// database, selects exactly the jobs the contract's words select, in the order created_at then
// key; and the pages of any size put together are that selection, each with the count of what
// follows it.
TEST_P(SelectionStoreTest, FiltersSelectExactlyWhatTheContractSaysAndPagesAddUp) {
  std::mt19937 random(7);
  const TimePoint stuck_before = kT0 + kHour * 100;
  SelectOptions options;
  options.stuck_before = stuck_before;
  options.count_more = true;
  int non_empty = 0;
  for (int round = 0; round < 150; ++round) {
    Selection s = random_selection(random);
    const auto want = expected(s, stuck_before);
    non_empty += want.empty() ? 0 : 1;
    auto all = store_->select(s, options);
    ASSERT_TRUE(all.ok()) << all.message();
    ASSERT_EQ(keys_of(all->jobs), want) << "round " << round;
    EXPECT_FALSE(all->has_more);  // no limit: everything
    EXPECT_EQ(all->more, 0);

    // The same selection page by page, each starting after the last key of the one before.
    Selection page = s;
    page.limit = 1 + random() % 12;
    std::vector<std::string> paged;
    for (;;) {
      auto p = store_->select(page, options);
      ASSERT_TRUE(p.ok()) << p.message();
      ASSERT_LE(p->jobs.size(), static_cast<std::size_t>(*page.limit));
      for (const auto& j : p->jobs) paged.push_back(j.key);
      EXPECT_EQ(p->more, static_cast<std::int64_t>(want.size() - paged.size()));
      EXPECT_EQ(p->has_more, paged.size() < want.size());
      if (!p->has_more) break;
      page.after = p->jobs.back().key;
    }
    EXPECT_EQ(paged, want) << "round " << round << " in pages of " << *page.limit;
  }
  EXPECT_GT(non_empty, 60) << "the random selections should mostly select something";

  // /metrics' count of the stuck jobs is the size of the stuck selection, at any bound.
  Selection stuck;
  stuck.stuck = true;
  int some = 0;
  for (int hours = -1; hours <= 221; hours += 20) {
    const TimePoint bound = kT0 + kHour * hours;
    auto count = store_->count_stuck(bound);
    ASSERT_TRUE(count.ok()) << count.message();
    const auto want = expected(stuck, bound);
    EXPECT_EQ(*count, static_cast<std::int64_t>(want.size())) << "stuck before kT0 + " << hours << " h";
    some += want.empty() ? 0 : 1;
  }
  EXPECT_GT(some, 2) << "the bounds should split the seed's jobs";
}

// Paging while the daemon works: between two pages jobs move on (the state filter may gain or
// lose them), are polled, cancelled, and new ones arrive. The order's columns (created_at, key)
// never change, so no job is ever shown twice, and every job the selection held all along is
// shown exactly once.
TEST_P(SelectionStoreTest, AfterPagingHasNoGapsOrRepeatsWhileJobsChange) {
  std::mt19937 random(11);
  const std::vector<Selection> selections = [] {
    Selection by_label;
    by_label.labels = {"spring"};
    Selection by_state;
    by_state.states = {State::queued, State::submitting, State::pending};
    Selection everything;
    Selection combined;
    combined.states = {State::pending, State::done};
    combined.labels = {"vip", "autumn"};
    return std::vector<Selection>{by_label, by_state, everything, combined};
  }();
  int next_key = 0;
  for (const Selection& base : selections) {
    const auto before = expected(base, kT0);
    std::set<std::string> changed;  // jobs whose state moved while paging
    Selection page = base;
    page.limit = 7;
    std::vector<std::string> shown;
    for (;;) {
      auto p = store_->select(page, SelectOptions{});
      ASSERT_TRUE(p.ok()) << p.message();
      for (const auto& j : p->jobs) shown.push_back(j.key);
      if (!p->has_more) break;
      page.after = p->jobs.back().key;
      // Meanwhile: a few jobs move on, one is polled, and a new one arrives.
      auto all = everything();
      for (int k = 0; k < 3; ++k) {
        Job j = job(*store_, all[random() % all.size()].key);
        std::vector<State> next;
        for (State st : all_states())
          if (transition_allowed(j.state, st) && st != j.state) next.push_back(st);
        if (next.empty()) continue;
        move(*store_, j, next[random() % next.size()], kT0 + kHour * 300);
        changed.insert(j.key);
      }
      Job polled = job(*store_, all[random() % all.size()].key);
      polled.polls += 1;
      ASSERT_TRUE(store_->update(polled).ok());
      PersonaSpec fresh = make_spec("new-" + std::to_string(next_key++));
      fresh.labels = {"spring", "vip"};
      ASSERT_TRUE(store_->enqueue({fresh}, "personactl", "later", kT0 + kHour * 300, refs()).ok());
    }
    std::set<std::string> unique(shown.begin(), shown.end());
    EXPECT_EQ(unique.size(), shown.size()) << "a job was shown twice";
    for (const auto& key : before) {
      if (changed.count(key)) continue;
      EXPECT_EQ(std::count(shown.begin(), shown.end(), key), 1) << key << " was skipped";
    }
    // And the order held throughout: what was shown is sorted by (created_at, key).
    std::vector<std::pair<TimePoint, std::string>> order;
    for (const auto& key : shown) order.emplace_back(job(*store_, key).created_at, key);
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  }
}

TEST_P(SelectionStoreTest, AfterNamesAnyJobAndAnUnknownKeyIsAnError) {
  Selection failed;
  failed.states = {State::failed};
  const auto all_failed = expected(failed, kT0);
  ASSERT_GE(all_failed.size(), 3u);
  // After a job the filter does not hold: its place in the order is what counts.
  std::vector<std::string> everyone = expected(Selection{}, kT0);
  Selection page = failed;
  for (const auto& key : everyone) {
    if (std::find(all_failed.begin(), all_failed.end(), key) != all_failed.end()) continue;
    page.after = key;
    break;
  }
  ASSERT_TRUE(page.after);
  auto p = store_->select(page, SelectOptions{});
  ASSERT_TRUE(p.ok()) << p.message();
  Selection everything_after;
  everything_after.after = page.after;
  auto tail = expected(everything_after, kT0);
  std::vector<std::string> want;
  for (const auto& key : tail)
    if (std::find(all_failed.begin(), all_failed.end(), key) != all_failed.end()) want.push_back(key);
  EXPECT_EQ(keys_of(p->jobs), want);

  page.after = "no-such-key";
  auto unknown = store_->select(page, SelectOptions{});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.kind(), ErrorKind::invalid);
  EXPECT_THAT(unknown.message(), ::testing::HasSubstr("after: unknown key 'no-such-key'"));
}

// A poll that changed nothing but the poll's own columns: those are written, every other
// column is left as it was (even if the caller's copy differs), and the kept counts follow.
TEST_P(StoreTest, RecordPollWritesThePollsColumnsOnly) {
  auto store = open();
  ASSERT_TRUE(store);
  const Job before = remote_job(*store, "acme-1", "reviewing");
  const Job& j = before;

  Job polled = before;
  polled.polls = before.polls + 1;
  polled.errors = 2;
  polled.next_poll_at = kT0 + Millis(3'600'000);
  polled.missing_since = kT0 + Millis(50'000);
  polled.missing_count = 3;
  polled.updated_at = kT0 + Millis(60'000);
  polled.attempts = 99;             // not a poll's column: never written
  polled.failed_reason = "ignored";  // neither
  auto r = store->record_poll(polled);
  ASSERT_TRUE(r.ok()) << r.message();

  Job expected = polled;
  expected.attempts = before.attempts;
  expected.failed_reason = before.failed_reason;
  expected.status_since = before.status_since;  // nothing it counts from changed
  const Job after = job(*store, "acme-1");
  expect_same_job(after, expected);
  EXPECT_EQ(after.missing_since, polled.missing_since);
  EXPECT_EQ(after.missing_count, 3);
  EXPECT_EQ(after.status_since, before.status_since);
  auto history = store->history(j.id);
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->size(), 4u);  // queued, submitting, pending, reviewing
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(std::to_string(stats->polls), query("SELECT sum(polls) FROM jobs"));
  EXPECT_EQ(stats->polls, polled.polls);
}

// update names only the columns that differ (so SQLite leaves every other index entry,
// CHECK and trigger alone), yet the row ends up exactly the job: status_since moves to the
// write's updated_at only when the state or the remote status changed, the kept counts follow,
// and an update that changes nothing succeeds and leaves the row as it was.
TEST_P(StoreTest, UpdateWritesWhatDiffersAndMovesStatusSinceOnlyOnAStatusChange) {
  auto store = open();
  ASSERT_TRUE(store);
  const Job before = remote_job(*store, "acme-1", "reviewing");
  ASSERT_TRUE(store->update(before).ok());
  expect_same_job(job(*store, "acme-1"), before);

  Job changed = before;
  changed.attempts = before.attempts + 2;
  changed.needs_operator = true;
  changed.operator_reason = "check the remote persona";
  changed.next_poll_at.reset();
  changed.updated_at = kT0 + Millis(70'000);
  auto r = store->update(changed);
  ASSERT_TRUE(r.ok()) << r.message();
  Job expected = changed;
  expected.status_since = before.status_since;  // neither state nor remote status changed
  expect_same_job(job(*store, "acme-1"), expected);
  EXPECT_EQ(job(*store, "acme-1").status_since, before.status_since);
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->attempts, changed.attempts);
  EXPECT_EQ(stats->needs_operator, 1);
  EXPECT_EQ(std::to_string(stats->attempts), query("SELECT sum(attempts) FROM jobs"));

  Job moved = changed;
  moved.remote_status = "processing";
  moved.needs_operator = false;
  moved.operator_reason.reset();
  moved.updated_at = kT0 + Millis(80'000);
  r = store->update(moved);
  ASSERT_TRUE(r.ok()) << r.message();
  expected = moved;
  expected.status_since = moved.updated_at;
  expect_same_job(job(*store, "acme-1"), expected);
  EXPECT_EQ(job(*store, "acme-1").status_since, std::optional<TimePoint>(moved.updated_at));
  stats = store->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->needs_operator, 0);

  Job stale = moved;  // a copy whose state the row no longer has
  stale.state = State::submitting;
  EXPECT_EQ(store->update(stale).kind(), ErrorKind::conflict);
  expect_same_job(job(*store, "acme-1"), expected);
}

// record_poll is guarded like every write: a job that moved on, or whose remote status changed
// since it was read, is a conflict and nothing is written; an unknown id is not_found.
TEST_P(StoreTest, RecordPollOfAJobThatChangedMeanwhileIsAConflict) {
  auto store = open();
  ASSERT_TRUE(store);
  Job stale = remote_job(*store, "acme-1", "reviewing");
  Job current = stale;
  set_remote_status(*store, current, "processing", kT0 + Millis(4));

  stale.polls += 1;
  stale.next_poll_at = kT0 + Millis(3'600'000);
  auto r = store->record_poll(stale);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::conflict);
  EXPECT_NE(r.message().find("remote status is 'processing' now, not 'reviewing'"),
            std::string::npos)
      << r.message();
  EXPECT_EQ(job(*store, "acme-1").polls, current.polls);

  current = job(*store, "acme-1");
  move(*store, current, State::cancelled, kT0 + Millis(5), "cancelled by operator");
  Job moved = current;
  moved.state = State::pending;
  moved.polls += 1;
  r = store->record_poll(moved);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::conflict);
  EXPECT_NE(r.message().find("the job is cancelled now, not pending"), std::string::npos)
      << r.message();

  Job ghost = stale;
  ghost.id = 12345;
  r = store->record_poll(ghost);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.kind(), ErrorKind::not_found);
  EXPECT_NE(r.message().find("store: record a poll of job 'acme-1'"), std::string::npos)
      << r.message();
}

// A campaign's estimate reads the active jobs as groups alike (state, remote status, entry and
// submission times to the bucket), counted by the database: the same groups as grouping every
// active row by hand (the base class's reading), final jobs left out.
TEST_P(StoreTest, ActiveCohortsGroupTheActiveJobsAsTheirRowsSay) {
  auto store = open();
  ASSERT_TRUE(store);
  std::vector<PersonaSpec> specs;
  for (int i = 0; i < 12; ++i) specs.push_back(make_spec("job-" + std::to_string(i)));
  enqueue(*store, specs);
  const Millis minute{60'000};
  for (int i = 0; i < 12; ++i) {
    Job j = job(*store, "job-" + std::to_string(i));
    if (i < 2) continue;  // two stay queued
    j.remote_id = "remote-" + std::to_string(i);
    j.submitted_at = kT0 + Millis(1'000 * i);  // all in the first minute
    move(*store, j, State::pending, kT0 + Millis(1'000 * i));
    if (i >= 6) set_remote_status(*store, j, i < 9 ? "reviewing" : "processing",
                                  kT0 + minute * (i % 2) + Millis(5'000));
    if (i == 11) move(*store, j, State::done, kT0 + minute * 3);
  }
  auto groups = store->active_cohorts(minute);
  ASSERT_TRUE(groups.ok()) << groups.message();
  auto by_hand = store->Store::active_cohorts(minute);
  ASSERT_TRUE(by_hand.ok()) << by_hand.message();
  auto key = [](const ActiveCohort& c) {
    return std::string(to_string(c.state)) + "|" + c.remote_status + "|" +
           std::to_string(to_unix_ms(c.entry)) + "|" +
           (c.submitted ? std::to_string(to_unix_ms(*c.submitted)) : "-") + "|" +
           std::to_string(c.jobs);
  };
  std::vector<std::string> got, want;
  for (const auto& c : *groups) got.push_back(key(c));
  for (const auto& c : *by_hand) want.push_back(key(c));
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  std::int64_t jobs = 0;
  for (const auto& c : *groups) {
    jobs += c.jobs;
    EXPECT_FALSE(is_final(c.state));
    EXPECT_EQ(to_unix_ms(c.entry) % minute.count(), 0) << key(c);
  }
  EXPECT_EQ(jobs, 11);  // job-11 is done
  // queued ×2; pending "" ×4; reviewing entered at minute 0 (6, 8) and 1 (7); processing at
  // minute 1 (9) and 0 (10): six groups.
  EXPECT_EQ(groups->size(), 6u) << ::testing::PrintToString(got);
}

// `--stuck` counts from the last change of state or remote status, kept by the store whoever
// writes: a poll that changes nothing does not reset it, a new remote status does.
TEST_P(StoreTest, StuckCountsFromTheLastChangeOfStateOrRemoteStatus) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("slow"), make_spec("moving"), make_spec("finished"),
                   make_spec("waiting")});
  const Millis day{24 * 3600'000};
  Job slow = job(*store, "slow");
  move(*store, slow, State::pending, kT0 + Millis(1));
  set_remote_status(*store, slow, "reviewing", kT0 + Millis(2));
  Job moving = job(*store, "moving");
  move(*store, moving, State::pending, kT0 + Millis(1));
  set_remote_status(*store, moving, "processing", kT0 + Millis(2));
  Job finished = job(*store, "finished");
  move(*store, finished, State::done, kT0 + Millis(3));
  // Four days on: the slow one was polled (nothing changed), the other moved on a stage.
  slow.polls = 40;
  slow.updated_at = kT0 + day * 4;
  slow.next_poll_at = kT0 + day * 4 + Millis(60'000);
  ASSERT_TRUE(store->update(slow).ok());
  set_remote_status(*store, moving, "reviewing", kT0 + day * 4);

  Selection stuck;
  stuck.stuck = true;
  auto page = store->select(stuck, stuck_before(kT0 + day * 4 - day * 3));
  ASSERT_TRUE(page.ok()) << page.message();
  // The queued job never changed since its intake at kT0 either.
  EXPECT_EQ(keys_of(page->jobs), (std::vector<std::string>{"slow", "waiting"}));
  page = store->select(stuck, stuck_before(kT0 - Millis(1)));
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->jobs.empty());

  // /metrics' count (jobs_active_since) says the same, its bound included.
  auto count = store->count_stuck(kT0 + day * 4 - day * 3);
  ASSERT_TRUE(count.ok()) << count.message();
  EXPECT_EQ(*count, 2);
  count = store->count_stuck(kT0 + Millis(2));  // both entered their status at kT0 + 2 ms or before
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
  count = store->count_stuck(kT0 + Millis(1));  // only the queued one is that old
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
  count = store->count_stuck(kT0 - Millis(1));
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 0);
}

TEST_P(StoreTest, LabelsAreSelectableFromIntakeOn) {
  auto store = open();
  ASSERT_TRUE(store);
  PersonaSpec a = make_spec("a");
  a.labels = {"x", "x", "y"};
  PersonaSpec b = make_spec("b");
  b.labels = {};
  enqueue(*store, {a, b});
  Selection x;
  x.labels = {"x"};
  auto page = store->select(x, SelectOptions{});
  ASSERT_TRUE(page.ok()) << page.message();
  EXPECT_EQ(keys_of(page->jobs), std::vector<std::string>{"a"});
  EXPECT_EQ(job(*store, "a").spec.labels, (std::vector<std::string>{"x", "x", "y"}));
  x.labels = {"x", "y"};
  page = store->select(x, SelectOptions{});
  ASSERT_TRUE(page.ok()) << page.message();
  EXPECT_EQ(keys_of(page->jobs), std::vector<std::string>{"a"});  // once, though it has both
  x.labels = {"personad:ref-1"};  // personad's own label is not the operator's
  page = store->select(x, SelectOptions{});
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->jobs.empty());
}


// `--key GLOB` means on every backend what glob_match says (the shell's rules), also for the
// characters that are special to SQL LIKE (% _), to regular expressions (. + ( ) ^ $ | { }) or
// to the glob itself when escaped (\* \? \[), and inside sets.
TEST_P(StoreTest, KeyGlobsMatchAsTheShellDoesWhateverTheCharacters) {
  auto store = open();
  ASSERT_TRUE(store);
  const std::vector<std::string> keys = {
      "a%b", "a_b", "a\\b", "a.b", "a+b", "a(b)", "a[b]", "a*b", "a?b", "a^b", "a$b", "a|b",
      "a{2}", "abc", "ab", "b", "A-1", "a-z", "axb", "a]b", "a!b", "%", "_", ".", "aab"};
  std::vector<PersonaSpec> specs;
  for (const auto& k : keys) specs.push_back(make_spec(k));
  enqueue(*store, specs);
  const std::vector<std::string> globs = {
      "a%b", "a_b", "a\\\\b", "a\\*b", "a\\?b", "a\\[b]", "a.b", "a?b", "a*", "*b",
      "[ab]*", "[!a]*", "[^a]*", "[a-c]?", "[]]*", "a[]]b", "[%_]", "a[%_.]b", "a[\\]b",
      "[z-a]*", "[!z-a]", "*[*?]*", "a(b)", "a[b]", "a^b", "a$b", "a|b", "a{2}", "a+b", "%", "_",
      ".", "?", "*", "a[!-]b", "a[a-]b", "[-a]*", "a\\", "\\a*", "a[", "A-?", "[A-Z]-1"};
  for (const auto& glob : globs) {
    std::vector<std::string> want;
    for (const auto& k : keys)
      if (glob_match(glob, k)) want.push_back(k);
    std::sort(want.begin(), want.end());
    Selection s;
    s.key_glob = glob;
    auto page = store->select(s, SelectOptions{});
    ASSERT_TRUE(page.ok()) << glob << ": " << page.message();
    std::vector<std::string> got;
    for (const auto& j : page->jobs) got.push_back(j.key);
    EXPECT_EQ(got, want) << "glob " << glob;  // one creation time: byte order of keys
  }
}

// Keys are ordered by their bytes on every backend (SQLite compares bytes; PostgreSQL's key
// columns are COLLATE "C"), never by a locale's rules that would fold case or skip punctuation.
TEST_P(StoreTest, KeysAreOrderedByBytesNotByALocale) {
  auto store = open();
  ASSERT_TRUE(store);
  enqueue(*store, {make_spec("b"), make_spec("B"), make_spec("a"), make_spec("_x"),
                   make_spec("a-b"), make_spec("ab"), make_spec("a b"), make_spec("Z")});
  auto page = store->select(Selection{}, SelectOptions{});
  ASSERT_TRUE(page.ok()) << page.message();
  std::vector<std::string> got;
  for (const auto& j : page->jobs) got.push_back(j.key);
  EXPECT_EQ(got, (std::vector<std::string>{"B", "Z", "_x", "a", "a b", "a-b", "ab", "b"}));
}

// ---- Batch files enqueued whole (issue 12) -----------------------------------------------------

// The daemon asks by path whether it enqueued this content before; the store keeps, per path,
// the last content remembered, across reopening.
TEST_P(StoreTest, BatchFilesAreRememberedByPathWithTheirLatestFingerprint) {
  const std::string a = "/etc/personad/batches.d/a.toml";
  const std::string print_1 = "sha256:" + std::string(64, '1') + ":100";
  const std::string print_2 = "sha256:" + std::string(64, '2') + ":120";
  {
    auto store = open();
    ASSERT_TRUE(store);
    auto none = store->remembered_batch(a);
    ASSERT_TRUE(none.ok()) << none.message();
    EXPECT_FALSE(none->has_value());

    ASSERT_TRUE(store->remember_batch(a, print_1, 3, kT0).ok());
    auto one = store->remembered_batch(a);
    ASSERT_TRUE(one.ok()) << one.message();
    ASSERT_TRUE(one->has_value());
    EXPECT_EQ((*one)->fingerprint, print_1);
    EXPECT_EQ((*one)->entries, 3);
    EXPECT_EQ((*one)->intaken_at, kT0);

    // The file changed and was enqueued whole again: its new content replaces the old.
    auto r = store->remember_batch(a, print_2, 5, kT0 + Millis(60'000));
    ASSERT_TRUE(r.ok()) << r.message();
    // Another path, another row; a path is compared byte for byte.
    ASSERT_TRUE(store->remember_batch(a + ".bak.toml", print_1, 3, kT0).ok());
    EXPECT_FALSE(store->remembered_batch("/etc/personad/batches.d/A.toml")->has_value());
  }
  auto store = open();
  ASSERT_TRUE(store);
  auto two = store->remembered_batch(a);
  ASSERT_TRUE(two.ok()) << two.message();
  ASSERT_TRUE(two->has_value());
  EXPECT_EQ((*two)->fingerprint, print_2);
  EXPECT_EQ((*two)->entries, 5);
  EXPECT_EQ((*two)->intaken_at, kT0 + Millis(60'000));
  EXPECT_EQ(query("SELECT count(*) FROM batch_files"), "2");
  // Nothing of it touches the jobs or their counts.
  EXPECT_EQ(store->stats()->counts.at(State::queued), 0);
}

// Remembered inside a group of writes (the daemon's store thread) like any write: it commits
// with the group, or not at all.
TEST_P(StoreTest, ARememberedBatchInAGroupCommitsWithIt) {
  auto store = open();
  ASSERT_TRUE(store);
  const std::string print = "sha256:" + std::string(64, 'a') + ":1";
  ASSERT_TRUE(store->begin_group().ok());
  ASSERT_TRUE(store->remember_batch("/b/x.toml", print, 1, kT0).ok());
  store->abort_group();
  EXPECT_FALSE(store->remembered_batch("/b/x.toml")->has_value());
  ASSERT_TRUE(store->begin_group().ok());
  ASSERT_TRUE(store->remember_batch("/b/x.toml", print, 1, kT0).ok());
  ASSERT_TRUE(store->end_group().ok());
  EXPECT_TRUE(store->remembered_batch("/b/x.toml")->has_value());
}

TEST_P(StoreTest, AReadOnlyStoreReadsRememberedBatchesAndRemembersNone) {
  {
    auto writer = open();
    ASSERT_TRUE(writer);
    ASSERT_TRUE(writer->remember_batch("/b/a.toml", "sha256:x:1", 1, kT0).ok());
  }
  auto reader = open(OpenMode::read_only);
  ASSERT_TRUE(reader);
  EXPECT_EQ((*reader->remembered_batch("/b/a.toml"))->fingerprint, "sha256:x:1");
  auto refused = reader->remember_batch("/b/a.toml", "sha256:y:1", 1, kT0);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.message(), ::testing::HasSubstr("read-only"));
  EXPECT_EQ((*reader->remembered_batch("/b/a.toml"))->fingerprint, "sha256:x:1");
}

}  // namespace
}  // namespace personad
