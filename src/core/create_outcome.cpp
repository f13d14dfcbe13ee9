// The meaning of a create's answer (see create_outcome.hpp).
#include "personad/create_outcome.hpp"

namespace personad {

CreateDecision decide_create(const ApiResult<RemotePersona>& r) {
  switch (r.outcome) {
    case Outcome::ok:
      return {CreateVerdict::created, "created (HTTP " + std::to_string(r.http_status) + ")"};
    case Outcome::permanent:
      // A local file that cannot be read stops the upload before (or while) it is sent: the
      // API never saw it, and sending it again cannot help either.
      if (!r.sent) return {CreateVerdict::rejected, "create not sent: " + r.message};
      return {CreateVerdict::rejected, "create rejected by the API: " + r.message};
    case Outcome::unauthorized:
      // 401/403: nothing was created and nothing about this job is at fault.
      return {CreateVerdict::not_sent, r.message};
    case Outcome::transient:
      // 429: the API's rate limiter declined the request before any handler acted on it (as
      // 401/403, it sits in front): certainly not created, so it is sent again after the
      // Retry-After without a reconcile. Every other transient answer leaves it unknown.
      if (r.http_status == 429) return {CreateVerdict::not_sent, r.message};
      return {r.sent ? CreateVerdict::unknown : CreateVerdict::not_sent, r.message};
  }
  return {CreateVerdict::unknown, r.message};
}

}  // namespace personad
