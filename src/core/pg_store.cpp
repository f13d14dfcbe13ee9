// The PostgreSQL store (pg_store.hpp): the same semantics as the SQLite store (store.cpp) —
// the transition table, "the row must still be in the state the caller read", known keys left
// untouched, counts kept by triggers, selections in (created_at, key) byte order, grouped
// commits with a savepoint per write — through libpq, with every write transaction of a fenced
// store checking first that this host still holds the lease.
#include "personad/pg_store.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>
#include <variant>

#include "personad/pg_connection.hpp"
#include "personad/pg_migrations_data.hpp"
#include "personad/selection_sql.hpp"
#include "personad/stored_job.hpp"

namespace personad {

namespace {

namespace json = boost::json;
using pg::Connection;
using pg::Params;
using pg::Rows;

constexpr bool migrations_in_order() {
  int previous = 0;
  for (const auto& m : pg_migrations::kAll) {
    if (m.version <= previous) return false;
    previous = m.version;
  }
  return true;
}
static_assert(migrations_in_order(), "migrations/pg/NNNN_*.sql: versions must be unique and > 0");

constexpr int kLatestVersion = pg_migrations::kAll.back().version;

// The advisory lock every migration takes ("PSND" and 1): hosts that start at once migrate one
// after the other, and the second finds nothing left to do.
constexpr std::int64_t kMigrationLock = 0x50534E4400000001;

using stored::fail;
using stored::from_ms;
using stored::null_if_empty;
using stored::to_ms;
using namespace stored;  // JobColumn

Result<PersonaSpec> parse_stored_spec(std::string_view text) { return stored::parse_spec(text); }

Result<Job> read_job(const Rows& rows, int r) {
  Job job;
  job.id = rows.int64(r, kId);
  job.key = rows.text(r, kKey);
  const auto state_name = rows.text(r, kState);
  const auto state = parse_state(state_name);
  if (!state) return make_error("job '" + job.key + "' has unknown state '" + state_name + "'");
  job.state = *state;
  job.client_ref = rows.text(r, kClientRef);
  auto spec = parse_stored_spec(rows.text(r, kSpec));
  if (!spec) return make_error("job '" + job.key + "': " + spec.message());
  job.spec = std::move(*spec);
  job.source = rows.text(r, kSource);
  job.remote_id = rows.optional_text(r, kRemoteId);
  job.remote_status = rows.optional_text(r, kRemoteStatus);
  job.failed_reason = rows.optional_text(r, kFailedReason);
  job.created_at = from_unix_ms(rows.int64(r, kCreatedAt));
  job.submitted_at = from_ms(rows.optional_int64(r, kSubmittedAt));
  job.updated_at = from_unix_ms(rows.int64(r, kUpdatedAt));
  job.next_poll_at = from_ms(rows.optional_int64(r, kNextPollAt));
  job.polls = rows.int64(r, kPolls);
  job.attempts = rows.int64(r, kAttempts);
  job.errors = rows.int64(r, kErrors);
  job.submitting_since = from_ms(rows.optional_int64(r, kSubmittingSince));
  job.needs_operator = rows.boolean(r, kNeedsOperator);
  job.send_unknown = rows.boolean(r, kSendUnknown);
  job.last_sent_at = from_ms(rows.optional_int64(r, kLastSentAt));
  job.expires_at = from_ms(rows.optional_int64(r, kExpiresAt));
  job.unknown_since = from_ms(rows.optional_int64(r, kUnknownSince));
  job.operator_reason = rows.optional_text(r, kOperatorReason);
  job.missing_since = from_ms(rows.optional_int64(r, kMissingSince));
  job.missing_count = rows.int64(r, kMissingCount);
  job.status_since = from_ms(rows.optional_int64(r, kStatusSince));
  job.waiting_reason = rows.optional_text(r, kWaitingReason);
  return job;
}

Result<std::vector<Job>> read_jobs(const Rows& rows) {
  std::vector<Job> jobs;
  jobs.reserve(static_cast<std::size_t>(rows.size()));
  for (int r = 0; r < rows.size(); ++r) {
    auto job = read_job(rows, r);
    if (!job) return job.error();
    jobs.push_back(std::move(*job));
  }
  return jobs;
}

Result<std::optional<Job>> read_one_job(const Result<Rows>& rows) {
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<Job>();
  auto job = read_job(*rows, 0);
  if (!job) return job.error();
  return std::optional<Job>(std::move(*job));
}

Result<Transition> read_transition(const Rows& rows, int r) {
  Transition t;
  t.job_id = rows.int64(r, 0);
  t.at = from_unix_ms(rows.int64(r, 1));
  if (auto from = rows.optional_text(r, 2)) {
    t.from = parse_state(*from);
    if (!t.from) return make_error("transition has unknown state '" + *from + "'");
  }
  const auto to_name = rows.text(r, 3);
  const auto to = parse_state(to_name);
  if (!to) return make_error("transition has unknown state '" + to_name + "'");
  t.to = *to;
  t.remote_status = rows.text(r, 4);
  t.reason = rows.text(r, 5);
  return t;
}

// ---- Opening ---------------------------------------------------------------------------------

// The schema version, 0 for a database without personad's tables. A database that holds a
// `jobs` table but no personad_schema is another program's: never migrated.
Result<int> identify(Connection& c) {
  auto found = c.exec(
      "SELECT to_regclass('personad_schema') IS NOT NULL, to_regclass('jobs') IS NOT NULL");
  if (!found) return fail("read the schema version", found.error());
  const bool ours = found->boolean(0, 0);
  if (!ours) {
    if (found->boolean(0, 1))
      return make_error("store: " + c.describe() +
                        " is not a personad database (it has a table 'jobs' of another program; "
                        "give personad a database of its own)");
    return 0;
  }
  auto version = c.exec("SELECT version FROM personad_schema WHERE id = 1");
  if (!version) return fail("read the schema version", version.error());
  const int v = version->empty() ? 0 : static_cast<int>(version->int64(0, 0));
  if (v > kLatestVersion)
    return make_error("store: database " + c.describe() + " has schema version " +
                      std::to_string(v) + ", this personad knows up to " +
                      std::to_string(kLatestVersion) + ": upgrade personad");
  return v;
}

Result<void> require_current(int version, const Connection& c) {
  if (version == kLatestVersion) return {};
  return make_error("store: database " + c.describe() + " has schema version " +
                    std::to_string(version) + ", this personad expects " +
                    std::to_string(kLatestVersion) + ": run personad once to migrate");
}

// One transaction per migration, under the advisory lock: a crash between two leaves a database
// at a known version, and a host that waited for the lock re-reads the version and skips what
// the other applied.
Result<int> apply_migration(Connection& c, const pg_migrations::Migration& m) {
  const std::string what = "migrate " + c.describe() + " to " + std::string(m.name);
  auto tx = pg::Transaction::begin(c);
  if (!tx) return fail(what, tx.error());
  if (auto r = c.exec("SELECT pg_advisory_xact_lock($1)", Params().add(kMigrationLock)); !r)
    return fail(what, r.error());
  // From the second migration on, CREATE TABLE IF NOT EXISTS below finds the table and the
  // server says so in a NOTICE, which libpq prints on stderr (the journal): not worth a line.
  if (auto r = c.run("SET LOCAL client_min_messages = warning"); !r) return fail(what, r.error());
  if (auto r = c.run("CREATE TABLE IF NOT EXISTS personad_schema ("
                     "id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL); "
                     "INSERT INTO personad_schema (id, version) VALUES (1, 0) "
                     "ON CONFLICT (id) DO NOTHING");
      !r)
    return fail(what, r.error());
  auto version = identify(c);
  if (!version) return version.error();
  if (*version < m.version) {
    if (auto r = c.run(std::string(m.sql)); !r) return fail(what, r.error());
    if (auto r = c.exec("UPDATE personad_schema SET version = $1 WHERE id = 1",
                        Params().add(m.version));
        !r)
      return fail(what, r.error());
  }
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return std::max(*version, m.version);
}

Result<int> migrate(Connection& c, int current) {
  for (const auto& m : pg_migrations::kAll) {
    if (m.version <= current) continue;
    auto v = apply_migration(c, m);
    if (!v) return v.error();
    current = *v;
  }
  return current;
}

// ---- Selections ------------------------------------------------------------------------------

// ---- The PostgreSQL backend ------------------------------------------------------------------

// A write: its own transaction (fenced: the lease checked first), or inside a group a savepoint
// of the group's transaction (whose fence was checked when it began).
struct WriteScope {
  std::optional<pg::Transaction> tx;
  std::optional<pg::Savepoint> savepoint;

