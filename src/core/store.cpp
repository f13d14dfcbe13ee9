// The SQLite store: opening (identity, integrity, WAL, migrations) and every read and write of
// jobs and transitions, each write in one transaction with statements prepared once.
#include "personad/store.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include "personad/migrations_data.hpp"
#include "personad/selection_sql.hpp"
#include "personad/sqlite.hpp"
#include "personad/stored_job.hpp"

namespace personad {

namespace {

namespace json = boost::json;
using sqlite::ResetOnExit;
using sqlite::Statement;

// PRAGMA application_id set by 0001_init.sql ("PSND"): tells our database from another
// program's SQLite file, which must never be migrated.
constexpr std::int64_t kApplicationId = 0x50534E44;

constexpr bool migrations_in_order() {
  int previous = 0;
  for (const auto& m : migrations::kAll) {
    if (m.version <= previous) return false;
    previous = m.version;
  }
  return true;
}
static_assert(migrations_in_order(), "migrations/NNNN_*.sql: versions must be unique and > 0");

constexpr int kLatestVersion = migrations::kAll.back().version;

using stored::fail;
using stored::from_ms;
using stored::null_if_empty;
using stored::to_ms;
using namespace stored;  // JobColumn

Result<PersonaSpec> parse_stored_spec(std::string_view text) { return stored::parse_spec(text); }

Result<Job> read_job(const Statement& row) {
  Job job;
  job.id = row.int64(kId);
  job.key = row.text(kKey);
  const auto state_name = row.text(kState);
  const auto state = parse_state(state_name);
  if (!state) return make_error("job '" + job.key + "' has unknown state '" + state_name + "'");
  job.state = *state;
  job.client_ref = row.text(kClientRef);
  auto spec = parse_stored_spec(row.text(kSpec));
  if (!spec) return make_error("job '" + job.key + "': " + spec.message());
  job.spec = std::move(*spec);
  job.source = row.text(kSource);
  job.remote_id = row.optional_text(kRemoteId);
  job.remote_status = row.optional_text(kRemoteStatus);
  job.failed_reason = row.optional_text(kFailedReason);
  job.created_at = from_unix_ms(row.int64(kCreatedAt));
  job.submitted_at = from_ms(row.optional_int64(kSubmittedAt));
  job.updated_at = from_unix_ms(row.int64(kUpdatedAt));
  job.next_poll_at = from_ms(row.optional_int64(kNextPollAt));
  job.polls = row.int64(kPolls);
  job.attempts = row.int64(kAttempts);
  job.errors = row.int64(kErrors);
  job.submitting_since = from_ms(row.optional_int64(kSubmittingSince));
  job.needs_operator = row.int64(kNeedsOperator) != 0;
  job.send_unknown = row.int64(kSendUnknown) != 0;
  job.last_sent_at = from_ms(row.optional_int64(kLastSentAt));
  job.expires_at = from_ms(row.optional_int64(kExpiresAt));
  job.unknown_since = from_ms(row.optional_int64(kUnknownSince));
  job.operator_reason = row.optional_text(kOperatorReason);
  job.missing_since = from_ms(row.optional_int64(kMissingSince));
  job.missing_count = row.int64(kMissingCount);
  job.status_since = from_ms(row.optional_int64(kStatusSince));
  job.waiting_reason = row.optional_text(kWaitingReason);
  return job;
}

Result<std::vector<Job>> read_jobs(Statement& stmt) {
  std::vector<Job> jobs;
  for (;;) {
    auto row = stmt.step();
    if (!row) return row.error();
    if (!*row) return jobs;
    auto job = read_job(stmt);
    if (!job) return job.error();
    jobs.push_back(std::move(*job));
  }
}

Result<std::optional<Job>> read_one_job(Statement& stmt) {
  auto row = stmt.step();
  if (!row) return row.error();
  if (!*row) return std::optional<Job>();
  auto job = read_job(stmt);
  if (!job) return job.error();
  return std::optional<Job>(std::move(*job));
}

Result<Transition> read_transition(const Statement& row) {
  Transition t;
  t.job_id = row.int64(0);
  t.at = from_unix_ms(row.int64(1));
  if (auto from = row.optional_text(2)) {
    t.from = parse_state(*from);
    if (!t.from) return make_error("transition has unknown state '" + *from + "'");
  }
  const auto to_name = row.text(3);
  const auto to = parse_state(to_name);
  if (!to) return make_error("transition has unknown state '" + to_name + "'");
  t.to = *to;
  t.remote_status = row.text(4);
  t.reason = row.text(5);
  return t;
}

// ---- Opening ---------------------------------------------------------------------------------

Result<void> check_location(const std::string& path, OpenMode mode) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (mode == OpenMode::read_only) {
    if (fs::exists(path, ec)) return {};
    return make_error("store: database " + path + " does not exist (personad creates it)");
  }
  auto dir = fs::path(path).parent_path();
  if (dir.empty() || fs::is_directory(dir, ec)) return {};
  return make_error("store: cannot create database " + path + ": directory " + dir.string() +
                    " does not exist");
}

// A reader that may not write the directory (personactl run by a member of the service's group
// while personad is stopped) cannot create the -shm file a WAL database needs. With no -wal
// file present the main file is complete, so it is read as immutable instead.
bool needs_immutable_read(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(path + "-wal", ec)) return false;
  auto dir = fs::path(path).parent_path();
  return ::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0;
}

