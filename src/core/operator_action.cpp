// Operator actions decided apart from their effects (see operator_action.hpp).
#include "personad/operator_action.hpp"

#include "personad/config.hpp"

namespace personad {

namespace {

Error refuse(std::string message) { return make_error(ErrorKind::conflict, std::move(message)); }

std::string state_name(const Job& job) { return std::string(to_string(job.state)); }

}  // namespace

const char* to_string(BulkAction a) { return a == BulkAction::cancel ? "cancel" : "retry"; }

Result<ActionPlan> plan_cancel(const Job& job) {
  if (is_final(job.state)) return refuse("job '" + job.key + "' is already " + state_name(job));
  std::string reason = "cancelled by operator";
  if (job.state == State::queued) reason += "; nothing was sent";
  if (job.state == State::submitting)
    reason += "; a create may exist remotely with label " + client_label(job.client_ref);
  if (job.state == State::pending)
    reason += "; remote persona " + job.remote_id.value_or("?") + " is no longer tracked";
  return ActionPlan{job, State::cancelled, reason, reason};
}

Result<ActionPlan> plan_retry(const Job& job, bool resubmit, TimePoint now, Millis give_up_after,
                              const std::function<std::string()>& new_ref) {
  ActionPlan p{job, State::pending, {}, {}};
  Job& next = p.job;
  if (job.state == State::expired) {
    next.expires_at = add_saturating(now, give_up_after);
    next.next_poll_at = now;
    next.errors = 0;
    p.reason = "retry by operator: polling resumes for another " + format_duration(give_up_after);
    p.message = "polling resumed";
    return p;
  }
  if (job.state == State::failed && job.missing_since && job.remote_id && !resubmit) {
    // Failed because its persona went missing: it may be back; polling resumes, nothing is
    // created.
    next.missing_since.reset();
    next.missing_count = 0;
    next.failed_reason.reset();
    next.expires_at = add_saturating(now, give_up_after);
    next.next_poll_at = now;
    next.errors = 0;
    p.reason = "retry by operator: remote persona " + *job.remote_id + " was missing; polling resumes";
    p.message = "polling resumed";
    return p;
  }
  if (job.state == State::failed) {
    if (!resubmit)
      return refuse("job '" + job.key + "' failed (" + job.failed_reason.value_or("") +
                    "); creating it anew costs credits: confirm with --resubmit");
    const std::string old_id = job.remote_id.value_or("none");
    next.client_ref = new_ref();  // the old persona keeps the old label
    next.remote_id.reset();
    next.remote_status.reset();
    next.failed_reason.reset();
    next.submitted_at.reset();
    next.expires_at.reset();
    next.submitting_since.reset();
    next.last_sent_at.reset();
    next.unknown_since.reset();
    next.missing_since.reset();
    next.missing_count = 0;
    next.send_unknown = false;
    next.needs_operator = false;
    next.operator_reason.reset();
    next.polls = 0;
    next.errors = 0;
    next.next_poll_at = now;
    p.to = State::queued;
    p.reason = "retry --resubmit by operator: a new create with client_ref " + next.client_ref +
               " (previous remote persona: " + old_id + ")";
    p.message = "queued for a new create";
    return p;
  }
  return refuse("job '" + job.key + "' is " + state_name(job) +
                "; only failed or expired jobs can be retried");
}

}  // namespace personad
