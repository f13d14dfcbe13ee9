// What an operator's cancel or retry does to one job, decided apart from its effects: the
// tracker commits the plan for one key (personactl cancel KEY) and for a whole selection
// (personactl cancel --state …), so both follow the same rules by construction.
#pragma once

#include <functional>
#include <string>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/result.hpp"

namespace personad {

// The job as it is to be written, the state it goes to, the history's reason and the short
// message personactl prints.
struct ActionPlan {
  Job job;
  State to = State::cancelled;
  std::string reason;
  std::string message;
};

// cancel: any non-final job. ErrorKind::conflict (not allowed: the job's state says why).
Result<ActionPlan> plan_cancel(const Job& job);

// retry: expired → pending (polling resumes for give_up_after); failed because its persona went
// missing → pending (polling resumes); failed → queued with a fresh client_ref from `new_ref`,
// only with `resubmit` (creating it anew costs credits). ErrorKind::conflict otherwise.
Result<ActionPlan> plan_retry(const Job& job, bool resubmit, TimePoint now, Millis give_up_after,
                              const std::function<std::string()>& new_ref);

// The bulk actions of personactl.
enum class BulkAction { cancel, retry };
const char* to_string(BulkAction a);

}  // namespace personad