  Result<void> commit() { return savepoint ? savepoint->release() : tx->commit(); }
};

struct PgImpl {
  // One caller at a time on the connection (libpq's connections are not for concurrent use).
  std::mutex mutex;
  Connection c;
  OpenMode mode = OpenMode::read_write;
  int version = 0;
  std::optional<PgFence> fence;
  bool in_group = false;

  // Before a call: a connection that broke since the last one is re-established (never
  // inside a group: its transaction is gone, and the group must fail whole).
  Result<void> ready(std::string_view what);
  Result<void> writable(std::string_view what) const;
  Result<void> check_fence(std::string_view what);
  Result<WriteScope> begin_write(std::string_view what);

  Result<EnqueueOutcome> enqueue_one(const PersonaSpec& spec, std::string_view text,
                                     std::string_view source,
                                     std::string_view reason, TimePoint now,
                                     const std::function<std::string()>& new_ref);
  Result<std::int64_t> insert_new_job(const PersonaSpec& spec, std::string_view text,
                                      std::string_view source,
                                      TimePoint now, const std::string& client_ref);
  Result<void> add_transition(const Transition& t);
  Result<void> update_row(const Job& job, State expected);
  // Why a write naming job.id and expecting `expected` changed no row (see SqliteImpl).
  Error unchanged(const Job& job, State expected);
  Result<StoreStats> read_stats();
  Result<JobPage> select(const Selection& s, const SelectOptions& o);
  Result<std::vector<Job>> jobs_by_ids(const std::vector<std::int64_t>& ids);
};

Result<void> PgImpl::ready(std::string_view what) {
  if (in_group) return {};
  if (auto r = c.ensure_open(); !r) return fail(what, r.error());
  return {};
}

Result<void> PgImpl::writable(std::string_view what) const {
  if (mode == OpenMode::read_write) return {};
  return make_error("store: " + std::string(what) + ": database " + c.describe() +
                    " is open read-only");
}

// In the open transaction: this host still holds the lease (pg::check_lease).
Result<void> PgImpl::check_fence(std::string_view what) {
  if (!fence) return {};
  return pg::check_lease(c, *fence, what);
}

Result<WriteScope> PgImpl::begin_write(std::string_view what) {
  WriteScope w;
  if (in_group) {
    auto sp = pg::Savepoint::begin(c);
    if (!sp) return fail(std::string(what) + " (begin)", sp.error());
    w.savepoint.emplace(std::move(*sp));
    return w;
  }
  auto tx = pg::Transaction::begin(c);
  if (!tx) return fail(std::string(what) + " (begin)", tx.error());
  w.tx.emplace(std::move(*tx));
  if (auto r = check_fence(what); !r) return r.error();  // rolled back as w goes
  return w;
}

// `text`: the spec as stored::storable_spec_texts checked it.
Result<std::int64_t> PgImpl::insert_new_job(const PersonaSpec& spec, std::string_view text,
                                            std::string_view source, TimePoint now,
                                            const std::string& client_ref) {
  auto id = c.exec(
      "INSERT INTO jobs (key, state, client_ref, spec, source, created_at, updated_at, "
      "next_poll_at, status_since) VALUES ($1, $2, $3, $4, $5, $6, $6, $6, $6) RETURNING id",
      Params()
          .add(spec.key)
          .add(to_string(State::queued))
          .add(client_ref)
          .add(text)
          .add(source)
          .add(to_unix_ms(now)));  // created, updated and due at once
  if (!id) return id.error();
  const std::int64_t job_id = id->int64(0, 0);
  for (const auto& label : spec.labels) {
    auto r = c.exec(
        "INSERT INTO job_labels (label, created_at, key, job_id) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING",
        Params().add(label).add(to_unix_ms(now)).add(spec.key).add(job_id));
    if (!r) return r.error();
  }
  return job_id;
}

Result<void> PgImpl::add_transition(const Transition& t) {
  Params p;
  p.add(t.job_id).add(to_unix_ms(t.at));
  if (t.from)
    p.add(to_string(*t.from));
  else
    p.null();
  p.add(to_string(t.to)).add(null_if_empty(t.remote_status)).add(null_if_empty(t.reason));
  auto r = c.exec(
      "INSERT INTO transitions (job_id, at, from_state, to_state, remote_status, reason) "
      "VALUES ($1, $2, $3, $4, $5, $6)",
      p);
  if (!r) return r.error();
  return {};
}

Result<EnqueueOutcome> PgImpl::enqueue_one(const PersonaSpec& spec, std::string_view text,
                                           std::string_view source,
                                           std::string_view reason, TimePoint now,
                                           const std::function<std::string()>& new_ref) {
  const std::string what = "enqueue '" + spec.key + "'";
  EnqueueOutcome out;
  out.key = spec.key;
  // An archived key is known too: never submitted again.
  auto known = c.exec(
      "SELECT id, state, spec FROM jobs WHERE key = $1::text UNION ALL "
      "SELECT 0, state, spec FROM archived_keys WHERE key = $1::text LIMIT 1",
      Params().add(spec.key));
  if (!known) return fail(what, known.error());
  if (!known->empty()) {
    out.job_id = known->int64(0, 0);
    const auto state = parse_state(known->text(0, 1));
    if (!state) return fail(what, make_error("unknown state '" + known->text(0, 1) + "'"));
    out.state = *state;
    auto stored = parse_stored_spec(known->text(0, 2));
    if (!stored) return fail(what, stored.error());
    out.spec_changed = *stored != spec;
    return out;
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

Result<void> PgImpl::update_row(const Job& job, State expected) {
  // The key in the WHERE clause: a Job that is not the row it claims to be is refused. The
  // right-hand sides read the row as it was: status_since is the time of the last change of
  // state or remote status (--stuck), kept by the store whoever writes.
  auto updated = c.exec(
      "UPDATE jobs SET state = $3, remote_id = $4, remote_status = $5, failed_reason = $6, "
      "submitted_at = $7, updated_at = $8, next_poll_at = $9, polls = $10, attempts = $11, "
      "errors = $12, submitting_since = $13, needs_operator = $14, send_unknown = $15, "
      "last_sent_at = $16, expires_at = $17, client_ref = $18, unknown_since = $19, "
      "operator_reason = $20, missing_since = $22, missing_count = $23, waiting_reason = $24, "
      "status_since = CASE WHEN state IS DISTINCT FROM $3::text "
      "OR remote_status IS DISTINCT FROM $5::text THEN $8::bigint ELSE status_since END "
      "WHERE id = $1 AND key = $2 AND state = $21",
      Params()
          .add(job.id)
          .add(job.key)
          .add(to_string(job.state))
          .add(job.remote_id)
          .add(job.remote_status)
          .add(job.failed_reason)
          .add(to_ms(job.submitted_at))
          .add(to_unix_ms(job.updated_at))
          .add(to_ms(job.next_poll_at))
          .add(job.polls)
          .add(job.attempts)
          .add(job.errors)
          .add(to_ms(job.submitting_since))
          .add(job.needs_operator)
          .add(job.send_unknown)
          .add(to_ms(job.last_sent_at))
          .add(to_ms(job.expires_at))
          .add(job.client_ref)
          .add(to_ms(job.unknown_since))
          .add(job.operator_reason)
          .add(to_string(expected))
          .add(to_ms(job.missing_since))
          .add(job.missing_count)
          .add(job.waiting_reason));
  if (!updated) return updated.error();
  if (updated->affected() == 1) return {};
  return unchanged(job, expected);
}

Error PgImpl::unchanged(const Job& job, State expected) {
  // Tell a job that moved on from one that is not there at all.
  auto row = c.exec("SELECT state, remote_status FROM jobs WHERE id = $1", Params().add(job.id));
  if (!row) return row.error();
  if (row->empty()) return Error{"no job with id " + std::to_string(job.id), ErrorKind::not_found};
  return Error{changed_meanwhile(row->text(0, 0), row->optional_text(0, 1), expected,
                                 job.remote_status),
               ErrorKind::conflict};
}

Result<StoreStats> PgImpl::read_stats() {
  StoreStats stats;
  for (State s : all_states()) stats.counts[s] = 0;
  // Kept by triggers in every transaction: O(1) whatever the number of jobs.
  auto counts = c.exec("SELECT state, jobs, polls, attempts, needs_operator FROM job_counts");
  if (!counts) return counts.error();
  for (int r = 0; r < counts->size(); ++r) {
    const auto state = parse_state(counts->text(r, 0));
    if (!state) return make_error("unknown state '" + counts->text(r, 0) + "'");
    stats.counts[*state] = counts->int64(r, 1);
    stats.polls += counts->int64(r, 2);
    stats.attempts += counts->int64(r, 3);
    if (!is_final(*state)) stats.needs_operator += counts->int64(r, 4);
  }
  // Served by the partial index jobs_active_due: the first entry is the answer.
  auto next = c.exec("SELECT key, next_poll_at FROM jobs WHERE state IN " PERSONAD_ACTIVE_STATES
                     " AND next_poll_at IS NOT NULL ORDER BY next_poll_at, id LIMIT 1");
  if (!next) return next.error();
  if (!next->empty()) {
    stats.next_due_key = next->text(0, 0);
    stats.next_due = from_unix_ms(next->int64(0, 1));
  }
  return stats;
}

// The rows of `ids`, in that order (one statement for a page, not one per job).
Result<std::vector<Job>> PgImpl::jobs_by_ids(const std::vector<std::int64_t>& ids) {
  std::string array = "{";
  for (std::size_t i = 0; i < ids.size(); ++i)
    array += (i == 0 ? "" : ",") + std::to_string(ids[i]);
  array += "}";
  auto rows = c.exec("SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE id = ANY($1::bigint[])",
                     Params().add(array));
  if (!rows) return rows.error();
  auto jobs = read_jobs(*rows);
  if (!jobs) return jobs.error();
  std::map<std::int64_t, Job*> by_id;
  for (auto& j : *jobs) by_id[j.id] = &j;
  std::vector<Job> out;
  out.reserve(ids.size());
  for (std::int64_t id : ids) {
    auto it = by_id.find(id);
    if (it == by_id.end())
      return make_error("job id " + std::to_string(id) + " vanished within a read");
    out.push_back(std::move(*it->second));
  }
  return out;
}

// The values of a selection's placeholders, as libpq takes them.
Params params_of(const std::vector<SqlValue>& values) {
  Params out;
  for (const auto& v : values) {
    if (const auto* n = std::get_if<std::int64_t>(&v))
      out.add(*n);
    else if (const auto* text = std::get_if<std::string>(&v))
      out.add(*text);
    else
      out.null();
  }
  return out;
}

Result<JobPage> PgImpl::select(const Selection& s, const SelectOptions& o) {
  const SelectionSql q = selection_sql(SqlDialect::postgresql, s, o.stuck_before);
  // Where the page starts: after the `after` job's place in the order (created_at, key).
  std::optional<std::int64_t> start_at;
  if (s.after) {
    auto row = c.exec("SELECT created_at FROM jobs WHERE key = $1", Params().add(*s.after));
    if (!row) return row.error();
    if (row->empty())
      return make_error(ErrorKind::invalid, "after: unknown key '" + *s.after + "'");
    start_at = row->int64(0, 0);
  }

  // The page's ids, read from an index (one more than the limit tells whether more follow),
  // then its rows.
  JobPage page;
  std::vector<std::int64_t> ids;
  {
    SelectionSql p = q;
    const std::string after = start_at ? p.after(*start_at, *s.after) : "";
    const std::string limit = p.limit(s.limit ? std::optional(*s.limit + 1) : std::nullopt);
    auto rows = c.exec("SELECT " + p.id() + " FROM " + p.from + " WHERE " + p.where + after +
                           p.order_by() + limit,
                       params_of(p.values));
    if (!rows) return rows.error();
    for (int r = 0; r < rows->size(); ++r) ids.push_back(rows->int64(r, 0));
  }
  if (s.limit && ids.size() > static_cast<std::size_t>(*s.limit)) {
    ids.resize(static_cast<std::size_t>(*s.limit));
    page.has_more = true;
  }
  auto jobs = jobs_by_ids(ids);
  if (!jobs) return jobs.error();
  page.jobs = std::move(*jobs);
  if (page.has_more && o.count_more) {
    SelectionSql p = q;
    const Job& last = page.jobs.back();
    const std::string after = p.after(to_unix_ms(last.created_at), last.key);
    auto rows = c.exec("SELECT count(*) FROM " + p.from + " WHERE " + p.where + after,
                       params_of(p.values));
    if (!rows) return rows.error();
    page.more = rows->empty() ? 0 : rows->int64(0, 0);
  }
  return page;
}

// ---- Store -----------------------------------------------------------------------------------

// One snapshot for reads of several statements; inside a group they join its transaction.
constexpr std::string_view kSnapshot = "ISOLATION LEVEL REPEATABLE READ READ ONLY";

class PgStore final : public Store {
 public:
  explicit PgStore(std::unique_ptr<PgImpl> impl) : impl_(std::move(impl)) {}
  int schema_version() const override { return impl_->version; }
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
  // A job by one column's value.
  Result<std::optional<Job>> find_by(const char* sql, std::string_view value,
                                     const std::string& what) const;
  Result<std::vector<Job>> jobs_of(const char* sql, const Params& params,
                                   const std::string& what) const;

  std::unique_ptr<PgImpl> impl_;
};

Result<std::vector<EnqueueOutcome>> PgStore::enqueue(const std::vector<PersonaSpec>& specs,
                                                     std::string_view source,
                                                     std::string_view reason, TimePoint now,
                                                     const std::function<std::string()>& new_ref) {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->writable("enqueue"); !r) return r.error();
  if (auto r = impl_->ready("enqueue"); !r) return r.error();
  // Every spec is checked before the first row is written, as in the SQLite store.
  auto texts = stored::storable_spec_texts(specs);
  if (!texts) return texts.error();
  // One transaction for the whole list: a batch is enqueued whole or not at all.
  auto w = impl_->begin_write("enqueue");
  if (!w) return w.error();
  std::vector<EnqueueOutcome> outcomes;
  outcomes.reserve(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& spec = specs[i];
    auto outcome = impl_->enqueue_one(spec, (*texts)[i], source, reason, now, new_ref);
    if (!outcome) return outcome.error();  // rolled back as w goes out of scope
    outcomes.push_back(std::move(*outcome));
  }
  if (auto r = w->commit(); !r) return fail("enqueue (commit)", r.error());
  return outcomes;
}

Result<void> PgStore::apply(const Job& job, const Transition& transition) {
  const std::string what = "apply to job '" + job.key + "'";
  std::lock_guard lock(impl_->mutex);
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
  if (auto r = impl_->ready(what); !r) return r.error();
  auto w = impl_->begin_write(what);
  if (!w) return w.error();
  if (auto r = impl_->update_row(job, *t.from); !r)
    return Error{"store: " + what + ": " + r.message(), r.kind()};
  if (auto r = impl_->add_transition(t); !r) return fail(what, r.error());
  if (auto r = w->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<void> PgStore::update(const Job& job) {
  const std::string what = "update job '" + job.key + "'";
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->writable(what); !r) return r.error();
  if (auto r = impl_->ready(what); !r) return r.error();
  auto w = impl_->begin_write(what);
  if (!w) return w.error();
  if (auto r = impl_->update_row(job, job.state); !r)
    return Error{"store: " + what + ": " + r.message(), r.kind()};
  if (auto r = w->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<void> PgStore::record_poll(const Job& job) {
  const std::string what = "record a poll of job '" + job.key + "'";
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->writable(what); !r) return r.error();
  if (auto r = impl_->ready(what); !r) return r.error();
  auto w = impl_->begin_write(what);
  if (!w) return w.error();
  // Only what a poll changes (see SqliteStore::record_poll); status_since stays.
  auto updated = impl_->c.exec(
      "UPDATE jobs SET updated_at = $4, next_poll_at = $5, polls = $6, errors = $7, "
      "missing_since = $8, missing_count = $9 "
      "WHERE id = $1 AND key = $2 AND state = $3 AND remote_status IS NOT DISTINCT FROM $10",
      Params()
          .add(job.id)
          .add(job.key)
          .add(to_string(job.state))
          .add(to_unix_ms(job.updated_at))
          .add(to_ms(job.next_poll_at))
          .add(job.polls)
          .add(job.errors)
          .add(to_ms(job.missing_since))
          .add(job.missing_count)
          .add(job.remote_status));
  if (!updated) return fail(what, updated.error());
  if (updated->affected() != 1) {
    const Error e = impl_->unchanged(job, job.state);
    return Error{"store: " + what + ": " + e.message, e.kind};
  }
  if (auto r = w->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<std::optional<Job>> PgStore::find_by(const char* sql, std::string_view value,
                                            const std::string& what) const {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  auto job = read_one_job(impl_->c.exec(sql, Params().add(value)));
  if (!job) return fail(what, job.error());
  return job;
}

Result<std::optional<Job>> PgStore::find(std::string_view key) const {
  return find_by("SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE key = $1", key,
                 "find job '" + std::string(key) + "'");
}

Result<std::optional<Job>> PgStore::get(std::int64_t id) const {
  return find_by("SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE id = $1::bigint",
                 std::to_string(id), "get job id " + std::to_string(id));
}

Result<std::optional<Job>> PgStore::find_by_remote_id(std::string_view remote_id) const {
  return find_by("SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE remote_id = $1", remote_id,
                 "find job of remote id '" + std::string(remote_id) + "'");
}

Result<std::optional<Job>> PgStore::find_by_client_ref(std::string_view client_ref) const {
  return find_by("SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE client_ref = $1", client_ref,
                 "find job of client_ref '" + std::string(client_ref) + "'");
}

Result<std::vector<Job>> PgStore::jobs_of(const char* sql, const Params& params,
                                          const std::string& what) const {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  auto rows = impl_->c.exec(sql, params);
  if (!rows) return fail(what, rows.error());
  auto jobs = read_jobs(*rows);
  if (!jobs) return fail(what, jobs.error());
  return jobs;
}

Result<std::vector<Job>> PgStore::list(std::optional<State> state) const {
  Params p;
  if (state)
    p.add(to_string(*state));
  else
    p.null();
  return jobs_of("SELECT " PERSONAD_JOB_COLUMNS
                 " FROM jobs WHERE $1::text IS NULL OR state = $1::text ORDER BY id",
                 p, "list jobs");
}

Result<std::vector<Job>> PgStore::load_active() const {
  return jobs_of("SELECT " PERSONAD_JOB_COLUMNS " FROM jobs WHERE state IN " PERSONAD_ACTIVE_STATES
                 " ORDER BY id",
                 Params(), "load active jobs");
}

Result<std::vector<Transition>> PgStore::history(std::int64_t job_id) const {
  const std::string what = "history of job id " + std::to_string(job_id);
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  auto rows = impl_->c.exec(
      "SELECT job_id, at, from_state, to_state, remote_status, reason FROM transitions "
      "WHERE job_id = $1 ORDER BY id",
      Params().add(job_id));
  if (!rows) return fail(what, rows.error());
  std::vector<Transition> out;
  for (int r = 0; r < rows->size(); ++r) {
    auto t = read_transition(*rows, r);
    if (!t) return fail(what, t.error());
    out.push_back(std::move(*t));
  }
  return out;
}

Result<std::vector<std::vector<Transition>>> PgStore::done_histories(std::size_t max_jobs) const {
  const std::string what = "histories of done jobs";
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  // One statement: one snapshot.
  auto rows = impl_->c.exec(
      "SELECT job_id, at, from_state, to_state, remote_status, reason FROM transitions "
      "WHERE job_id IN (SELECT id FROM jobs WHERE state = 'done' ORDER BY updated_at DESC "
      "LIMIT $1::bigint) ORDER BY job_id, id",
      Params().add(static_cast<std::int64_t>(max_jobs)));
  if (!rows) return fail(what, rows.error());
  std::vector<std::vector<Transition>> out;
  for (int r = 0; r < rows->size(); ++r) {
    auto t = read_transition(*rows, r);
    if (!t) return fail(what, t.error());
    if (out.empty() || out.back().back().job_id != t->job_id) out.emplace_back();
    out.back().push_back(std::move(*t));
  }
  return out;
}

Result<std::optional<ArchivedKey>> PgStore::find_archived(std::string_view key) const {
  const std::string what = "archived key '" + std::string(key) + "'";
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  auto rows = impl_->c.exec(
      "SELECT key, state, archived_at, file FROM archived_keys WHERE key = $1", Params().add(key));
  if (!rows) return fail(what, rows.error());
  if (rows->empty()) return std::optional<ArchivedKey>();
  ArchivedKey a;
  a.key = rows->text(0, 0);
  a.state = parse_state(rows->text(0, 1)).value_or(State::done);
  a.archived_at = from_unix_ms(rows->int64(0, 2));
  a.file = rows->text(0, 3);
  return std::optional<ArchivedKey>(std::move(a));
}

Result<std::size_t> PgStore::drop_archived(const std::vector<std::int64_t>& ids,
                                           std::string_view file, TimePoint now) {
  const std::string what = "archive";
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->writable(what); !r) return r.error();
  if (auto r = impl_->ready(what); !r) return r.error();
  auto w = impl_->begin_write(what);
  if (!w) return w.error();
  // The key first (from the row, only while it is final), then the row; history and labels
  // go with it (ON DELETE CASCADE), the counts by trigger.
  std::size_t dropped = 0;
  for (std::int64_t id : ids) {
    auto keep = impl_->c.exec(
        "INSERT INTO archived_keys (key, state, spec, archived_at, file) "
        "SELECT key, state, spec, $2, $3 FROM jobs WHERE id = $1 AND state NOT IN "
        PERSONAD_ACTIVE_STATES " ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, "
        "spec = EXCLUDED.spec, archived_at = EXCLUDED.archived_at, file = EXCLUDED.file",
        Params().add(id).add(to_unix_ms(now)).add(file));
    if (!keep) return fail(what, keep.error());
    auto drop = impl_->c.exec(
        "DELETE FROM jobs WHERE id = $1 AND state NOT IN " PERSONAD_ACTIVE_STATES,
        Params().add(id));
    if (!drop) return fail(what, drop.error());
    dropped += static_cast<std::size_t>(drop->affected());
  }
  if (auto r = w->commit(); !r) return fail(what + " (commit)", r.error());
  return dropped;
}

Result<std::vector<ActiveCohort>> PgStore::active_cohorts(Millis bucket) const {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready("group the active jobs"); !r) return r.error();
  auto rows = impl_->c.exec(
      "SELECT state, remote_status, (status_since / $1::bigint) * $1::bigint, "
      "(submitted_at / $1::bigint) * $1::bigint, count(*) FROM jobs "
      "WHERE state IN " PERSONAD_ACTIVE_STATES " GROUP BY 1, 2, 3, 4",
      Params().add(std::max<std::int64_t>(bucket.count(), 1)));
  if (!rows) return fail("group the active jobs", rows.error());
  std::vector<ActiveCohort> out;
  for (int i = 0; i < rows->size(); ++i) {
    const auto state = parse_state(rows->text(i, 0));
    if (!state)
      return make_error("store: group the active jobs: unknown state '" + rows->text(i, 0) + "'");
    out.push_back({*state, rows->text(i, 1), from_unix_ms(rows->int64(i, 2)),
                   from_ms(rows->optional_int64(i, 3)), rows->int64(i, 4)});
  }
  return out;
}

Result<std::int64_t> PgStore::count_stuck(TimePoint stuck_before) const {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready("count the stuck jobs"); !r) return r.error();
  // A range of jobs_active_since (pg/0005): the stuck jobs alone.
  auto rows = impl_->c.exec("SELECT count(*) FROM jobs WHERE state IN " PERSONAD_ACTIVE_STATES
                            " AND status_since <= $1::bigint",
                            Params().add(to_unix_ms(stuck_before)));
  if (!rows) return fail("count the stuck jobs", rows.error());
  return rows->int64(0, 0);
}

Result<StoreStats> PgStore::stats() const {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready("stats"); !r) return r.error();
  // One snapshot: the counts and the next due job agree.
  auto tx = pg::Transaction::begin(impl_->c, kSnapshot);
  if (!tx) return fail("stats (begin)", tx.error());
  auto stats = impl_->read_stats();
  if (!stats) return fail("stats", stats.error());
  if (auto r = tx->commit(); !r) return fail("stats (commit)", r.error());
  return stats;
}

Result<std::optional<RememberedBatch>> PgStore::remembered_batch(std::string_view path) const {
  const std::string what = "remembered batch file " + std::string(path);
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  auto rows = impl_->c.exec(
      "SELECT fingerprint, entries, intaken_at FROM batch_files WHERE path = $1",
      Params().add(path));
  if (!rows) return fail(what, rows.error());
  if (rows->empty()) return std::optional<RememberedBatch>();
  return std::optional<RememberedBatch>(
      RememberedBatch{rows->text(0, 0), rows->int64(0, 1), from_unix_ms(rows->int64(0, 2))});
}

// Fenced like every write: a host that lost the lease remembers nothing either.
Result<void> PgStore::remember_batch(std::string_view path, std::string_view fingerprint,
                                     std::int64_t entries, TimePoint now) {
  const std::string what = "remember batch file " + std::string(path);
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->writable(what); !r) return r.error();
  if (auto r = impl_->ready(what); !r) return r.error();
  auto w = impl_->begin_write(what);
  if (!w) return w.error();
  auto r = impl_->c.exec(
      "INSERT INTO batch_files (path, fingerprint, entries, intaken_at) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (path) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, "
      "entries = EXCLUDED.entries, intaken_at = EXCLUDED.intaken_at",
      Params().add(path).add(fingerprint).add(entries).add(to_unix_ms(now)));
  if (!r) return fail(what, r.error());
  if (auto c = w->commit(); !c) return fail(what + " (commit)", c.error());
  return {};
}

Result<JobPage> PgStore::select(const Selection& selection, const SelectOptions& options) const {
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready("select jobs"); !r) return r.error();
  // One snapshot: the page, its rows and the count of the rest.
  auto tx = pg::Transaction::begin(impl_->c, kSnapshot);
  if (!tx) return fail("select jobs (begin)", tx.error());
  auto page = impl_->select(selection, options);
  if (!page) {
    if (page.kind() == ErrorKind::invalid) return page.error();
    return fail("select jobs", page.error());
  }
  if (auto r = tx->commit(); !r) return fail("select jobs (commit)", r.error());
  return page;
}

Result<void> PgStore::for_each_active(const std::function<void(const ScheduleEntry&)>& f) const {
  const std::string what = "load the schedule";
  std::lock_guard lock(impl_->mutex);
  if (auto r = impl_->ready(what); !r) return r.error();
  // A cursor, read a slice at a time: a million active jobs are never one result in memory.
  auto tx = pg::Transaction::begin(impl_->c, kSnapshot);
  if (!tx) return fail(what, tx.error());
  if (auto r = impl_->c.run("DECLARE personad_schedule NO SCROLL CURSOR FOR "
                            "SELECT id, state, next_poll_at, needs_operator FROM jobs "
                            "WHERE state IN " PERSONAD_ACTIVE_STATES);
      !r)
    return fail(what, r.error());
  for (;;) {
    auto rows = impl_->c.run("FETCH 10000 FROM personad_schedule");
    if (!rows) return fail(what, rows.error());
    if (rows->empty()) break;
    for (int r = 0; r < rows->size(); ++r) {
      ScheduleEntry e;
      e.id = rows->int64(r, 0);
      const auto state = parse_state(rows->text(r, 1));
      if (!state) return fail(what, make_error("unknown state '" + rows->text(r, 1) + "'"));
      e.state = *state;
      e.due = from_ms(rows->optional_int64(r, 2));
      e.needs_operator = rows->boolean(r, 3);
      f(e);
    }
  }
  if (auto r = impl_->c.run("CLOSE personad_schedule"); !r) return fail(what, r.error());
  if (auto r = tx->commit(); !r) return fail(what + " (commit)", r.error());
  return {};
}

Result<void> PgStore::begin_group() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->in_group) return make_error(ErrorKind::internal, "store: a group is already open");
  if (auto r = impl_->writable("group"); !r) return r.error();
  if (auto r = impl_->ready("begin a group of writes"); !r) return r.error();
  if (auto r = impl_->c.run("BEGIN"); !r) return fail("begin a group of writes", r.error());
  // Once per group: the lease row stays locked (FOR SHARE) until the group ends.
  if (auto r = impl_->check_fence("a group of writes"); !r) {
    (void)impl_->c.run("ROLLBACK");
    return r.error();
  }
  impl_->in_group = true;
  return {};
}

