// JSON shapes the simulator sends: the persona object (as in the API's documented sample) and
// the webhook payload. Kept apart from the lifecycle so the book stays free of presentation.
#pragma once

#include <boost/json/object.hpp>
#include <string>

#include "persona_book.hpp"

namespace creatify_sim {

// Field order follows the API's sample response; `is_active` comes last.
boost::json::object persona_to_json(const Persona& p, const PersonaStatus& s, bool with_labels);

// {"id", "status", "process_status", "failed_reason"}
std::string webhook_payload(const WebhookCall& call);

}  // namespace creatify_sim
