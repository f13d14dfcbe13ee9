// The meaning of a status poll's answer (see poll_outcome.hpp).
#include "personad/poll_outcome.hpp"

#include <algorithm>

#include "personad/backoff.hpp"

namespace personad {

TimePoint expiry_of(const Job& job, const PollConfig& poll) {
  if (job.expires_at) return *job.expires_at;
  return expiry_time(poll, job.submitted_at.value_or(job.created_at));
}

TimePoint expiry_grace_end(const Job& job, const PollConfig& poll, const ApiConfig& api) {
  return add_saturating(expiry_of(job, poll), api.retry_max);
}

PollDecision decide_poll(const Job& job, const ApiResult<RemotePersona>& r, TimePoint now,
                         const ApiConfig& api, const PollConfig& poll, double unit_random) {
  PollDecision d;
  const TimePoint expires = expiry_of(job, poll);
  const std::string remote = job.remote_id.value_or("?");

  if (r.outcome != Outcome::ok) {
    const bool missing =
        r.outcome == Outcome::permanent && (r.http_status == 404 || r.http_status == 410);
    if (missing) {
      d.missing_since = job.missing_since.value_or(now);
      d.missing_count = job.missing_count + 1;
      if (d.missing_count >= kMissingAnswers && now - *d.missing_since >= kMissingFor) {
        d.verdict = PollVerdict::failed;
        d.failed_reason = "remote persona " + remote + " not found (HTTP " +
                          std::to_string(r.http_status) + ", " + std::to_string(d.missing_count) +
                          " answers over " +
                          format_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *d.missing_since)) +
                          ")";
        d.reason = *d.failed_reason + "; personactl retry resumes polling if it comes back";
        return d;
      }
    }
    // An API that never answers still lets the job expire, one retry window after its time.
    const TimePoint grace_end = expiry_grace_end(job, poll, api);
    if (now >= grace_end) {
      d.verdict = PollVerdict::expired;
      d.reason = "no final status within " + format_duration(poll.give_up_after) +
                 "; the last polls failed: " + r.message;
      return d;
    }
    d.verdict = PollVerdict::retry;
    d.errors = job.errors + 1;
    d.reason = r.message;
    // Never later than the end of the grace: that step decides the expiry.
    d.next_at = std::min(add_saturating(now, retry_delay(api, d.errors, r.retry_after, unit_random)),
                         grace_end);
    if (missing) {
      // Look again soon enough to see it persist: a fraction of the window, not the backoff.
      const Millis step = kMissingFor / (kMissingAnswers - 1);
      d.next_at = std::min(std::max(d.next_at, add_saturating(now, step / 2)),
                           add_saturating(now, step));
      d.next_at = std::min(d.next_at, grace_end);
      d.reason += " (missing " + std::to_string(d.missing_count) + " of " +
                  std::to_string(kMissingAnswers) + " times before the job fails)";
    } else {
      d.missing_since = job.missing_since;
      d.missing_count = job.missing_count;
    }
    return d;
  }

  const RemotePersona& p = r.value;
  d.answered = true;
  d.remote_status = p.process_status;
  const std::string previous = job.remote_status.value_or("");
  switch (classify_remote(api.status, p.process_status, p.is_active)) {
    case RemoteVerdict::done:
      d.verdict = PollVerdict::done;
      d.reason = "process_status=" + p.process_status +
                 " is_active=" + (p.is_active ? "true" : "false");
      return d;
    case RemoteVerdict::failed:
      d.verdict = PollVerdict::failed;
      d.failed_reason = p.failed_reason.empty() ? p.process_status : p.failed_reason;
      d.reason = "process_status=" + p.process_status + ": " + *d.failed_reason;
      return d;
    case RemoteVerdict::pending:
      break;
  }
  if (now >= expires) {
    d.verdict = PollVerdict::expired;
    d.reason = "no final status within " + format_duration(poll.give_up_after) +
               " (last process_status=" + p.process_status + ")";
    return d;
  }
  d.verdict = PollVerdict::pending;
  d.next_at = std::min(next_poll_after(poll, job.submitted_at.value_or(job.created_at),
                                       job.polls + 1, now, unit_random),
                       expires);
  d.status_changed = previous != p.process_status;
  if (d.status_changed) {
    d.reason = "process_status " + (previous.empty() ? std::string("none") : previous) + " → " +
               p.process_status;
    if (awaiting_approval(api.status, p.process_status, p.is_active))
      d.reason += " (awaiting approval: is_active=false)";
  }
  return d;
}

}  // namespace personad