Result<sqlite::Db> connect(const std::string& path, OpenMode mode) {
  int flags = mode == OpenMode::read_only ? SQLITE_OPEN_READONLY
                                          : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  std::string name = path;
  if (mode == OpenMode::read_only && needs_immutable_read(path)) {
    name = "file:";
    for (char c : path) {  // the three characters a URI path would misread
      if (c == '%') name += "%25";
      else if (c == '?') name += "%3f";
      else if (c == '#') name += "%23";
      else name += c;
    }
    name += "?immutable=1";
    flags |= SQLITE_OPEN_URI;
  }
  auto db = sqlite::Db::open(name, flags);
  if (!db) return fail("open " + path, db.error());
  // Defensive: no writable_schema or similar tricks can corrupt the file through this handle.
  if (sqlite3_db_config(db->handle(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr) != SQLITE_OK)
    return fail("configure " + path, make_error(db->errmsg()));
  // Set first, so that even the checks below wait for a writer rather than fail.
  if (auto r = db->exec("PRAGMA busy_timeout = 5000"); !r) return fail("open " + path, r.error());
  return db;
}

// The first read of the file: a file that is not SQLite fails here, before anything is written
// to it (no journal mode switch, no migration), so it is left exactly as it was.
Result<std::int64_t> count_schema_objects(sqlite::Db& db, const std::string& path) {
  auto n = db.query_int64("SELECT count(*) FROM sqlite_schema");
  if (n) return n;
  const int code = db.extended_errcode() & 0xff;
  if (code == SQLITE_NOTADB)
    return make_error("store: " + path + " is not a personad database (" + n.message() + ")");
  if (code == SQLITE_CORRUPT)
    return make_error("store: database " + path + " is damaged (" + n.message() + ")");
  return fail("read " + path, n.error());
}

// quick_check lists every problem it finds, one per line: the first few say enough.
std::string summarise_check(std::string_view report) {
  constexpr std::string_view kHeader = "*** in database main ***\n";
  if (report.starts_with(kHeader)) report.remove_prefix(kHeader.size());
  std::string out;
  for (char c : report) out += c == '\n' ? std::string_view("; ") : std::string_view(&c, 1);
  constexpr std::size_t kMax = 200;
  if (out.size() > kMax) out = out.substr(0, kMax) + "…";
  return out;
}

Result<void> check_integrity(sqlite::Db& db, const std::string& path) {
  auto verdict = db.query_text("PRAGMA quick_check");
  if (!verdict) return fail("check " + path, verdict.error());
  if (*verdict == "ok") return {};
  return make_error("store: database " + path + " is damaged (quick_check: " +
                    summarise_check(*verdict) + ")");
}

// Whether the file is personad's and at which schema version. A fresh file (no objects, no
// application_id) is version 0, ready to be migrated.
Result<int> identify(sqlite::Db& db, const std::string& path, IntegrityCheck check) {
  auto objects = count_schema_objects(db, path);
  if (!objects) return objects.error();
  if (check == IntegrityCheck::at_open)
    if (auto r = check_integrity(db, path); !r) return r.error();
  auto app = db.query_int64("PRAGMA application_id");
  if (!app) return fail("read " + path, app.error());
  auto version = db.query_int64("PRAGMA user_version");
  if (!version) return fail("read " + path, version.error());
  const bool fresh = *app == 0 && *version == 0 && *objects == 0;
  if (!fresh && *app != kApplicationId)
    return make_error("store: " + path +
                      " is not a personad database (it is a SQLite database of another program)");
  if (*version > kLatestVersion)
    return make_error("store: database " + path + " has schema version " +
                      std::to_string(*version) + ", this personad knows up to " +
                      std::to_string(kLatestVersion) + ": upgrade personad");
  return static_cast<int>(*version);
}

Result<void> configure_for_writing(sqlite::Db& db, const std::string& path) {
  auto mode = db.query_text("PRAGMA journal_mode = WAL");
  if (!mode) return fail("set WAL mode on " + path, mode.error());
  if (*mode != "wal")
    return make_error("store: " + path + ": WAL mode refused (journal mode stays '" + *mode +
                      "'); is it on a network file system?");
  // FULL: every commit is fsync'd before it returns. A job row stands for purchased capacity,
  // so a commit the program acted on must survive a power cut.
  if (auto r = db.exec("PRAGMA synchronous = FULL"); !r)
    return fail("configure " + path, r.error());
  // Statement journals (kept by a statement that may change several rows, such as an archive's
  // DELETE with its cascade) and sorts' scratch tables in memory: they only ever serve a
  // rollback of that one statement or a query, never durability. In a temporary file they cost
  // a pwrite per touched page, and a hardened service may have no writable temporary directory
  // at all.
  if (auto r = db.exec("PRAGMA temp_store = MEMORY"); !r)
    return fail("configure " + path, r.error());
  // The WAL is copied back into the database every 10,000 pages (~40 MiB) instead of SQLite's
  // 1,000: the commit that crosses the mark does that copy (and its fsync) on the writer's
  // thread, and a page written by many commits in between (an index's last page, job_counts,
  // a job's row between its intent record and its created answer) is copied once, not once per
  // 4 MiB. bench_scale's intake of 100,000: ~10 % faster (bench/README, twelfth pass). The -wal
  // file stays at most that size while no long read holds a checkpoint back.
  if (auto r = db.exec("PRAGMA wal_autocheckpoint = 10000"); !r)
    return fail("configure " + path, r.error());
  return {};
}

// One transaction per migration: a crash between two leaves a database at a known version.
Result<void> apply_migration(sqlite::Db& db, const migrations::Migration& m,
                             const std::string& path) {
  const std::string what = "migrate " + path + " to " + std::string(m.name);
  if (auto r = db.exec("BEGIN IMMEDIATE"); !r) return fail(what, r.error());
  // Another process may have migrated between our read of the version and our lock.
  auto version = db.query_int64("PRAGMA user_version");
  Result<void> done = version ? Result<void>() : Result<void>(version.error());
  if (done && *version < m.version) {
    done = db.exec(std::string(m.sql));
    // PRAGMA takes no bound parameters; the number is the migration's own, not outside input.
    if (done) done = db.exec("PRAGMA user_version = " + std::to_string(m.version));
  }
  if (done) done = db.exec("COMMIT");
  if (done) return {};
  if (db.in_transaction()) (void)db.exec("ROLLBACK");  // the migration's error is the report
  return fail(what, done.error());
}

Result<int> migrate(sqlite::Db& db, int current, const std::string& path) {
  for (const auto& m : migrations::kAll) {
    if (m.version <= current) continue;
    if (auto r = apply_migration(db, m, path); !r) return r.error();
    current = m.version;
  }
  return current;
}

Result<void> require_current(int version, const std::string& path) {
  if (version == kLatestVersion) return {};
  return make_error("store: database " + path + " has schema version " +
                    std::to_string(version) + ", this personad expects " +
                    std::to_string(kLatestVersion) + ": run personad once to migrate");
}

// ---- The SQLite backend ---------------------------------------------------------------------

// What job_counts adds up of one job row: its state and three counters.
struct Counted {
  State state = State::queued;
  std::int64_t polls = 0;
  std::int64_t attempts = 0;
  std::int64_t needs_operator = 0;  // 0 or 1
};

Counted counted(const Job& job) {
  return {job.state, job.polls, job.attempts, job.needs_operator ? 1 : 0};
}

struct SqliteImpl {
  // The connection is declared first so that it is closed after every statement is finalized.
  sqlite::Db db;
  std::string path;
  OpenMode mode = OpenMode::read_write;
  int version = 0;

  Statement begin_write;  // IMMEDIATE: takes the write lock at once, never fails mid-way on BUSY
  Statement begin_read;
  Statement commit;
  Statement rollback;
  Statement active_schedule;
  Statement awaiting_operator;
  bool in_group = false;
  // Inside a group: the first write that failed after changing rows (sqlite::Transaction::
  // member), which keeps the group from committing. Empty while the group is sound.
  std::string group_broken_by;
  Statement key_lookup;
  Statement insert_job;
  Statement insert_label;
  Statement key_position;
  // Selections build their SQL from the filters present (placeholders only, never values):
  // each shape is prepared once and kept.
  std::map<std::string, Statement, std::less<>> selects;
  Statement insert_transition;
  Statement row_now;  // what update_row compares against
  // update_row's UPDATEs, one per set of columns that change (few in practice), prepared on
  // first use.
  std::unordered_map<std::uint32_t, Statement> updates;
  Statement record_poll;
  Statement polls_of_job;  // what record_poll's row counted before it (job_counts)
  Statement count_change;  // one row of job_counts, by the deltas of a write (recount)
  Statement state_of_job;
  Statement job_by_key;
  Statement job_by_id;
  Statement job_by_remote_id;
  Statement job_by_client_ref;
  Statement jobs_by_state;
  Statement active_jobs;
  Statement transitions_of_job;
  Statement done_histories;
  Statement counts_by_state;
  Statement next_due;
  Statement active_cohorts;
  Statement count_stuck;
  Statement batch_by_path;
  Statement remember_batch;

  Result<void> prepare_all();
  Result<void> writable(std::string_view what) const;
  Result<sqlite::Transaction> begin(Statement& how, std::string_view what);

  Result<EnqueueOutcome> enqueue_one(const PersonaSpec& spec, std::string_view text,
                                     std::string_view source,
                                     std::string_view reason, TimePoint now,
                                     const std::function<std::string()>& new_ref);
  Result<std::int64_t> insert_new_job(const PersonaSpec& spec, std::string_view text,
                                      std::string_view source,
                                      TimePoint now, const std::string& client_ref);
  Result<void> add_transition(const Transition& t);
  // Writes the row if it is still in `expected` (the state the caller read).
  Result<void> update_row(const Job& job, State expected);
  // Keeps job_counts (0003) in step with a write of one job row, in the write's transaction:
  // `before` is the row as it was (none for an INSERT), `after` as it is now (none for a
  // DELETE). Every write of a job's state, polls, attempts or needs_operator calls it
  // (0013: no trigger does, so that no write of a job keeps a statement journal).
  Result<void> recount(const std::optional<Counted>& before, const std::optional<Counted>& after);
  Result<void> change_counts(State state, std::int64_t jobs, const Counted& by);
  // Why a write that names job.id and expects `expected` (and, for a poll, job.remote_status)
  // changed no row: not_found, or a conflict that says what the row is now.
  Error unchanged(const Job& job, State expected);
  Result<StoreStats> read_stats();
  // A selection statement of this SQL, prepared on first use.
  Result<Statement*> selection_statement(const std::string& sql);
  Result<JobPage> select(const Selection& s, const SelectOptions& o);
};

namespace {

// The columns a job's write may change, in row_now's order (after the key). SQLite rewrites
// the entry of every index over a column an UPDATE names, and evaluates the CHECKs and
// triggers on it, whether or not its value changed: update_row names only those that differ.
constexpr std::array<const char*, 21> kRowColumns = {
    "state",           "remote_id",    "remote_status",  "failed_reason", "submitted_at",
    "updated_at",      "next_poll_at", "polls",          "attempts",      "errors",
    "submitting_since", "needs_operator", "send_unknown", "last_sent_at",  "expires_at",
    "client_ref",      "unknown_since", "operator_reason", "missing_since", "missing_count",
    "waiting_reason"};
constexpr std::size_t kStatusSince = kRowColumns.size();  // the bit past the columns
constexpr std::size_t kStateColumn = 0, kRemoteStatusColumn = 2, kUpdatedAtColumn = 5,
                      kPollsColumn = 7, kAttemptsColumn = 8, kNeedsOperatorColumn = 11;
// The columns job_counts adds up (with the state).
constexpr std::uint32_t kCountedColumns = (1u << kStateColumn) | (1u << kPollsColumn) |
                                          (1u << kAttemptsColumn) |
                                          (1u << kNeedsOperatorColumn);

// SELECT key, <kRowColumns> FROM jobs WHERE id = ?1: the row as update_row compares it.
const std::string& row_now_sql() {
  static const std::string sql = [] {
    std::string text = "SELECT key";
    for (const char* column : kRowColumns) (text += ", ") += column;
    return text + " FROM jobs WHERE id = ?1";
  }();
  return sql;
}

}  // namespace

Result<void> SqliteImpl::prepare_all() {
  const std::pair<Statement*, const char*> all[] = {
      {&begin_write, "BEGIN IMMEDIATE"},
      {&begin_read, "BEGIN DEFERRED"},
      {&commit, "COMMIT"},
      {&rollback, "ROLLBACK"},
      // From the index alone (state, next_poll_at and the rowid): at 1,000,000 jobs a look at
      // each row would read the whole table. The few jobs waiting for the operator come from
      // their own partial index first.
      {&active_schedule, "SELECT id, state, next_poll_at FROM jobs INDEXED BY jobs_state_next_poll "
                         "WHERE " PERSONAD_SQL_ACTIVE("state")},
      {&awaiting_operator, "SELECT id FROM jobs WHERE needs_operator = 1 AND "
                           PERSONAD_SQL_ACTIVE("state")},
      // An archived key is known too (0007): never submitted again.
      {&key_lookup, "SELECT id, state, spec FROM jobs WHERE key = ?1 UNION ALL "
                    "SELECT 0, state, spec FROM archived_keys WHERE key = ?1 LIMIT 1"},
      {&insert_job,
       "INSERT INTO jobs (key, state, client_ref, spec, source, created_at, updated_at, "
       "next_poll_at, status_since) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?6)"},
      {&insert_label, "INSERT OR IGNORE INTO job_labels (label, created_at, key, job_id) "
                      "VALUES (?1, ?2, ?3, ?4)"},
      {&key_position, "SELECT created_at FROM jobs WHERE key = ?1"},
      {&insert_transition,
       "INSERT INTO transitions (job_id, at, from_state, to_state, remote_status, reason) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&row_now, row_now_sql().c_str()},
      // Only what a poll changes: no indexed column but next_poll_at (the schedule) is named,
      // so SQLite rewrites no other index entry; status_since stays (nothing it counts from
      // changed). `polls` is counted in job_counts too (recount).
      {&record_poll,
       "UPDATE jobs SET updated_at = ?4, next_poll_at = ?5, polls = ?6, errors = ?7, "
       "missing_since = ?8, missing_count = ?9 "
       "WHERE id = ?1 AND key = ?2 AND state = ?3 AND remote_status IS ?10"},
      {&polls_of_job, "SELECT polls FROM jobs WHERE id = ?1"},
      {&count_change,
       "UPDATE job_counts SET jobs = jobs + ?2, polls = polls + ?3, attempts = attempts + ?4, "
       "needs_operator = needs_operator + ?5 WHERE state = ?1"},
      {&state_of_job, "SELECT state, remote_status FROM jobs WHERE id = ?1"},
      {&job_by_key, "SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE key = ?1"},
      {&job_by_id, "SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE id = ?1"},
      // Served by the unique partial index on remote_id: "= ?1" implies NOT NULL.
      {&job_by_remote_id, "SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE remote_id = ?1"},
      {&job_by_client_ref, "SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE client_ref = ?1"},
      {&jobs_by_state,
       "SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE ?1 IS NULL OR state = ?1 ORDER BY id"},
      {&active_jobs, "SELECT " PERSONAD_JOB_COLUMNS
                     " FROM jobs WHERE " PERSONAD_SQL_ACTIVE("state") " ORDER BY id"},
      {&transitions_of_job,
       "SELECT job_id, at, from_state, to_state, remote_status, reason FROM transitions "
       "WHERE job_id = ?1 ORDER BY id"},
      // The newest done jobs through jobs_state_created, then their rows by the transitions'
      // job index.
      {&done_histories,
       "SELECT job_id, at, from_state, to_state, remote_status, reason FROM transitions "
       "WHERE job_id IN (SELECT id FROM jobs WHERE state = 'done' ORDER BY updated_at DESC "
       "LIMIT ?1) ORDER BY job_id, id"},
      // Kept in every write's transaction (recount, 0013): O(1) whatever the number of jobs.
      {&counts_by_state,
       "SELECT state, jobs, polls, attempts, needs_operator FROM job_counts"},
      // Served by the partial index jobs_active_due (0003): the first entry is the answer.
      {&next_due, "SELECT key, next_poll_at FROM jobs INDEXED BY jobs_active_due WHERE "
                  PERSONAD_SQL_ACTIVE("state") " AND next_poll_at IS NOT NULL "
                  "ORDER BY next_poll_at, id LIMIT 1"},
      // Read from the index jobs_active_eta alone (0009): ~30 bytes a job, not its row. Grouped
      // in the index's order, so SQLite streams the groups (no temporary b-tree); the buckets
      // are counted as they come (CohortCounter).
      {&active_cohorts,
       "SELECT state, remote_status, status_since, submitted_at, count(*) FROM jobs "
       "INDEXED BY jobs_active_eta WHERE " PERSONAD_SQL_ACTIVE("state") " GROUP BY 1, 2, 3, 4"},
      // A range of jobs_active_since (0012): the stuck jobs alone, whatever the number of others.
      {&count_stuck, "SELECT count(*) FROM jobs INDEXED BY jobs_active_since WHERE "
                     PERSONAD_SQL_ACTIVE("state") " AND status_since <= ?1"},
      {&batch_by_path, "SELECT fingerprint, entries, intaken_at FROM batch_files WHERE path = ?1"},
      {&remember_batch,
       "INSERT INTO batch_files (path, fingerprint, entries, intaken_at) VALUES (?1, ?2, ?3, ?4) "
       "ON CONFLICT (path) DO UPDATE SET fingerprint = excluded.fingerprint, "
       "entries = excluded.entries, intaken_at = excluded.intaken_at"},
  };
  for (const auto& [stmt, sql] : all) {
    auto prepared = db.prepare(sql);
    if (!prepared) return fail("prepare \"" + std::string(sql) + "\"", prepared.error());
    *stmt = std::move(*prepared);
  }
  return {};
}

Result<void> SqliteImpl::writable(std::string_view what) const {
  if (mode == OpenMode::read_write) return {};
  return make_error("store: " + std::string(what) + ": database " + path + " is open read-only");
}

Result<sqlite::Transaction> SqliteImpl::begin(Statement& how, std::string_view what) {
  // Inside a group, a write is a member of the group's transaction (no savepoint).
  if (in_group) return sqlite::Transaction::member(db, group_broken_by, what);
  auto tx = sqlite::Transaction::begin(db, how, commit, rollback);
  if (!tx) return fail(std::string(what) + " (begin)", tx.error());
  return tx;
}

Result<std::int64_t> SqliteImpl::insert_new_job(const PersonaSpec& spec, std::string_view text,
                                                 std::string_view source, TimePoint now,
                                                 const std::string& client_ref) {
  ResetOnExit reset(insert_job);
  insert_job.bind(1, std::string_view(spec.key))
      .bind(2, to_string(State::queued))
      .bind(3, std::string_view(client_ref))
      .bind(4, text)
      .bind(5, source)
      .bind(6, to_unix_ms(now));  // created, updated and due at once: submit as soon as possible
  if (auto r = insert_job.run(); !r) return r.error();
  const std::int64_t id = db.last_insert_rowid();
  if (auto r = recount(std::nullopt, Counted{State::queued}); !r) return r.error();
  for (const auto& label : spec.labels) {
    ResetOnExit reset_label(insert_label);
    insert_label.bind(1, std::string_view(label))
        .bind(2, to_unix_ms(now))
        .bind(3, std::string_view(spec.key))
        .bind(4, id);
    if (auto r = insert_label.run(); !r) return r.error();
  }
  return id;
}

Result<void> SqliteImpl::add_transition(const Transition& t) {
  ResetOnExit reset(insert_transition);
  insert_transition.bind(1, t.job_id).bind(2, to_unix_ms(t.at));
  if (t.from)
    insert_transition.bind(3, to_string(*t.from));
  else
    insert_transition.bind_null(3);
  insert_transition.bind(4, to_string(t.to))
      .bind(5, null_if_empty(t.remote_status))
      .bind(6, null_if_empty(t.reason));
  return insert_transition.run();
}

Result<EnqueueOutcome> SqliteImpl::enqueue_one(const PersonaSpec& spec, std::string_view text,
                                                std::string_view source,
                                                std::string_view reason, TimePoint now,
                                                const std::function<std::string()>& new_ref) {
  const std::string what = "enqueue '" + spec.key + "'";
  EnqueueOutcome out;
  out.key = spec.key;
  {
    ResetOnExit reset(key_lookup);
    auto row = key_lookup.bind(1, std::string_view(spec.key)).step();
    if (!row) return fail(what, row.error());
    if (*row) {
      out.job_id = key_lookup.int64(0);
      const auto state = parse_state(key_lookup.text(1));
      if (!state) return fail(what, make_error("unknown state '" + key_lookup.text(1) + "'"));
      out.state = *state;
      auto stored = parse_stored_spec(key_lookup.text(2));
      if (!stored) return fail(what, stored.error());
      out.spec_changed = *stored != spec;
      return out;
    }
  }
  out.client_ref = new_ref();
  auto id = insert_new_job(spec, text, source, now, out.client_ref);
  if (!id) return fail(what, id.error());
  Transition first{.job_id = *id, .at = now, .from = std::nullopt, .to = State::queued,
                   .remote_status = {}, .reason = std::string(reason)};
  if (auto r = add_transition(first); !r) return fail(what, r.error());
  out.inserted = true;
  out.job_id = *id;
  return out;
}

namespace {

// One column's value as a job gives it: a number, text, or NULL.
struct ColumnValue {
  bool text = false;
  std::optional<std::int64_t> number;
  std::optional<std::string> string;
  bool operator==(const ColumnValue&) const = default;
};

ColumnValue number(std::optional<std::int64_t> v) { return {false, v, std::nullopt}; }
ColumnValue text(std::optional<std::string> v) { return {true, std::nullopt, std::move(v)}; }

std::array<ColumnValue, kRowColumns.size()> row_values(const Job& job) {
  return {text(std::string(to_string(job.state))),
          text(job.remote_id),
          text(job.remote_status),
          text(job.failed_reason),
          number(to_ms(job.submitted_at)),
          number(to_unix_ms(job.updated_at)),
          number(to_ms(job.next_poll_at)),
          number(job.polls),
          number(job.attempts),
          number(job.errors),
          number(to_ms(job.submitting_since)),
          number(std::int64_t{job.needs_operator}),
          number(std::int64_t{job.send_unknown}),
          number(to_ms(job.last_sent_at)),
          number(to_ms(job.expires_at)),
          text(job.client_ref),
          number(to_ms(job.unknown_since)),
          text(job.operator_reason),
          number(to_ms(job.missing_since)),
          number(job.missing_count),
          text(job.waiting_reason)};
}

void bind_value(Statement& stmt, int index, const ColumnValue& v) {
  if (v.text)
    stmt.bind(index, v.string);
  else
    stmt.bind(index, v.number);
}

// UPDATE jobs SET <the columns in `changed`> WHERE id = ?1 AND key = ?2 AND state = ?3: the
// same guard as every write, so the UPDATE alone is still a compare-and-set.
std::string update_sql(std::uint32_t changed) {
  std::string sql = "UPDATE jobs SET ";
  int param = 4;
  for (std::size_t c = 0; c <= kRowColumns.size(); ++c) {
    if (!(changed & (1u << c))) continue;
    if (param > 4) sql += ", ";
    sql += c == kStatusSince ? "status_since" : kRowColumns[c];
    sql += " = ?" + std::to_string(param++);
  }
  return sql + " WHERE id = ?1 AND key = ?2 AND state = ?3";
}

}  // namespace

Result<void> SqliteImpl::update_row(const Job& job, State expected) {
  const auto next = row_values(job);
  std::uint32_t changed = 0;
  Counted before{expected};
  {
    ResetOnExit reset(row_now);
    auto row = row_now.bind(1, job.id).step();
    if (!row) return row.error();
    if (!*row || row_now.text(0) != job.key || row_now.text(1) != to_string(expected))
      return unchanged(job, expected);
    before.polls = row_now.int64(static_cast<int>(kPollsColumn) + 1);
    before.attempts = row_now.int64(static_cast<int>(kAttemptsColumn) + 1);
    before.needs_operator = row_now.int64(static_cast<int>(kNeedsOperatorColumn) + 1);
    for (std::size_t c = 0; c < kRowColumns.size(); ++c) {
      const int col = static_cast<int>(c) + 1;
      const ColumnValue now = next[c].text ? text(row_now.optional_text(col))
                                           : number(row_now.optional_int64(col));
      if (!(now == next[c])) changed |= 1u << c;
    }
  }
  // The time of the last change of state or remote status (--stuck), kept by the store
  // whoever writes: the write's updated_at.
  if (changed & ((1u << kStateColumn) | (1u << kRemoteStatusColumn))) changed |= 1u << kStatusSince;
  if (changed == 0) return {};  // the row is the job already
  auto it = updates.find(changed);
  if (it == updates.end()) {
    auto prepared = db.prepare(update_sql(changed));
    if (!prepared) return prepared.error();
    it = updates.emplace(changed, std::move(*prepared)).first;
  }
  Statement& update = it->second;
  ResetOnExit reset(update);
  update.bind(1, job.id).bind(2, std::string_view(job.key)).bind(3, to_string(expected));
  int param = 4;
  for (std::size_t c = 0; c <= kRowColumns.size(); ++c) {
    if (!(changed & (1u << c))) continue;
    bind_value(update, param++, c == kStatusSince ? next[kUpdatedAtColumn] : next[c]);
  }
  if (auto r = update.run(); !r) return r.error();
  if (db.changes() != 1) return unchanged(job, expected);
  if (changed & kCountedColumns) return recount(before, counted(job));
  return {};
}

Result<void> SqliteImpl::change_counts(State state, std::int64_t jobs, const Counted& by) {
  ResetOnExit reset(count_change);
  count_change.bind(1, to_string(state))
      .bind(2, jobs)
      .bind(3, by.polls)
      .bind(4, by.attempts)
      .bind(5, by.needs_operator);
  if (auto r = count_change.run(); !r) return r.error();
  if (db.changes() == 1) return {};
  return make_error("job_counts has no row for state '" + std::string(to_string(state)) + "'");
}

Result<void> SqliteImpl::recount(const std::optional<Counted>& before,
                                 const std::optional<Counted>& after) {
  if (before && after && before->state == after->state) {
    const Counted by{after->state, after->polls - before->polls,
                     after->attempts - before->attempts,
                     after->needs_operator - before->needs_operator};
    if (by.polls == 0 && by.attempts == 0 && by.needs_operator == 0) return {};
    return change_counts(after->state, 0, by);
  }
  if (before) {
    const Counted by{before->state, -before->polls, -before->attempts, -before->needs_operator};
    if (auto r = change_counts(before->state, -1, by); !r) return r;
  }
  if (after) return change_counts(after->state, 1, *after);
  return {};
}

Error SqliteImpl::unchanged(const Job& job, State expected) {
  // Tell a job that moved on (an operator's action won the race) from one that is not there.
  ResetOnExit reset_state(state_of_job);
  auto row = state_of_job.bind(1, job.id).step();
  if (!row) return row.error();
  if (!*row) return Error{"no job with id " + std::to_string(job.id), ErrorKind::not_found};
  return Error{stored::changed_meanwhile(state_of_job.text(0), state_of_job.optional_text(1),
                                         expected, job.remote_status),
               ErrorKind::conflict};
}

Result<StoreStats> SqliteImpl::read_stats() {
  StoreStats stats;
  for (State s : all_states()) stats.counts[s] = 0;
  {
    ResetOnExit reset(counts_by_state);
    for (;;) {
      auto row = counts_by_state.step();
      if (!row) return row.error();
      if (!*row) break;
      const auto state = parse_state(counts_by_state.text(0));
      if (!state) return make_error("unknown state '" + counts_by_state.text(0) + "'");
      stats.counts[*state] = counts_by_state.int64(1);
      stats.polls += counts_by_state.int64(2);
      stats.attempts += counts_by_state.int64(3);
      if (!is_final(*state)) stats.needs_operator += counts_by_state.int64(4);
    }
  }
  ResetOnExit reset(next_due);
  auto row = next_due.step();
  if (!row) return row.error();
  if (*row) {
    stats.next_due_key = next_due.text(0);
    stats.next_due = from_unix_ms(next_due.int64(1));
  }
  return stats;
}

// ---- Selections ------------------------------------------------------------------------------

void bind_values(Statement& stmt, const std::vector<SqlValue>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    const int at = static_cast<int>(i) + 1;
    if (const auto* n = std::get_if<std::int64_t>(&v[i]))
      stmt.bind(at, *n);
    else if (const auto* text = std::get_if<std::string>(&v[i]))
      stmt.bind(at, std::string_view(*text));
    else
      stmt.bind_null(at);
  }
}

Result<Statement*> SqliteImpl::selection_statement(const std::string& sql) {
  if (auto it = selects.find(sql); it != selects.end()) return &it->second;
  // Shapes are few (which filters, how many values each); a flood of odd ones is not kept.
  if (selects.size() >= 64) selects.clear();
  auto prepared = db.prepare(sql);
  if (!prepared) return prepared.error();
  return &selects.emplace(sql, std::move(*prepared)).first->second;
}

Result<JobPage> SqliteImpl::select(const Selection& s, const SelectOptions& o) {
  const SelectionSql q = selection_sql(SqlDialect::sqlite, s, o.stuck_before);
  // Where the page starts: after the `after` job's place in the order (created_at, key).
  std::optional<std::pair<std::int64_t, std::string>> start;
  if (s.after) {
    ResetOnExit reset(key_position);
    auto row = key_position.bind(1, std::string_view(*s.after)).step();
    if (!row) return row.error();
    if (!*row)
      return make_error(ErrorKind::invalid, "after: unknown key '" + *s.after + "'");
    start.emplace(key_position.int64(0), *s.after);
  }

  // The page's ids, read from an index (one more than the limit tells whether more follow),
  // then its rows.
  JobPage page;
  std::vector<std::int64_t> ids;
  {
    SelectionSql p = q;
    const std::string after = start ? p.after(start->first, start->second) : "";
    const std::string limit = p.limit(s.limit ? std::optional(*s.limit + 1) : std::nullopt);
    auto stmt = selection_statement("SELECT " + p.id() + " FROM " + p.from + " WHERE " + p.where +
                                    after + p.order_by() + limit);
    if (!stmt) return stmt.error();
    Statement& st = **stmt;
    ResetOnExit reset(st);
    bind_values(st, p.values);
    for (;;) {
      auto row = st.step();
      if (!row) return row.error();
      if (!*row) break;
      ids.push_back(st.int64(0));
    }
  }
  if (s.limit && ids.size() > static_cast<std::size_t>(*s.limit)) {
    ids.resize(static_cast<std::size_t>(*s.limit));
    page.has_more = true;
  }
  page.jobs.reserve(ids.size());
  for (std::int64_t id : ids) {
    ResetOnExit reset(job_by_id);
    auto job = read_one_job(job_by_id.bind(1, id));
    if (!job) return job.error();
    if (!*job) return make_error("job id " + std::to_string(id) + " vanished within a read");
    page.jobs.push_back(std::move(**job));
  }
  if (page.has_more && o.count_more) {
    SelectionSql p = q;
    const Job& last = page.jobs.back();
    const std::string after = p.after(to_unix_ms(last.created_at), last.key);
    auto stmt = selection_statement("SELECT count(*) FROM " + p.from + " WHERE " + p.where + after);
    if (!stmt) return stmt.error();
    Statement& st = **stmt;
    ResetOnExit reset(st);
    bind_values(st, p.values);
    auto row = st.step();
    if (!row) return row.error();
    page.more = *row ? st.int64(0) : 0;
  }
  return page;
}

// ---- Store -----------------------------------------------------------------------------------

// The SQLite backend of Store.
class SqliteStore final : public Store {
 public:
  explicit SqliteStore(std::unique_ptr<SqliteImpl> impl) : impl_(std::move(impl)) {}
  int schema_version() const override;
  Result<std::vector<EnqueueOutcome>> enqueue(const std::vector<PersonaSpec>& specs,
                                              std::string_view source, std::string_view reason,
                                              TimePoint now,
                                              const std::function<std::string()>& new_ref) override;
  Result<void> apply(const Job& job, const Transition& transition) override;
  Result<void> update(const Job& job) override;
  Result<void> record_poll(const Job& job) override;
  Result<std::optional<Job>> find(std::string_view key) const override;
  Result<std::optional<Job>> get(std::int64_t id) const override;
  Result<std::optional<Job>> find_by_remote_id(std::string_view remote_id) const override;
  Result<std::optional<Job>> find_by_client_ref(std::string_view client_ref) const override;
  Result<std::vector<Job>> list(std::optional<State> state) const override;
  Result<std::vector<Job>> load_active() const override;
  Result<std::vector<Transition>> history(std::int64_t job_id) const override;
  Result<std::vector<std::vector<Transition>>> done_histories(std::size_t max_jobs) const override;
  Result<std::optional<ArchivedKey>> find_archived(std::string_view key) const override;
  Result<std::size_t> drop_archived(const std::vector<std::int64_t>& job_ids, std::string_view file,
                                    TimePoint now) override;
  Result<StoreStats> stats() const override;
  Result<std::vector<ActiveCohort>> active_cohorts(Millis bucket) const override;
  Result<std::int64_t> count_stuck(TimePoint stuck_before) const override;
  Result<std::optional<RememberedBatch>> remembered_batch(std::string_view path) const override;
  Result<void> remember_batch(std::string_view path, std::string_view fingerprint,
                              std::int64_t entries, TimePoint now) override;
  Result<JobPage> select(const Selection& selection, const SelectOptions& options) const override;
  Result<void> for_each_active(const std::function<void(const ScheduleEntry&)>& f) const override;
  Result<void> begin_group() override;
  Result<void> end_group() override;
  void abort_group() override;

 private:
  std::unique_ptr<SqliteImpl> impl_;
};

}  // namespace

