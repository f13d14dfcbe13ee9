// What both store backends (store.cpp: SQLite, pg_store.cpp: PostgreSQL) share of a job row:
// the spec's stored JSON form, times as UTC milliseconds, the column list every SELECT of a job
// reads, and how a database failure is reported. Private to the stores: the control socket's
// JSON lives in job_json.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>
#include <optional>
#include <string>
#include <string_view>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/result.hpp"

namespace personad::stored {

// The stored form only has to read back exactly what it wrote. One list of the text fields
// (kSpecTextFields in job.hpp) serves both directions, so a field cannot be written and then
// forgotten on the way back; the labels follow.
std::string spec_text(const PersonaSpec& spec);
// Absent fields read as empty (the value of an optional field that was not given); a field of
// the wrong type is an error rather than a silent loss.
Result<PersonaSpec> parse_spec(std::string_view text);
// The texts the specs of an enqueue are stored as, once each is known to read back as the same
// spec; else which one cannot ("enqueue '<key>': ..."). Never store what cannot be read back:
// text that is not valid UTF-8 would serialise but not parse, and one unreadable row would stop
// every start-up load. Both stores call this before an enqueue's first insert, so the one
// failure a caller can cause comes while nothing is written.
Result<std::vector<std::string>> storable_spec_texts(const std::vector<PersonaSpec>& specs);

std::optional<std::int64_t> to_ms(const std::optional<TimePoint>& t);
std::optional<TimePoint> from_ms(const std::optional<std::int64_t>& ms);
std::optional<std::string> null_if_empty(const std::string& s);

// A failure of the database itself (I/O, locking, a damaged row) unless the cause says better.
Error fail(std::string_view what, const Error& cause);

// Why a guarded write changed no row although the job is there: what it is now against what
// the writer expected ("the job is failed now, not pending (changed meanwhile)"; for a poll's
// write, also the remote status).
std::string changed_meanwhile(const std::string& state_now,
                              const std::optional<std::string>& remote_status_now,
                              State expected, const std::optional<std::string>& remote_status);

// Store::active_cohorts' grouping: jobs added one row (or one raw group) at a time, counted per
// (state, remote status, entry, submission) with both times floored to the bucket.
class CohortCounter {
 public:
  explicit CohortCounter(Millis bucket) : bucket_(bucket) {}
  void add(ActiveCohort c);
  std::vector<ActiveCohort> take() const;

 private:
  using Key = std::tuple<State, std::string, TimePoint, std::optional<TimePoint>>;
  Millis bucket_;
  std::map<Key, std::int64_t> jobs_;
};

// The non-final states, as SQL. job.cpp's is_final is the rule; a unit test holds them equal.
#define PERSONAD_ACTIVE_STATES "('queued', 'submitting', 'pending')"
// The same set as a condition on the jobs' state column, for SQLite: the form its partial
// indexes over the non-final jobs use (0011), which a query must repeat word for word to read
// them. (SQLite builds a temporary b-tree for an IN list every time a statement runs.)
#define PERSONAD_SQL_ACTIVE(column) \
  "(" column " = 'queued' OR " column " = 'submitting' OR " column " = 'pending')"

// Every SELECT of a job reads these columns in this order (see JobColumn).
#define PERSONAD_JOB_COLUMNS                                                                  \
  "id, key, state, client_ref, spec, source, remote_id, remote_status, failed_reason, "      \
  "created_at, submitted_at, updated_at, next_poll_at, polls, attempts, errors, "            \
  "submitting_since, needs_operator, send_unknown, last_sent_at, expires_at, unknown_since, " \
  "operator_reason, missing_since, missing_count, status_since, waiting_reason"

enum JobColumn {
  kId, kKey, kState, kClientRef, kSpec, kSource, kRemoteId, kRemoteStatus, kFailedReason,
  kCreatedAt, kSubmittedAt, kUpdatedAt, kNextPollAt, kPolls, kAttempts, kErrors,
  kSubmittingSince, kNeedsOperator, kSendUnknown, kLastSentAt, kExpiresAt, kUnknownSince,
  kOperatorReason, kMissingSince, kMissingCount, kStatusSince, kWaitingReason,
};

}  // namespace personad::stored
