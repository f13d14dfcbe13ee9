// The JSON shapes of the contract: job objects, history rows and stats, as printed by
// `personactl --json` and served on the control socket; and specs sent by `personactl submit`.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <vector>

#include "personad/job.hpp"
#include "personad/result.hpp"
#include "personad/store.hpp"

namespace personad {

// {key, state, remote_id, remote_status, failed_reason, client_ref, created_at, submitted_at,
//  updated_at, next_poll_at, polls, attempts, spec, …}; times RFC 3339 or null.
boost::json::object job_to_json(const Job& job);
// What a job object shows beyond its row (issue 9), decided by the caller from the time, the
// config and the history: `stuck` always; for a non-final job `eta`, `eta_p90` (RFC 3339 or
// null) and `eta_basis` ("observed" | "documented", null without an estimate).
struct JobEstimate {
  std::optional<TimePoint> eta;
  std::optional<TimePoint> eta_p90;
  std::string basis;  // "observed" | "documented"
};
struct JobAnnotations {
  bool stuck = false;
  std::optional<JobEstimate> estimate;
};
boost::json::object job_to_json(const Job& job, const JobAnnotations& annotations);
// The request fields as submitted (labels as sent, personad's own included).
boost::json::object spec_as_sent_json(const PersonaSpec& spec, std::string_view client_ref);
// [{at, from, to, remote_status, reason}], oldest first.
boost::json::array history_to_json(const std::vector<Transition>& history);
// {counts: {state: n…}, polls, attempts, next_due_at, next_due_key, total}
boost::json::object stats_to_json(const StoreStats& stats);

// JSON output must be valid UTF-8 (RFC 8259), but Boost.JSON writes a string's bytes as they
// are. Text that came from outside (a key from a URL, an API's failed_reason) may hold any
// bytes: every rendering here passes through make_valid_utf8, and other writers of JSON
// (control replies, personactl) can too.
// `s` when it is valid UTF-8, else a copy with each invalid byte replaced by U+FFFD.
std::string valid_utf8(std::string_view s);
bool is_valid_utf8(std::string_view s);
// Every string and object key in `v` made valid UTF-8 (in place; cheap when already valid).
void make_valid_utf8(boost::json::value& v);
void make_valid_utf8(boost::json::object& o);
void make_valid_utf8(boost::json::array& a);

// A spec as the operator wrote it (key included), for the control socket.
boost::json::object spec_to_json(const PersonaSpec& spec);
// Reads a spec object; errors name the field.
Result<PersonaSpec> spec_from_json(const boost::json::value& v);

}  // namespace personad