Result<std::optional<ArchivedKey>> Store::find_archived(std::string_view) const {
  return std::optional<ArchivedKey>();
}

Result<std::size_t> Store::drop_archived(const std::vector<std::int64_t>&, std::string_view,
                                         TimePoint) {
  return make_error(ErrorKind::invalid, "this store cannot archive");
}

Result<std::vector<ActiveCohort>> Store::active_cohorts(Millis bucket) const {
  auto jobs = load_active();
  if (!jobs) return jobs.error();
  stored::CohortCounter groups(bucket);
  for (const Job& j : *jobs) groups.add(cohort_of(j));
  return groups.take();
}

Result<std::int64_t> Store::count_stuck(TimePoint stuck_before) const {
  Selection stuck;
  stuck.stuck = true;
  stuck.limit = 1;
  SelectOptions o;
  o.stuck_before = stuck_before;
  o.count_more = true;
  auto page = select(stuck, o);
  if (!page) return page.error();
  return static_cast<std::int64_t>(page->jobs.size()) + page->more;
}

Result<std::optional<RememberedBatch>> Store::remembered_batch(std::string_view) const {
  return std::optional<RememberedBatch>();
}

Result<void> Store::remember_batch(std::string_view, std::string_view, std::int64_t, TimePoint) {
  return {};
}

