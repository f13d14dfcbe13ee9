// What both store backends share of a job row (see stored_job.hpp).
#include "personad/stored_job.hpp"

#include <boost/json.hpp>
#include <vector>

namespace personad::stored {

namespace json = boost::json;

namespace {

Result<std::vector<std::string>> labels_from_json(const json::value* v) {
  std::vector<std::string> labels;
  if (v == nullptr) return labels;  // absent: none
  const auto* array = v->if_array();
  if (array == nullptr) return make_error("\"labels\" is not an array");
  for (const auto& item : *array) {
    const auto* s = item.if_string();
    if (s == nullptr) return make_error("\"labels\" holds a value that is not a string");
    labels.emplace_back(*s);
  }
  return labels;
}

}  // namespace

std::string spec_text(const PersonaSpec& spec) {
  json::object o;
  for (const auto& [name, member] : kSpecTextFields) o[name] = spec.*member;
  json::array labels;
  for (const auto& label : spec.labels) labels.emplace_back(label);
  o["labels"] = std::move(labels);
  return json::serialize(o);
}

Result<PersonaSpec> parse_spec(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return make_error("spec is not valid JSON: " + ec.message());
  const auto* o = v.if_object();
  if (o == nullptr) return make_error("spec is not a JSON object");
  PersonaSpec spec;
  for (const auto& [name, member] : kSpecTextFields) {
    const auto* field = o->if_contains(name);
    if (field == nullptr) continue;
    const auto* s = field->if_string();
    if (s == nullptr) return make_error("spec field \"" + std::string(name) + "\" is not a string");
    spec.*member = std::string(*s);
  }
  auto labels = labels_from_json(o->if_contains("labels"));
  if (!labels) return make_error("spec field " + labels.message());
  spec.labels = std::move(*labels);
  return spec;
}

Result<std::vector<std::string>> storable_spec_texts(const std::vector<PersonaSpec>& specs) {
  std::vector<std::string> texts;
  texts.reserve(specs.size());
  for (const auto& spec : specs) {
    auto text = spec_text(spec);
    auto back = parse_spec(text);
    if (!back || *back != spec)
      return fail("enqueue '" + spec.key + "'",
                  make_error("spec does not survive a JSON round trip (is every field valid "
                             "UTF-8?)"));
    texts.push_back(std::move(text));
  }
  return texts;
}

std::optional<std::int64_t> to_ms(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return to_unix_ms(*t);
}

std::optional<TimePoint> from_ms(const std::optional<std::int64_t>& ms) {
  if (!ms) return std::nullopt;
  return from_unix_ms(*ms);
}

std::optional<std::string> null_if_empty(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

Error fail(std::string_view what, const Error& cause) {
  ErrorKind kind = cause.kind == ErrorKind::internal ? ErrorKind::io : cause.kind;
  return make_error(kind, "store: " + std::string(what) + ": " + cause.message);
}

void CohortCounter::add(ActiveCohort c) {
  c.entry = floor_to(c.entry, bucket_);
  if (c.submitted) c.submitted = floor_to(*c.submitted, bucket_);
  jobs_[Key{c.state, std::move(c.remote_status), c.entry, c.submitted}] += c.jobs;
}

std::vector<ActiveCohort> CohortCounter::take() const {
  std::vector<ActiveCohort> out;
  out.reserve(jobs_.size());
  for (const auto& [k, n] : jobs_)
    out.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), n});
  return out;
}

std::string changed_meanwhile(const std::string& state_now,
                              const std::optional<std::string>& remote_status_now,
                              State expected, const std::optional<std::string>& remote_status) {
  if (state_now != to_string(expected))
    return "the job is " + state_now + " now, not " + std::string(to_string(expected)) +
           " (changed meanwhile)";
  if (remote_status_now == remote_status)
    return "the row is not the job it was read as (key or id changed meanwhile)";
  auto shown = [](const std::optional<std::string>& s) { return s ? "'" + *s + "'" : "none"; };
  return "the job's remote status is " + shown(remote_status_now) + " now, not " +
         shown(remote_status) + " (changed meanwhile)";
}

}  // namespace personad::stored
