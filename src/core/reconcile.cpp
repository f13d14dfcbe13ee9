// What became of a lost create (see reconcile.hpp for the rules).
#include "personad/reconcile.hpp"

#include <algorithm>

#include "personad/backoff.hpp"

namespace personad {

namespace {

// Clock skew tolerated between us and the API when matching creation times.
constexpr Millis kSkew{60'000};

// Whether a listed persona was created by this job according to its fields and time. Used only
// when the API does not return labels in its list.
bool fields_match(const Job& job, const RemotePersona& p) {
  const PersonaSpec& s = job.spec;
  if (p.creator_name != s.creator_name || p.gender != s.gender ||
      p.video_scene != s.video_scene || p.keywords != s.keywords)
    return false;
  if (!job.submitting_since || !p.created_at) return true;  // no time to compare: fields decide
  return *p.created_at >= *job.submitting_since - kSkew;
}

std::string ids_of(const std::vector<const RemotePersona*>& ps) {
  std::string ids;
  for (const auto* p : ps) ids += (ids.empty() ? "" : ", ") + p->id;
  return ids;
}

ReconcileDecision flag(std::string reason) {
  ReconcileDecision d;
  d.verdict = ReconcileVerdict::flag;
  d.reason = std::move(reason);
  return d;
}

}  // namespace

std::vector<std::string> owner_checks(const Job& job, const Listing& listing) {
  const std::string label = client_label(job.client_ref);
  std::vector<std::string> ids;
  bool any_labels = false;
  for (const auto& p : listing.items) {
    any_labels = any_labels || p.has_labels;
    if (std::find(p.labels.begin(), p.labels.end(), label) != p.labels.end()) ids.push_back(p.id);
  }
  if (!ids.empty() || any_labels) return ids;
  for (const auto& p : listing.items)
    if (fields_match(job, p)) ids.push_back(p.id);
  return ids;
}

TimePoint absence_proof_after(const Job& job, const ApiConfig& api) {
  // From the later of the send and the failure: a create whose answer timed out may still be
  // in the server's hands when we give up on it, and gets reconcile_after from then on.
  TimePoint base = job.last_sent_at.value_or(job.submitting_since.value_or(job.created_at));
  if (job.unknown_since) base = std::max(base, *job.unknown_since);
  return add_saturating(base, api.reconcile_after);
}

TimePoint reconcile_deadline(const Job& job, const ApiConfig& api) {
  const TimePoint since = job.unknown_since.value_or(job.last_sent_at.value_or(job.created_at));
  return add_saturating(since, api.reconcile_give_up);
}

ReconcileDecision decide_reconcile(const Job& job, const SharedListingResult& listing,
                                   TimePoint now, const ApiConfig& api, const RemoteOwner& owner,
                                   double unit_random) {
  const TimePoint deadline = reconcile_deadline(job, api);
  const std::string label = client_label(job.client_ref);

  if (listing.outcome == Outcome::permanent || listing.outcome == Outcome::unauthorized)
    return flag("cannot reconcile: the list of personas answers with a permanent error (" +
                listing.message + "); check api.list_path and the credentials, then personactl "
                "resolve " + job.key + " --adopt REMOTE_ID | --resubmit");
  if (listing.outcome != Outcome::ok || !listing.value) {
    if (now >= deadline)
      return flag("cannot reconcile: no list of personas within " +
                  format_duration(api.reconcile_give_up) + " (last error: " + listing.message +
                  "); personactl resolve " + job.key + " --adopt REMOTE_ID | --resubmit");
    ReconcileDecision d;
    d.verdict = ReconcileVerdict::retry;
    d.errors = job.errors + 1;
    d.at = std::min(add_saturating(now, retry_delay(api, d.errors, listing.retry_after, unit_random)),
                    deadline);
    d.reason = listing.message;
    return d;
  }

  const auto& items = listing.value->items;
  const std::string listed = std::to_string(items.size()) + " listed";

  // Evidence, strongest first: our label on a listed persona.
  std::vector<const RemotePersona*> by_label;
  bool any_labels = false;
  for (const auto& p : items) {
    any_labels = any_labels || p.has_labels;
    if (std::find(p.labels.begin(), p.labels.end(), label) != p.labels.end())
      by_label.push_back(&p);
  }
  if (!by_label.empty()) {
    // Several with our label would be the API's duplicate, not ours: adopt the oldest.
    std::stable_sort(by_label.begin(), by_label.end(), [](auto* a, auto* b) {
      return a->created_at.value_or(TimePoint{}) < b->created_at.value_or(TimePoint{});
    });
    const RemotePersona& p = *by_label.front();
    if (auto holder = owner(p.id); holder && *holder != job.id)
      return flag("reconcile found remote persona " + p.id + " with " + label +
                  ", but it belongs to another job; personactl resolve " + job.key);
    ReconcileDecision d;
    d.verdict = ReconcileVerdict::adopt;
    d.persona = p;
    d.reason = "reconciled: adopted remote persona " + p.id + " found by label " + label +
               " among " + listed;
    if (by_label.size() > 1)
      d.reason += " (" + std::to_string(by_label.size()) + " carry the label: " + ids_of(by_label) +
                  "; the oldest is adopted)";
    return d;
  }

  if (!any_labels) {
    // The list carries no labels: fall back to the submitted fields and the creation time.
    std::vector<const RemotePersona*> matches;
    for (const auto& p : items) {
      if (!fields_match(job, p)) continue;
      if (auto holder = owner(p.id); holder && *holder != job.id) continue;  // another job's
      matches.push_back(&p);
    }
    if (matches.size() == 1) {
      ReconcileDecision d;
      d.verdict = ReconcileVerdict::adopt;
      d.persona = *matches.front();
      d.reason = "reconciled: adopted remote persona " + matches.front()->id +
                 " found by matching creator_name, gender, video_scene, keywords and creation "
                 "time among " + listed;
      return d;
    }
    if (matches.size() > 1) {
      ReconcileDecision d;
      d.verdict = ReconcileVerdict::ambiguous;
      for (const auto* p : matches) d.candidates.push_back(p->id);
      d.reason = "reconcile ambiguous: " + std::to_string(matches.size()) +
                 " remote personas match (" + ids_of(matches) + "); waiting for personactl "
                 "resolve " + job.key + " --adopt REMOTE_ID | --resubmit";
      return d;
    }
  }

  // Not listed. Absence is proved only by a listing fresh enough (see reconcile.hpp).
  const TimePoint proof_after = absence_proof_after(job, api);
  if (listing.value->started_at < proof_after) {
    ReconcileDecision d;
    d.verdict = ReconcileVerdict::wait;
    d.at = std::max(proof_after, now);
    d.reason = "not listed yet (" + listed + "); the API gets until " + format_rfc3339(proof_after) +
               " to show the create";
    return d;
  }
  ReconcileDecision d;
  d.verdict = ReconcileVerdict::resend;
  const TimePoint sent = job.last_sent_at.value_or(job.submitting_since.value_or(job.created_at));
  d.reason = "reconciled: no persona with " + label + " among " + listed + " in a list started " +
             format_duration(std::chrono::duration_cast<Millis>(listing.value->started_at - sent)) +
             " after the last create; submitting again";
  return d;
}

}  // namespace personad
