// JSON renderings of jobs, history and stats (see job_json.hpp).
#include "personad/job_json.hpp"

namespace personad {

namespace json = boost::json;

namespace {

json::value opt_string(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

json::value opt_time(const std::optional<TimePoint>& t) {
  return t ? json::value(format_rfc3339(*t)) : json::value(nullptr);
}

json::value empty_as_null(const std::string& s) {
  return s.empty() ? json::value(nullptr) : json::value(s);
}

json::array string_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

void put_request_fields(json::object& o, const PersonaSpec& s,
                        const std::vector<std::string>& labels) {
  o["gender"] = s.gender;
  o["creator_name"] = s.creator_name;
  o["video_scene"] = s.video_scene;
  o["keywords"] = empty_as_null(s.keywords);
  o["lipsync_input"] = s.lipsync_input;
  o["consent_video"] = empty_as_null(s.consent_video);
  o["labels"] = string_array(labels);
  o["webhook_url"] = empty_as_null(s.webhook_url);
  o["gdown_url"] = empty_as_null(s.gdown_url);
}

}  // namespace

json::object spec_as_sent_json(const PersonaSpec& spec, std::string_view client_ref) {
  json::object o;
  put_request_fields(o, spec, labels_as_sent(spec, client_ref));
  return o;
}

json::object job_to_json(const Job& j) {
  json::object o;
  o["key"] = j.key;
  o["state"] = to_string(j.state);
  o["remote_id"] = opt_string(j.remote_id);
  o["remote_status"] = opt_string(j.remote_status);
  o["failed_reason"] = opt_string(j.failed_reason);
  o["client_ref"] = j.client_ref;
  o["created_at"] = format_rfc3339(j.created_at);
  o["submitted_at"] = opt_time(j.submitted_at);
  o["updated_at"] = format_rfc3339(j.updated_at);
  o["next_poll_at"] = is_final(j.state) ? json::value(nullptr) : opt_time(j.next_poll_at);
  o["polls"] = j.polls;
  o["attempts"] = j.attempts;
  o["spec"] = spec_as_sent_json(j.spec, j.client_ref);
  o["source"] = j.source;
  o["needs_operator"] = j.needs_operator;
  // Why it waits for `personactl resolve` (null when it does not).
  o["operator_reason"] = j.needs_operator ? opt_string(j.operator_reason) : json::value(nullptr);
  o["errors"] = j.errors;
  return o;
}

json::array history_to_json(const std::vector<Transition>& history) {
  json::array a;
  for (const auto& t : history) {
    json::object o;
    o["at"] = format_rfc3339(t.at);
    o["from"] = t.from ? json::value(to_string(*t.from)) : json::value(nullptr);
    o["to"] = to_string(t.to);
    o["remote_status"] = empty_as_null(t.remote_status);
    o["reason"] = t.reason;
    a.push_back(std::move(o));
  }
  return a;
}

json::object stats_to_json(const StoreStats& s) {
  json::object counts;
  std::int64_t total = 0;
  for (State st : all_states()) {
    auto it = s.counts.find(st);
    std::int64_t n = it == s.counts.end() ? 0 : it->second;
    counts[to_string(st)] = n;
    total += n;
  }
  json::object o;
  o["counts"] = std::move(counts);
  o["total"] = total;
  o["polls"] = s.polls;
  o["attempts"] = s.attempts;
  o["needs_operator"] = s.needs_operator;
  o["next_due_at"] = opt_time(s.next_due);
  o["next_due_key"] = opt_string(s.next_due_key);
  return o;
}

json::object spec_to_json(const PersonaSpec& spec) {
  json::object o;
  o["key"] = spec.key;
  put_request_fields(o, spec, spec.labels);
  return o;
}

namespace {

// Reads an optional string field; null and absent both mean empty.
Result<std::string> read_string(const json::object& o, std::string_view field) {
  auto it = o.find(field);
  if (it == o.end() || it->value().is_null()) return std::string();
  if (!it->value().is_string())
    return make_error("field '" + std::string(field) + "': expected a string");
  return std::string(it->value().get_string());
}

}  // namespace

Result<PersonaSpec> spec_from_json(const json::value& v) {
  if (!v.is_object()) return make_error("persona: expected a JSON object");
  const auto& o = v.get_object();
  for (const auto& kv : o)
    if (kv.key() != "labels" && find_spec_text_field(kv.key()) == nullptr)
      return make_error("field '" + std::string(kv.key()) + "': unknown field");
  PersonaSpec s;
  for (const auto& [name, member] : kSpecTextFields) {
    auto r = read_string(o, name);
    if (!r) return r.error();
    s.*member = std::move(*r);
  }
  if (auto it = o.find("labels"); it != o.end() && !it->value().is_null()) {
    if (!it->value().is_array()) return make_error("field 'labels': expected an array of strings");
    for (const auto& l : it->value().get_array()) {
      if (!l.is_string()) return make_error("field 'labels': expected an array of strings");
      s.labels.emplace_back(l.get_string());
    }
  }
  return s;
}

}  // namespace personad
