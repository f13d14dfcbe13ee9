// The SQLite store: the truth about every job and every transition. Opens the database (WAL,
// busy_timeout, foreign keys), applies embedded migrations, and reads and writes in transactions.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/result.hpp"
#include "personad/selection.hpp"

struct sqlite3;

namespace personad {

enum class OpenMode { read_write, read_only };
// Whether Store::open runs PRAGMA quick_check (it reads the whole file: ~0.2 s per 100,000
// jobs). by_caller: the caller runs Store::check_integrity itself, before it writes anything
// (the daemon: beside its start-up load, on a connection of its own); a file that needs a
// migration is checked at open all the same, since migrating writes.
enum class IntegrityCheck { at_open, by_caller };

struct EnqueueOutcome {
  std::string key;
  bool inserted = false;      // false: the key was already known and nothing changed
  State state = State::queued;
  bool spec_changed = false;  // known key whose stored spec differs from the one offered
  std::int64_t job_id = 0;
  std::string client_ref;  // of the new job (inserted only)
};

// A key whose job was archived (personactl archive): its row is gone, the key stays taken.
struct ArchivedKey {
  std::string key;
  State state = State::done;  // the final state it was archived in
  TimePoint archived_at{};
  std::string file;
};

// A batch file the daemon enqueued whole (every entry a known key now), by its path.
struct RememberedBatch {
  std::string fingerprint;  // batch_fingerprint of the content enqueued
  std::int64_t entries = 0;
  TimePoint intaken_at{};   // when it was remembered
};

struct StoreStats {
  std::map<State, std::int64_t> counts;  // every state present, zero included
  std::int64_t polls = 0;                // status polls made, all jobs
  std::int64_t attempts = 0;             // create requests sent, all jobs
  std::int64_t needs_operator = 0;       // non-final jobs waiting for `personactl resolve`
  std::optional<TimePoint> next_due;     // earliest next_poll_at of a non-final job
  std::optional<std::string> next_due_key;
};

// What scheduling needs of an active job.
struct ScheduleEntry {
  std::int64_t id = 0;
  State state = State::queued;
  std::optional<TimePoint> due;  // next_poll_at
  bool needs_operator = false;
};

// How a selection is read (beside the Selection itself, which is the operator's words).
struct SelectOptions {
  // Selection::stuck: non-final jobs whose state and remote status last changed before this
  // (now − [alerts] stuck_after).
  TimePoint stuck_before{};
  // Count the matching jobs after the page (JobPage::more): a second pass over an index.
  bool count_more = false;
};

struct JobPage {
  std::vector<Job> jobs;  // in the selection's order: created_at, then key
  bool has_more = false;  // matching jobs follow the page (only with a limit)
  std::int64_t more = 0;  // how many (counted with SelectOptions::count_more, else 0)
};

// The truth about every job and every transition, behind one interface: SQLite is the backend
// (Store::open); tests wrap it to inject faults, and a PostgreSQL backend is planned.
//
// Every write checks the transition table (transition_allowed) and that the row is still in
// the state the caller read it in: a step that lost a race with an operator's action gets an
// ErrorKind::conflict and writes nothing. Other failures are ErrorKind::io.
class Store {
 public:
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Opens (read_write: creating and migrating) the SQLite database at `path`. A file that is
  // not a SQLite database, or one from a newer personad, is an error: never silently recreated.
  static Result<std::unique_ptr<Store>> open(const std::string& path, OpenMode mode,
                                             IntegrityCheck check = IntegrityCheck::at_open);
  // The check open() makes (at_open), on a read-only connection of its own: an error naming
  // the file and the first problems quick_check found when it is damaged.
  static Result<void> check_integrity(const std::string& path);

  virtual int schema_version() const = 0;

  // Intake. Inserts each spec whose key is unknown as `queued` with a fresh client_ref (from
  // `new_ref`) and a first transition (none → queued, reason `reason`), all in one transaction.
  // Known keys are left untouched and reported with their state.
  virtual Result<std::vector<EnqueueOutcome>> enqueue(const std::vector<PersonaSpec>& specs,
                                                      std::string_view source,
                                                      std::string_view reason, TimePoint now,
                                                      const std::function<std::string()>& new_ref) = 0;

  // One committed transaction (fsync'd): the job row as given and the transition row, which
  // must go from the row's stored state (transition.from) to job.state along the table.
  virtual Result<void> apply(const Job& job, const Transition& transition) = 0;
  // The job row only (poll counters, schedule, remote_status that did not change state); the
  // row must still be in job.state.
  virtual Result<void> update(const Job& job) = 0;
  // A poll that changed neither the state nor the remote status (the same answer, or a failed
  // poll to retry): writes only the poll's columns (polls, errors, next_poll_at, missing_since,
  // missing_count, updated_at), so the entries of the indexes over the other columns are left
  // alone — a third of update()'s cost per poll at 100,000 jobs (bench/README.md). The row must
  // still be in job.state with job.remote_status, else ErrorKind::conflict.
  virtual Result<void> record_poll(const Job& job) = 0;