Result<std::vector<std::vector<Transition>>> Store::done_histories(std::size_t max_jobs) const {
  auto jobs = list(State::done);
  if (!jobs) return jobs.error();
  std::sort(jobs->begin(), jobs->end(),
            [](const Job& a, const Job& b) { return a.updated_at > b.updated_at; });
  if (jobs->size() > max_jobs) jobs->resize(max_jobs);
  std::vector<std::vector<Transition>> out;
  for (const Job& j : *jobs) {
    auto h = history(j.id);
    if (!h) return h.error();
    out.push_back(std::move(*h));
  }
  return out;
}

Result<std::optional<Job>> Store::find_by_client_ref(std::string_view client_ref) const {
  auto jobs = list();
  if (!jobs) return jobs.error();
  for (auto& job : *jobs)
    if (job.client_ref == client_ref) return std::optional<Job>(std::move(job));
  return std::optional<Job>();
}

Result<void> Store::check_integrity(const std::string& path) {
  // An empty file is a database about to be made (the lock made it): nothing to check.
  std::error_code ec;
  if (std::filesystem::file_size(path, ec) == 0 && !ec) return {};
  if (auto r = check_location(path, OpenMode::read_only); !r) return r.error();
  auto db = connect(path, OpenMode::read_only);
  if (!db) return db.error();
  return ::personad::check_integrity(*db, path);
}

