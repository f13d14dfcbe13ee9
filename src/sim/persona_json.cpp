// JSON shapes the simulator sends: persona objects and webhook payloads.
// Optional fields the client did not send are null, as a DRF serializer renders them.
#include "persona_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace creatify_sim {

namespace {

namespace json = boost::json;

json::value optional_string(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

json::value lipsync_url(const Persona& p) {
  // An uploaded file gets a stable fake CDN address, a URL input is echoed back.
  if (p.input.lipsync_upload)
    return json::value("https://cdn.creatify-sim.invalid/uploads/" + p.id + "/" +
                       *p.input.lipsync_upload);
  return json::value(p.input.lipsync_input);
}

}  // namespace

json::object persona_to_json(const Persona& p, const PersonaStatus& s, bool with_labels) {
  json::object o;
  o.reserve(17);
  o["id"] = p.id;
  o["gender"] = p.input.gender;
  o["creator_name"] = p.input.creator_name;
  o["video_scene"] = p.input.video_scene;
  o["keywords"] = optional_string(p.input.keywords);
  o["lipsync_input"] = p.input.lipsync_input;
  o["consent_video"] = optional_string(p.input.consent_video);
  o["lipsync_input_url"] = lipsync_url(p);
  if (with_labels) {
    json::array labels;
    labels.reserve(p.input.labels.size());
    for (const auto& label : p.input.labels) labels.emplace_back(label);
    o["labels"] = std::move(labels);
  }
  o["matching_voice_non_null"] =
      s.voice_ready ? json::value("sim-voice-" + p.id.substr(0, 8)) : json::value(nullptr);
  o["process_status"] = s.process_status;
  o["failed_reason"] = s.failed_reason ? json::value(*s.failed_reason) : json::value(nullptr);
  o["webhook_url"] = optional_string(p.input.webhook_url);
  o["created_at"] = format_rfc3339(p.created_at);
  o["updated_at"] = format_rfc3339(s.updated_at);
  o["gdown_url"] = optional_string(p.input.gdown_url);
  o["is_active"] = s.is_active;
  return o;
}

std::string webhook_payload(const WebhookCall& call) {
  json::object o;
  o["id"] = call.persona_id;
  o["status"] = call.process_status;
  o["process_status"] = call.process_status;
  o["failed_reason"] = optional_string(call.failed_reason);
  return json::serialize(o);
}

}  // namespace creatify_sim
