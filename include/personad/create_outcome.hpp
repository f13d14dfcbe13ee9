// What the answer to a create request means for its job: a pure decision, no I/O. The tracker
// commits what it says; tests read the rules here without an event loop.
#pragma once

#include <string>

#include "personad/creatify_api.hpp"

namespace personad {

enum class CreateVerdict {
  created,   // 2xx with a persona: adopt its id (pending)
  rejected,  // the API (or a local file) refused it for good: the job fails, nothing is resent
  not_sent,  // certainly not created (never left, incomplete, 401/403): send again later
  unknown,   // may exist remotely: only a reconcile may decide
};

struct CreateDecision {
  CreateVerdict verdict = CreateVerdict::unknown;
  std::string reason;  // for the transition or the log line
};

CreateDecision decide_create(const ApiResult<RemotePersona>& answer);

}  // namespace personad