Result<std::unique_ptr<Store>> Store::open(const std::string& path, OpenMode mode,
                                           IntegrityCheck check) {
  if (auto r = check_location(path, mode); !r) return r.error();
  auto db = connect(path, mode);
  if (!db) return db.error();
  auto version = identify(*db, path, check);
  if (!version) return version.error();
  // A migration writes: the file is checked first, whoever was to check it.
  if (check == IntegrityCheck::by_caller && mode == OpenMode::read_write &&
      *version < kLatestVersion && *version > 0)
    if (auto r = ::personad::check_integrity(*db, path); !r) return r.error();
  if (mode == OpenMode::read_write) {
    if (auto r = configure_for_writing(*db, path); !r) return r.error();
    version = migrate(*db, *version, path);
    if (!version) return version.error();
  } else if (auto r = require_current(*version, path); !r) {
    return r.error();
  } else if (auto m = db->exec("PRAGMA temp_store = MEMORY"); !m) {
    // Sorts and temporary b-trees of a read stay in memory, as on the writing connection.
    return fail("configure " + path, m.error());
  }
  // After migrating: the constraint only becomes meaningful once the tables exist, and a
  // migration may need to rebuild a table with it off.
  if (auto r = db->exec("PRAGMA foreign_keys = ON"); !r)
    return fail("configure " + path, r.error());

  auto impl = std::make_unique<SqliteImpl>();
  impl->db = std::move(*db);
  impl->path = path;
  impl->mode = mode;
  impl->version = *version;
  if (auto r = impl->prepare_all(); !r) return r.error();
  return std::unique_ptr<Store>(new SqliteStore(std::move(impl)));
}

