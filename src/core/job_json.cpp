// JSON renderings of jobs, history and stats (see job_json.hpp).
#include "personad/job_json.hpp"

namespace personad {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// UTF-8 safety

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when the byte there starts none (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  const std::size_t left = s.size() - i;
  auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void fix_string(json::string& s) {
  if (!is_valid_utf8(s)) s = valid_utf8(s);
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

void make_valid_utf8(json::array& a) {
  for (auto& v : a) make_valid_utf8(v);
}

void make_valid_utf8(json::object& o) {
  bool keys_valid = true;
  for (auto& kv : o) {
    make_valid_utf8(kv.value());
    keys_valid = keys_valid && is_valid_utf8(kv.key());
  }
  if (keys_valid) return;
  json::object fixed;
  for (auto& kv : o) fixed[valid_utf8(kv.key())] = std::move(kv.value());
  o = std::move(fixed);
}

void make_valid_utf8(json::value& v) {
  if (auto* s = v.if_string()) fix_string(*s);
  else if (auto* o = v.if_object()) make_valid_utf8(*o);
  else if (auto* a = v.if_array()) make_valid_utf8(*a);
}

// ---------------------------------------------------------------------------------------------
// Renderings

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
  make_valid_utf8(o);
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
  // Why a queued job is held back (capacity); null when it is not.
  o["waiting_reason"] = j.state == State::queued ? opt_string(j.waiting_reason) : json::value(nullptr);
  make_valid_utf8(o);
  return o;
}

json::object job_to_json(const Job& j, const JobAnnotations& a) {
  json::object o = job_to_json(j);
  o["stuck"] = a.stuck;
  if (!is_final(j.state)) {
    const JobEstimate* e = a.estimate ? &*a.estimate : nullptr;
    o["eta"] = e ? opt_time(e->eta) : json::value(nullptr);
    o["eta_p90"] = e ? opt_time(e->eta_p90) : json::value(nullptr);
    o["eta_basis"] = e && !e->basis.empty() ? json::value(e->basis) : json::value(nullptr);
  }
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
  make_valid_utf8(a);
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
  make_valid_utf8(o);
  return o;
}

json::object spec_to_json(const PersonaSpec& spec) {
  json::object o;
  o["key"] = spec.key;
  put_request_fields(o, spec, spec.labels);
  make_valid_utf8(o);
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
