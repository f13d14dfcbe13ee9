// Domain types of a persona creation job and the pure state machine that governs them.
// Nothing here does I/O; the tracker applies these rules and the store persists the results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "personad/clock.hpp"

namespace personad {

enum class State { queued, submitting, pending, done, failed, expired, cancelled };

std::string_view to_string(State s);
std::optional<State> parse_state(std::string_view s);
bool is_final(State s);  // done, failed, expired, cancelled
// Whether the state machine allows from → to (retry/resolve moves included).
bool transition_allowed(State from, State to);
const std::vector<State>& all_states();

// What the operator asked for: the request fields of POST /api/personas_v2/ plus the key.
// Optional text fields are empty when absent. Video fields hold a URL, or an absolute local
// path once intake has resolved it (see is_local_media).
struct PersonaSpec {
  std::string key;
  std::string gender;  // "m", "f" or "nb"
  std::string creator_name;
  std::string video_scene;
  std::string keywords;
  std::string lipsync_input;
  std::string consent_video;
  std::vector<std::string> labels;  // the operator's labels; personad adds its own on send
  std::string webhook_url;
  std::string gdown_url;

  bool operator==(const PersonaSpec&) const = default;
};

// The text fields of a spec under their API names (labels, the one list, is apart), for the
// readers and writers that go field by field: one table, so none can forget a field.
struct SpecTextField {
  std::string_view name;
  std::string PersonaSpec::*member;
};
inline constexpr SpecTextField kSpecTextFields[] = {
    {"key", &PersonaSpec::key},
    {"gender", &PersonaSpec::gender},
    {"creator_name", &PersonaSpec::creator_name},
    {"video_scene", &PersonaSpec::video_scene},
    {"keywords", &PersonaSpec::keywords},
    {"lipsync_input", &PersonaSpec::lipsync_input},
    {"consent_video", &PersonaSpec::consent_video},
    {"webhook_url", &PersonaSpec::webhook_url},
    {"gdown_url", &PersonaSpec::gdown_url},
};
// The spec's text field of that name, or nullptr.
const SpecTextField* find_spec_text_field(std::string_view name);

// A fresh client reference of a job, carried as its label: a time-ordered UUID (version 7,
// RFC 9562): 48 bits of Unix time in milliseconds, then 74 bits from the OS entropy source.
// Refs made later sort later, so the store's unique client_ref index grows at its end (a
// random v4 ref put each new row on a random page of it: many more pages written per commit
// during a big intake). `unix_ms` is for tests; the default is the system clock's now.
std::string new_client_ref();
std::string new_client_ref(std::int64_t unix_ms);
// True when a video field names a local file rather than an http(s) URL.
bool is_local_media(std::string_view value);
// The label that ties a remote persona to its job: "personad:<client_ref>".
std::string client_label(std::string_view client_ref);
// The labels sent with the create request: the operator's, then personad's own.
std::vector<std::string> labels_as_sent(const PersonaSpec& spec, std::string_view client_ref);

struct Job {
  std::int64_t id = 0;
  std::string key;
  State state = State::queued;
  std::string client_ref;  // UUID, fixed for the life of the job
  PersonaSpec spec;
  std::string source;  // batch file path, or "personactl"
  std::optional<std::string> remote_id;
  std::optional<std::string> remote_status;  // the API's process_status, verbatim
  std::optional<std::string> failed_reason;
  TimePoint created_at{};
  std::optional<TimePoint> submitted_at;      // when the API confirmed the create
  TimePoint updated_at{};
  std::optional<TimePoint> next_poll_at;      // next due action (submit, reconcile or poll)
  std::int64_t polls = 0;                     // status polls made
  std::int64_t attempts = 0;                  // create requests sent
  std::int64_t errors = 0;                    // consecutive transient errors (retry backoff)
  std::optional<TimePoint> submitting_since;  // when it entered `submitting`
  std::optional<TimePoint> last_sent_at;      // when the latest create request left
  std::optional<TimePoint> expires_at;        // polling gives up here (submitted_at + give_up_after)
  // The job waits for `personactl resolve` (ambiguous reconcile, reconcile deadline passed, a
  // permanent list error); operator_reason says why.
  bool needs_operator = false;
  std::optional<std::string> operator_reason;
  // A create request may have reached the API and its outcome is not known. Committed (true)
  // before every create leaves; cleared only when the outcome is known.
  bool send_unknown = false;
  // When the tracker first saw that the latest create's outcome is unknown (its failure, or the
  // first look after a restart). The reconcile deadline and the freshness rule count from it.
  std::optional<TimePoint> unknown_since;
  // Polls answered 404/410 in a row: since when, how many. A job fails for a missing persona
  // only when it stays missing (see poll_outcome.hpp); an answer clears both.
  std::optional<TimePoint> missing_since;
  std::int64_t missing_count = 0;
  // When the state or the remote status last changed: kept by the store on every write (read
  // here, never written from this field); `stuck` counts from it (stuck.hpp).
  std::optional<TimePoint> status_since;
  // Why a queued job is not sent yet ("avatar capacity full (N of N)"); empty when it is not
  // held back (capacity.hpp).
  std::optional<std::string> waiting_reason;
};

// Active jobs alike for an estimate (eta.hpp): the same state and remote status, entered at
// the same time (status_since, to the store's bucket), submitted at the same time. A campaign's
// estimate reads these groups (a few hundred) instead of every job's row.
struct ActiveCohort {
  State state = State::queued;
  std::string remote_status;  // "" when the API has said nothing yet
  TimePoint entry{};          // when the state or remote status last changed
  std::optional<TimePoint> submitted;
  std::int64_t jobs = 1;
};
ActiveCohort cohort_of(const Job& job);  // the group of one

struct Transition {
  std::int64_t job_id = 0;
  TimePoint at{};
  std::optional<State> from;  // empty for the first row (creation → queued)
  State to = State::queued;
  std::string remote_status;
  std::string reason;
};

// How a remote process_status maps onto our states (from [api] in the config).
struct StatusPolicy {
  std::vector<std::string> done_statuses{"done"};
  std::vector<std::string> failed_statuses{"failed", "rejected"};
  bool require_active = true;
};

enum class RemoteVerdict { done, failed, pending };

RemoteVerdict classify_remote(const StatusPolicy& policy, std::string_view process_status,
                              bool is_active);
// A done status that waits for approval (require_active and is_active still false).
bool awaiting_approval(const StatusPolicy& policy, std::string_view process_status,
                       bool is_active);
// Whether a status is one the API documents (others are kept verbatim and warned about once).
bool is_documented_status(std::string_view process_status);

}  // namespace personad
