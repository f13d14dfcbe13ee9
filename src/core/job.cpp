// State names, the allowed transitions, and the mapping of remote statuses onto states.
#include "personad/job.hpp"

#include <algorithm>
#include <array>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <cctype>
#include <cstdint>

namespace personad {

namespace {
constexpr std::array<std::string_view, 7> kStateNames = {
    "queued", "submitting", "pending", "done", "failed", "expired", "cancelled"};
}

std::string_view to_string(State s) { return kStateNames[static_cast<std::size_t>(s)]; }

std::optional<State> parse_state(std::string_view s) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i)
    if (kStateNames[i] == s) return static_cast<State>(i);
  return std::nullopt;
}

const std::vector<State>& all_states() {
  static const std::vector<State> states = {State::queued,  State::submitting, State::pending,
                                            State::done,    State::failed,     State::expired,
                                            State::cancelled};
  return states;
}

bool is_final(State s) {
  return s == State::done || s == State::failed || s == State::expired || s == State::cancelled;
}

bool transition_allowed(State from, State to) {
  if (to == State::cancelled) return !is_final(from);
  switch (from) {
    case State::queued:
      return to == State::submitting;
    case State::submitting:
      // pending: created (or adopted); failed: rejected by the API;
      // queued: known not to have been created (operator's --resubmit);
      // submitting: a create sent again after a reconcile proved the last one absent, or the
      // job flagged for the operator (each worth a history row).
      return to == State::pending || to == State::failed || to == State::queued ||
             to == State::submitting;
    case State::pending:
      // pending → pending records a change of remote_status.
      return to == State::pending || to == State::done || to == State::failed ||
             to == State::expired;
    case State::expired:
      return to == State::pending;  // retry: resume polling
    case State::failed:
      // queued: retry --resubmit, submit anew; pending: retry of a job failed because its
      // remote persona went missing (polling resumes, nothing is created).
      return to == State::queued || to == State::pending;
    case State::done:
    case State::cancelled:
      return false;
  }
  return false;
}

const SpecTextField* find_spec_text_field(std::string_view name) {
  for (const auto& f : kSpecTextFields)
    if (f.name == name) return &f;
  return nullptr;
}

std::string new_client_ref(std::int64_t unix_ms) {
  boost::uuids::random_generator gen;  // the OS entropy source, for each ref
  boost::uuids::uuid id = gen();       // version 4: 122 random bits
  const auto ms = static_cast<std::uint64_t>(std::max<std::int64_t>(unix_ms, 0));
  for (int i = 0; i < 6; ++i) id.data[i] = static_cast<std::uint8_t>(ms >> (8 * (5 - i)));
  id.data[6] = static_cast<std::uint8_t>(0x70 | (id.data[6] & 0x0F));  // version 7
  // id.data[8]'s variant bits (10xx) are the v4 generator's already.
  return boost::uuids::to_string(id);
}

std::string new_client_ref() {
  return new_client_ref(to_unix_ms(SystemClock().now()));
}

bool is_local_media(std::string_view value) {
  auto starts = [&](std::string_view p) {
    if (value.size() < p.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(value[i])) != p[i]) return false;
    return true;
  };
  return !value.empty() && !starts("http://") && !starts("https://");
}

std::string client_label(std::string_view client_ref) {
  return "personad:" + std::string(client_ref);
}

std::vector<std::string> labels_as_sent(const PersonaSpec& spec, std::string_view client_ref) {
  std::vector<std::string> labels = spec.labels;
  labels.push_back(client_label(client_ref));
  return labels;
}

RemoteVerdict classify_remote(const StatusPolicy& policy, std::string_view status,
                              bool is_active) {
  auto in = [&](const std::vector<std::string>& set) {
    return std::find(set.begin(), set.end(), status) != set.end();
  };
  if (in(policy.failed_statuses)) return RemoteVerdict::failed;
  if (in(policy.done_statuses))
    return (!policy.require_active || is_active) ? RemoteVerdict::done : RemoteVerdict::pending;
  return RemoteVerdict::pending;
}

bool awaiting_approval(const StatusPolicy& policy, std::string_view status, bool is_active) {
  return policy.require_active && !is_active &&
         std::find(policy.done_statuses.begin(), policy.done_statuses.end(), status) !=
             policy.done_statuses.end();
}

bool is_documented_status(std::string_view s) {
  static constexpr std::array<std::string_view, 9> kDocumented = {
      "pending",  "processing", "voice_creating", "video_validating", "crop_and_matte",
      "reviewing", "done",      "failed",         "rejected"};
  return std::find(kDocumented.begin(), kDocumented.end(), s) != kDocumented.end();
}

ActiveCohort cohort_of(const Job& job) {
  return ActiveCohort{.state = job.state,
                      .remote_status = job.remote_status.value_or(""),
                      .entry = job.status_since.value_or(job.updated_at),
                      .submitted = job.submitted_at,
                      .jobs = 1};
}

}  // namespace personad