Result<void> PgStore::end_group() {
  std::lock_guard lock(impl_->mutex);
  if (!impl_->in_group) return make_error(ErrorKind::internal, "store: no group is open");
  impl_->in_group = false;
  const std::string what = "commit a group of writes";
  // A connection that broke and came back holds no transaction: COMMIT would only warn.
  if (!impl_->c.in_transaction())
    return make_error(ErrorKind::io, "store: " + what + ": the transaction was lost (" +
                                         impl_->c.describe() + "); none of its writes happened");
  auto r = impl_->c.run("COMMIT");
  if (r && r->command() == "COMMIT") return {};
  Error e = r ? make_error(ErrorKind::io, "store: " + what + ": the transaction had failed and "
                                          "was rolled back")
              : fail(what, r.error());
  if (impl_->c.in_transaction()) (void)impl_->c.run("ROLLBACK");
  return e;
}

void PgStore::abort_group() {
  std::lock_guard lock(impl_->mutex);
  impl_->in_group = false;
  if (impl_->c.in_transaction()) (void)impl_->c.run("ROLLBACK");
}

}  // namespace

bool is_lease_lost(const Error& e) {
  return e.kind == ErrorKind::conflict && e.message.starts_with(kLeaseLost);
}

Result<std::unique_ptr<Store>> open_pg_store(const PgTarget& target, OpenMode mode,
                                             std::optional<PgFence> fence) {
  auto c = Connection::connect(target, "personad");
  if (!c) return fail("open", c.error());
  auto version = identify(*c);
  if (!version) return version.error();
  if (mode == OpenMode::read_write) {
    version = migrate(*c, *version);
    if (!version) return version.error();
  } else {
    if (auto r = require_current(*version, *c); !r) return r.error();
    // The server refuses every write of this session, whatever a bug might try.
    if (auto r = c->set_session("SET default_transaction_read_only = on"); !r)
      return fail("open " + c->describe(), r.error());
  }
  auto impl = std::make_unique<PgImpl>();
  impl->c = std::move(*c);
  impl->mode = mode;
  impl->version = *version;
  impl->fence = std::move(fence);
  return std::unique_ptr<Store>(new PgStore(std::move(impl)));
}

}  // namespace personad
