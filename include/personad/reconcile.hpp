// Deciding what became of a create whose answer was lost: a pure function of the job, a
// listing of the API's personas and the time, with the evidence it used. No I/O.
//
// The freshness rule (the heart of exactly-once): a listing may show that a create EXISTS
// whenever it was taken, but it may prove a create ABSENT only if it was started
//   - after the create's failure was seen (unknown_since): before that, the request may still
//     have been in the client's queue, on the wire or in the server's hands; and
//   - reconcile_after after that (so also after last_sent_at + reconcile_after): the time the
//     API gets to store and list a create it was still working on when we gave up on it.
// An older listing is never reused to resend. So a create is resent only if the API stored
// nothing within api.timeout + api.reconcile_after of its sending (the documented assumption).
// A create of unknown outcome that cannot be reconciled by unknown_since +
// api.reconcile_give_up (the list keeps failing) or meets a permanent list error waits for the
// operator (`personactl resolve`); it is never resent on its own without proof.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "personad/config.hpp"
#include "personad/creatify_api.hpp"
#include "personad/job.hpp"
#include "personad/remote_list.hpp"

namespace personad {

enum class ReconcileVerdict {
  adopt,      // one remote persona is this job's: take its id (pending)
  ambiguous,  // several could be: the operator decides
  wait,       // not listed, but the listing is not fresh enough to prove absence: look again at `at`
  resend,     // proved absent: send the create again
  retry,      // no listing (transient error): try again at `at`
  flag,       // give up on our own: the operator decides (permanent list error, deadline)
};

struct ReconcileDecision {
  ReconcileVerdict verdict = ReconcileVerdict::retry;
  std::optional<RemotePersona> persona;  // adopt
  std::vector<std::string> candidates;   // ambiguous: remote ids
  TimePoint at{};                        // wait, retry
  std::int64_t errors = 0;               // consecutive list failures after this one
  std::string reason;                    // the evidence, for the transition or the log line
};

// The earliest start of a listing that may prove this job's latest create absent.
TimePoint absence_proof_after(const Job& job, const ApiConfig& api);
// When reconciling on its own ends (unknown_since + reconcile_give_up).
TimePoint reconcile_deadline(const Job& job, const ApiConfig& api);

// Which job (id) already holds a remote persona, if any.
using RemoteOwner = std::function<std::optional<std::int64_t>(std::string_view remote_id)>;

// The remote ids decide_reconcile may ask `owner` about (so a caller can look them up first):
// the personas carrying the job's label, or, when the list carries no labels, those whose
// fields match.
std::vector<std::string> owner_checks(const Job& job, const Listing& listing);

// `job` must have unknown_since set (the tracker sets it at its first look after a failure or
// a restart). `listing` comes from SharedListing::get (value set when the outcome is ok).
ReconcileDecision decide_reconcile(const Job& job, const SharedListingResult& listing,
                                   TimePoint now, const ApiConfig& api, const RemoteOwner& owner,
                                   double unit_random);

}  // namespace personad