int SqliteStore::schema_version() const { return impl_->version; }

Result<std::vector<EnqueueOutcome>> SqliteStore::enqueue(const std::vector<PersonaSpec>& specs,
                                                   std::string_view source,
                                                   std::string_view reason, TimePoint now,
                                                   const std::function<std::string()>& new_ref) {
  if (auto r = impl_->writable("enqueue"); !r) return r.error();
  // Every spec is checked before the first row is written: inside a group a write that fails
  // half-way breaks the whole group (sqlite::Transaction::member), so the one failure a caller
  // can cause is found while nothing is written yet.
  auto texts = stored::storable_spec_texts(specs);
  if (!texts) return texts.error();
  // One transaction for the whole list: a batch is enqueued whole or not at all, and 10,000
  // rows cost one fsync instead of 10,000.
  auto tx = impl_->begin(impl_->begin_write, "enqueue");
  if (!tx) return tx.error();
  std::vector<EnqueueOutcome> outcomes;
  outcomes.reserve(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    auto outcome = impl_->enqueue_one(specs[i], (*texts)[i], source, reason, now, new_ref);
    if (!outcome) return outcome.error();  // the transaction rolls back as it goes out of scope
    outcomes.push_back(std::move(*outcome));
  }
  if (auto r = tx->commit(); !r) return fail("enqueue (commit)", r.error());
  return outcomes;
}