  virtual Result<std::optional<Job>> find(std::string_view key) const = 0;
  virtual Result<std::optional<Job>> get(std::int64_t id) const = 0;
  virtual Result<std::optional<Job>> find_by_remote_id(std::string_view remote_id) const = 0;
  // The job whose create carries `client_ref` (webhook callbacks name it). The default scans
  // list(); a backend overrides it with its index (client_ref is unique).
  virtual Result<std::optional<Job>> find_by_client_ref(std::string_view client_ref) const;
  virtual Result<std::vector<Job>> list(std::optional<State> state = std::nullopt) const = 0;
  virtual Result<std::vector<Job>> load_active() const = 0;  // every job not in a final state
  virtual Result<std::vector<Transition>> history(std::int64_t job_id) const = 0;
  // The histories of the (at most max_jobs) most recently finished `done` jobs, each oldest
  // first: what estimates learn from (eta.hpp). The default reads list(done) and each history;
  // a backend overrides it with one query.
  virtual Result<std::vector<std::vector<Transition>>> done_histories(std::size_t max_jobs) const;
  // Archive (archive.hpp). find_archived: the key's archive record, if it was archived (the
  // default: none). drop_archived: in one transaction, records each final job's key in the
  // archive and drops its row and history; a job that is not final (any more) is left alone.
  // Returns how many were dropped. The default: not supported (ErrorKind::invalid).
  virtual Result<std::optional<ArchivedKey>> find_archived(std::string_view key) const;
  virtual Result<std::size_t> drop_archived(const std::vector<std::int64_t>& job_ids,
                                            std::string_view file, TimePoint now);
  virtual Result<StoreStats> stats() const = 0;
  // How many non-final jobs have had no change of state or remote status since `stuck_before`:
  // what Selection::stuck selects, counted (/metrics' personad_jobs_stuck). The backends read
  // a range of the index jobs_active_since (0012), so a scrape costs O(stuck jobs), not
  // O(non-final jobs). The default counts a selection.
  virtual Result<std::int64_t> count_stuck(TimePoint stuck_before) const;
  // The active jobs in groups alike for an estimate (ActiveCohort), their entry and submission
  // times floored to a multiple of `bucket`: what a campaign's ETA reads, O(groups) to hold
  // and one index to scan (jobs_active_eta), never the rows. The default groups load_active().
  virtual Result<std::vector<ActiveCohort>> active_cohorts(Millis bucket) const;

  // Batch files enqueued whole, so that a scan of batches.d skips the parse of content it has
  // enqueued before (daemon.cpp). remember_batch replaces what `path` had. Only an
  // optimisation: the defaults remember nothing (a wrapper that does not forward them costs
  // parses, never a skipped file).
  virtual Result<std::optional<RememberedBatch>> remembered_batch(std::string_view path) const;
  virtual Result<void> remember_batch(std::string_view path, std::string_view fingerprint,
                                      std::int64_t entries, TimePoint now);

  // The jobs a selection names, one page of them, in one read snapshot; evaluated by the
  // database (indexes), never by loading every job. A backend must keep the order (created_at,
  // then key in byte order, i.e. a C collation) and the glob semantics of selection.hpp
  // (SQLite's GLOB; elsewhere a translation to LIKE or a regular expression). `after` naming
  // no job is an ErrorKind::invalid error.
  virtual Result<JobPage> select(const Selection& selection, const SelectOptions& options) const = 0;

  // What scheduling needs of every active job, row by row (start-up at a million jobs reads
  // 24 bytes a job, not the whole row). Stops at the first error.
  virtual Result<void> for_each_active(const std::function<void(const ScheduleEntry&)>& f) const = 0;

  // Grouped commits (the store thread). Between begin_group() and end_group() every write runs
  // in one transaction. A write that fails before it changes anything (a conflict: the row is
  // no longer in the state the caller read) leaves the others in the group. end_group()
  // commits them all with one fsync, or (failing) none of them. On SQLite a write that failed
  // after changing rows (disk trouble, a damaged row half-way through an enqueue) fails the
  // group: it has no savepoint to undo it alone (sqlite::Transaction::member); PostgreSQL
  // gives each write a savepoint, since it aborts a transaction at its first failed statement.
  virtual Result<void> begin_group() = 0;
  virtual Result<void> end_group() = 0;
  // Rolls the open group back: none of its writes happened.
  virtual void abort_group() = 0;

 protected:
  Store() = default;
};

}  // namespace personad
