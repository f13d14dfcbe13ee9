// `personactl audit`: the API's personas against the jobs (pure; the listing and the jobs in,
// the findings out). Read-only: it never changes a job or a persona.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <string>
#include <vector>

#include "personad/creatify_api.hpp"
#include "personad/job.hpp"

namespace personad {

struct AuditFindings {
  std::size_t listed = 0;
  // Personas carrying a personad:<client_ref> label that no job holds (neither the label's
  // client_ref nor the persona's id): e.g. created by a personad whose database was lost, or the
  // persona of a failed job resubmitted since.
  std::vector<RemotePersona> orphans;
  // Jobs holding a remote id the listing does not have (deleted on the API's side, or another
  // workspace's).
  std::vector<Job> missing;
  // Personas with no personad label whose id no job holds: created outside personad.
  std::size_t outside = 0;
  // Whether the listing carried labels at all (without them, orphans cannot be told from
  // personas created outside personad: every unheld persona counts as outside).
  bool labels_listed = true;
};

AuditFindings audit(const std::vector<RemotePersona>& listed, const std::vector<Job>& jobs);

// {listed, orphans: [{id, label, process_status, created_at}], missing: [{key, state,
// remote_id}], outside_personad, labels_listed}
boost::json::object audit_to_json(const AuditFindings& f);
// A few lines for a terminal.
std::string audit_text(const AuditFindings& f);

}  // namespace personad