Result<void> SqliteStore::apply(const Job& job, const Transition& transition) {
  const std::string what = "apply to job '" + job.key + "'";
  if (auto r = impl_->writable(what); !r) return r.error();
  Transition t = transition;
  if (t.job_id == 0) t.job_id = job.id;
  if (t.job_id != job.id)
    return make_error("store: " + what + ": the transition is for job id " +
                      std::to_string(t.job_id) + ", the job is id " + std::to_string(job.id));
  // The history must tell the same story as the row, along the one transition table.
  if (t.to != job.state)
    return make_error("store: " + what + ": the transition goes to " +
                      std::string(to_string(t.to)) + " but the job is " +
                      std::string(to_string(job.state)));
  if (!t.from || !transition_allowed(*t.from, t.to))
    return make_error(ErrorKind::conflict,
                      "store: " + what + ": " +
                          (t.from ? std::string(to_string(*t.from)) : std::string("(none)")) +
                          " → " + std::string(to_string(t.to)) + " is not an allowed transition");
  auto tx = impl_->begin(impl_->begin_write, what);
  if (!tx) return tx.error();
  if (auto r = impl_->update_row(job, *t.from); !r) return Error{"store: " + what + ": " + r.message(), r.kind()};
  if (auto r = impl_->add_transition(t); !r) return fail(what, r.error());
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<void> SqliteStore::update(const Job& job) {
  const std::string what = "update job '" + job.key + "'";
  if (auto r = impl_->writable(what); !r) return r.error();
  auto tx = impl_->begin(impl_->begin_write, what);  // the row and its counts
  if (!tx) return tx.error();
  if (auto r = impl_->update_row(job, job.state); !r)
    return Error{"store: " + what + ": " + r.message(), r.kind()};
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<void> SqliteStore::record_poll(const Job& job) {
  const std::string what = "record a poll of job '" + job.key + "'";
  if (auto r = impl_->writable(what); !r) return r.error();
  auto tx = impl_->begin(impl_->begin_write, what);  // the row and its counts
  if (!tx) return tx.error();
  std::optional<std::int64_t> polls_before;
  {
    ResetOnExit reset(impl_->polls_of_job);
    auto row = impl_->polls_of_job.bind(1, job.id).step();
    if (!row) return fail(what, row.error());
    if (*row) polls_before = impl_->polls_of_job.int64(0);
  }
  auto& stmt = impl_->record_poll;
  ResetOnExit reset(stmt);
  stmt.bind(1, job.id)
      .bind(2, std::string_view(job.key))
      .bind(3, to_string(job.state))
      .bind(4, to_unix_ms(job.updated_at))
      .bind(5, to_ms(job.next_poll_at))
      .bind(6, job.polls)
      .bind(7, job.errors)
      .bind(8, to_ms(job.missing_since))
      .bind(9, job.missing_count)
      .bind(10, job.remote_status);
  if (auto r = stmt.run(); !r) return fail(what, r.error());
  if (impl_->db.changes() != 1) {
    const Error e = impl_->unchanged(job, job.state);
    return Error{"store: " + what + ": " + e.message, e.kind};
  }
  // The row was there (the UPDATE found it), so its polls were read above.
  Counted before = counted(job);
  before.polls = polls_before.value_or(job.polls);
  if (auto r = impl_->recount(before, counted(job)); !r) return fail(what, r.error());
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<std::optional<Job>> SqliteStore::find(std::string_view key) const {
  auto& stmt = impl_->job_by_key;
  ResetOnExit reset(stmt);
  auto job = read_one_job(stmt.bind(1, key));
  if (!job) return fail("find job '" + std::string(key) + "'", job.error());
  return job;
}

Result<std::optional<Job>> SqliteStore::get(std::int64_t id) const {
  auto& stmt = impl_->job_by_id;
  ResetOnExit reset(stmt);
  auto job = read_one_job(stmt.bind(1, id));
  if (!job) return fail("get job id " + std::to_string(id), job.error());
  return job;
}

Result<std::optional<Job>> SqliteStore::find_by_remote_id(std::string_view remote_id) const {
  auto& stmt = impl_->job_by_remote_id;
  ResetOnExit reset(stmt);
  auto job = read_one_job(stmt.bind(1, remote_id));
  if (!job) return fail("find job of remote id '" + std::string(remote_id) + "'", job.error());
  return job;
}

Result<std::optional<Job>> SqliteStore::find_by_client_ref(std::string_view client_ref) const {
  auto& stmt = impl_->job_by_client_ref;
  ResetOnExit reset(stmt);
  auto job = read_one_job(stmt.bind(1, client_ref));
  if (!job) return fail("find job of client_ref '" + std::string(client_ref) + "'", job.error());
  return job;
}

Result<std::vector<Job>> SqliteStore::list(std::optional<State> state) const {
  auto& stmt = impl_->jobs_by_state;
  ResetOnExit reset(stmt);
  if (state)
    stmt.bind(1, to_string(*state));
  else
    stmt.bind_null(1);
  auto jobs = read_jobs(stmt);
  if (!jobs) return fail("list jobs", jobs.error());
  return jobs;
}

Result<std::vector<Job>> SqliteStore::load_active() const {
  auto& stmt = impl_->active_jobs;
  ResetOnExit reset(stmt);
  auto jobs = read_jobs(stmt);
  if (!jobs) return fail("load active jobs", jobs.error());
  return jobs;
}

Result<std::vector<Transition>> SqliteStore::history(std::int64_t job_id) const {
  const std::string what = "history of job id " + std::to_string(job_id);
  auto& stmt = impl_->transitions_of_job;
  ResetOnExit reset(stmt);
  stmt.bind(1, job_id);
  std::vector<Transition> out;
  for (;;) {
    auto row = stmt.step();
    if (!row) return fail(what, row.error());
    if (!*row) return out;
    auto t = read_transition(stmt);
    if (!t) return fail(what, t.error());
    out.push_back(std::move(*t));
  }
}

Result<std::vector<std::vector<Transition>>> SqliteStore::done_histories(
    std::size_t max_jobs) const {
  const std::string what = "histories of done jobs";
  auto tx = impl_->begin(impl_->begin_read, "done histories");
  if (!tx) return tx.error();
  auto& stmt = impl_->done_histories;
  ResetOnExit reset(stmt);
  stmt.bind(1, static_cast<std::int64_t>(max_jobs));
  std::vector<std::vector<Transition>> out;
  for (;;) {
    auto row = stmt.step();
    if (!row) return fail(what, row.error());
    if (!*row) break;
    auto t = read_transition(stmt);
    if (!t) return fail(what, t.error());
    if (out.empty() || out.back().back().job_id != t->job_id) out.emplace_back();
    out.back().push_back(std::move(*t));
  }
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return out;
}

Result<std::optional<ArchivedKey>> SqliteStore::find_archived(std::string_view key) const {
  const std::string what = "archived key '" + std::string(key) + "'";
  auto stmt = impl_->selection_statement(
      "SELECT key, state, archived_at, file FROM archived_keys WHERE key = ?1");
  if (!stmt) return fail(what, stmt.error());
  ResetOnExit reset(**stmt);
  auto row = (*stmt)->bind(1, key).step();
  if (!row) return fail(what, row.error());
  if (!*row) return std::optional<ArchivedKey>();
  ArchivedKey a;
  a.key = (*stmt)->text(0);
  a.state = parse_state((*stmt)->text(1)).value_or(State::done);
  a.archived_at = from_unix_ms((*stmt)->int64(2));
  a.file = (*stmt)->text(3);
  return std::optional<ArchivedKey>(std::move(a));
}

Result<std::size_t> SqliteStore::drop_archived(const std::vector<std::int64_t>& ids,
                                               std::string_view file, TimePoint now) {
  const std::string what = "archive";
  auto tx = impl_->begin(impl_->begin_write, what);
  if (!tx) return tx.error();
  // The key first (from the row, only while it is final), then the row; history and labels
  // go with it (ON DELETE CASCADE), and its counts (recount) with what the DELETE returns.
  auto keep = impl_->selection_statement(
      "INSERT OR REPLACE INTO archived_keys (key, state, spec, archived_at, file) "
      "SELECT key, state, spec, ?2, ?3 FROM jobs WHERE id = ?1 AND NOT "
      PERSONAD_SQL_ACTIVE("state"));
  if (!keep) return fail(what, keep.error());
  auto drop = impl_->selection_statement(
      "DELETE FROM jobs WHERE id = ?1 AND NOT " PERSONAD_SQL_ACTIVE("state")
      " RETURNING state, polls, attempts, needs_operator");
  if (!drop) return fail(what, drop.error());
  std::size_t dropped = 0;
  for (std::int64_t id : ids) {
    {
      ResetOnExit reset(**keep);
      (*keep)->bind(1, id).bind(2, to_unix_ms(now)).bind(3, file);
      if (auto r = (*keep)->run(); !r) return fail(what, r.error());
    }
    ResetOnExit reset(**drop);
    auto row = (*drop)->bind(1, id).step();
    if (!row) return fail(what, row.error());
    if (!*row) continue;  // not there, or not final
    const auto state = parse_state((*drop)->text(0));
    if (!state) return make_error("store: " + what + ": unknown state '" + (*drop)->text(0) + "'");
    const Counted gone{*state, (*drop)->int64(1), (*drop)->int64(2), (*drop)->int64(3)};
    if (auto r = (*drop)->step(); !r) return fail(what, r.error());  // to its end
    if (auto r = impl_->recount(gone, std::nullopt); !r) return fail(what, r.error());
    ++dropped;
  }
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return dropped;
}

Result<std::vector<ActiveCohort>> SqliteStore::active_cohorts(Millis bucket) const {
  auto& stmt = impl_->active_cohorts;
  ResetOnExit reset(stmt);
  stored::CohortCounter groups(bucket);
  for (;;) {
    auto row = stmt.step();
    if (!row) return fail("group the active jobs", row.error());
    if (!*row) return groups.take();
    const auto state = parse_state(stmt.text(0));
    if (!state) return make_error("store: group the active jobs: unknown state '" + stmt.text(0) + "'");
    groups.add({*state, stmt.text(1), from_unix_ms(stmt.int64(2)),
                from_ms(stmt.optional_int64(3)), stmt.int64(4)});
  }
}

Result<std::int64_t> SqliteStore::count_stuck(TimePoint stuck_before) const {
  auto& stmt = impl_->count_stuck;
  ResetOnExit reset(stmt);
  auto row = stmt.bind(1, to_unix_ms(stuck_before)).step();
  if (!row) return fail("count the stuck jobs", row.error());
  return *row ? stmt.int64(0) : 0;
}

Result<StoreStats> SqliteStore::stats() const {
  // One read transaction: the counts and the next due job come from the same snapshot.
  auto tx = impl_->begin(impl_->begin_read, "stats");
  if (!tx) return tx.error();
  auto stats = impl_->read_stats();
  if (!stats) return fail("stats", stats.error());
  if (auto r = tx->commit(); !r) return fail("stats (commit)", r.error());
  return stats;
}

Result<std::optional<RememberedBatch>> SqliteStore::remembered_batch(
    std::string_view path) const {
  auto& stmt = impl_->batch_by_path;
  ResetOnExit reset(stmt);
  auto row = stmt.bind(1, path).step();
  if (!row) return fail("remembered batch file " + std::string(path), row.error());
  if (!*row) return std::optional<RememberedBatch>();
  return std::optional<RememberedBatch>(
      RememberedBatch{stmt.text(0), stmt.int64(1), from_unix_ms(stmt.int64(2))});
}

Result<void> SqliteStore::remember_batch(std::string_view path, std::string_view fingerprint,
                                         std::int64_t entries, TimePoint now) {
  const std::string what = "remember batch file " + std::string(path);
  if (auto r = impl_->writable(what); !r) return r.error();
  // A single statement is its own transaction (in a group: part of the group's).
  auto& stmt = impl_->remember_batch;
  ResetOnExit reset(stmt);
  stmt.bind(1, path).bind(2, fingerprint).bind(3, entries).bind(4, to_unix_ms(now));
  if (auto r = stmt.run(); !r) return fail(what, r.error());
  return {};
}

Result<JobPage> SqliteStore::select(const Selection& selection,
                                    const SelectOptions& options) const {
  // One read transaction: the page, its rows and the count of the rest from one snapshot.
  auto tx = impl_->begin(impl_->begin_read, "select jobs");
  if (!tx) return tx.error();
  auto page = impl_->select(selection, options);
  if (!page) {
    if (page.kind() == ErrorKind::invalid) return page.error();
    return fail("select jobs", page.error());
  }
  if (auto r = tx->commit(); !r) return fail("select jobs (commit)", r.error());
  return page;
}

Result<void> SqliteStore::for_each_active(
    const std::function<void(const ScheduleEntry&)>& f) const {
  // One snapshot for both reads.
  auto tx = impl_->begin(impl_->begin_read, "load the schedule");
  if (!tx) return tx.error();
  std::unordered_set<std::int64_t> held;
  {
    auto& stmt = impl_->awaiting_operator;
    ResetOnExit reset(stmt);
    for (;;) {
      auto row = stmt.step();
      if (!row) return fail("load the schedule", row.error());
      if (!*row) break;
      held.insert(stmt.int64(0));
    }
  }
  auto& stmt = impl_->active_schedule;
  ResetOnExit reset(stmt);
  for (;;) {
    auto row = stmt.step();
    if (!row) return fail("load the schedule", row.error());
    if (!*row) break;
    ScheduleEntry e;
    e.id = stmt.int64(0);
    const auto state = parse_state(stmt.text(1));
    if (!state) return fail("load the schedule", make_error("unknown state '" + stmt.text(1) + "'"));
    e.state = *state;
    e.due = from_ms(stmt.optional_int64(2));
    e.needs_operator = held.count(e.id) != 0;
    f(e);
  }
  if (auto r = tx->commit(); !r) return fail("load the schedule (commit)", r.error());
  return {};
}

Result<void> SqliteStore::begin_group() {
  if (impl_->in_group) return make_error(ErrorKind::internal, "store: a group is already open");
  if (auto r = impl_->writable("group"); !r) return r.error();
  ResetOnExit reset(impl_->begin_write);
  if (auto r = impl_->begin_write.run(); !r) return fail("begin a group of writes", r.error());
  impl_->in_group = true;
  impl_->group_broken_by.clear();
  return {};
}

Result<void> SqliteStore::end_group() {
  if (!impl_->in_group) return make_error(ErrorKind::internal, "store: no group is open");
  impl_->in_group = false;
  std::optional<Error> e;
  if (!impl_->group_broken_by.empty()) {
    e = make_error("store: " + std::exchange(impl_->group_broken_by, {}) +
                   " failed after changing rows, which cannot be undone alone: the group of "
                   "writes it was in is rolled back, none of them is recorded");
  } else {
    ResetOnExit reset(impl_->commit);
    if (auto r = impl_->commit.run(); r) return {};
    e = fail("commit a group of writes", make_error(impl_->db.errmsg()));
  }
  if (impl_->db.in_transaction()) {
    ResetOnExit reset(impl_->rollback);
    (void)impl_->rollback.run();
  }
  return *e;
}

void SqliteStore::abort_group() {
  impl_->in_group = false;
  impl_->group_broken_by.clear();
  if (!impl_->db.in_transaction()) return;
  ResetOnExit reset(impl_->rollback);
  (void)impl_->rollback.run();
}

}  // namespace personad
