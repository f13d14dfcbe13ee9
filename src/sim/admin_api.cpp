// The simulator's admin endpoints under /_sim/. Bad admin input answers 400 {"detail": ...};
// these endpoints exist for tests and demos, so they favour plain, explicit errors.
#include "admin_api.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <map>

#include "persona_json.hpp"

namespace creatify_sim {

namespace json = boost::json;

namespace {

constexpr std::string_view kPersonasPath = "/_sim/personas";

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

// The request body as a JSON object; an empty body counts as {}.
std::optional<json::object> body_object(const Request& req) {
  if (req.body().empty()) return json::object{};
  boost::system::error_code ec;
  json::value v = json::parse(req.body(), ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

json::object fault_rates_json(const FaultRates& r) {
  return {{"5xx", r.server_error},
          {"429", r.rate_limited},
          {"reset", r.reset},
          {"slow", r.slow},
          {"malformed", r.malformed},
          {"lost_create", r.lost_create},
          {"slow_create", r.slow_create},
          {"list_page", r.list_page},
          {"retry_after_absurd", r.retry_after_absurd}};
}

}  // namespace

Response AdminApi::handle(const Request& req) {
  const std::string_view path = path_of(req.target());
  const bool get = req.method() == http::verb::get;
  const bool post = req.method() == http::verb::post;
  if (path == kPersonasPath) return get ? personas(req) : method_not_allowed(req, "GET");
  if (path.starts_with(kPersonasPath) && path[kPersonasPath.size()] == '/') {
    std::string_view id = path.substr(kPersonasPath.size() + 1);
    if (id.ends_with('/')) id.remove_suffix(1);
    return post ? pin(req, id) : method_not_allowed(req, "POST");
  }
  if (path == "/_sim/stats") return get ? stats(req) : method_not_allowed(req, "GET");
  if (path == "/_sim/faults") {
    if (get) return json_response(req, http::status::ok, fault_rates_json(faults_.rates()));
    return post ? set_faults(req) : method_not_allowed(req, "GET, POST");
  }
  if (path == "/_sim/advance") return post ? advance(req) : method_not_allowed(req, "POST");
  if (path == "/_sim/reset") return post ? reset(req) : method_not_allowed(req, "POST");
  return detail_response(req, http::status::not_found, "Not found.");
}

Response AdminApi::personas(const Request& req) {
  json::array out;  // oldest first: the order of creation
  out.reserve(book_.size());
  for (const Persona& p : book_.all()) out.push_back(persona_to_json(p, book_.status_of(p), true));
  return json_response(req, http::status::ok, out);
}

Response AdminApi::stats(const Request& req) {
  std::map<std::string_view, std::uint64_t> by_status;
  for (const Persona& p : book_.all()) ++by_status[book_.status_of(p).process_status];
  json::object statuses;
  for (const auto& [status, n] : by_status) statuses[status] = n;

  const auto& f = stats_.faults;
  json::object body;
  body["personas"] = book_.size();
  body["creates"] = stats_.creates;
  body["gets"] = stats_.gets;
  body["lists"] = stats_.lists;
  body["requests"] = stats_.requests;
  body["faults"] = {{"5xx", f.server_error},
                    {"429", f.rate_limited},
                    {"reset", f.reset},
                    {"slow", f.slow},
                    {"malformed", f.malformed},
                    {"lost_create", f.lost_create},
                    {"slow_create", f.slow_create},
                    {"list_page", f.list_page},
                    {"list_slow", f.list_slow},
                    {"retry_after_absurd", f.retry_after_absurd},
                    {"upload_too_large", f.upload_too_large}};
  body["slow_creates_pending"] = stats_.slow_creates_pending;
  body["webhooks"] = {{"queued", stats_.webhooks_queued}, {"dropped", stats_.webhooks_dropped}};
  body["label_duplicates"] = book_.label_duplicates();
  body["client_ref_duplicates"] = book_.client_ref_duplicates();
  body["statuses"] = std::move(statuses);
  body["now"] = format_rfc3339(clock_.now());
  body["seed"] = seed_;
  return json_response(req, http::status::ok, body);
}

Response AdminApi::pin(const Request& req, std::string_view id) {
  const auto body = body_object(req);
  if (!body) return detail_response(req, http::status::bad_request, "expected a JSON object");
  const auto* status = body->if_contains("process_status");
  if (!status || !status->is_string() || status->get_string().empty())
    return detail_response(req, http::status::bad_request,
                           "process_status: a non-empty string is required");
  const std::string process_status(status->get_string());

  bool is_active = process_status == "done";
  if (const auto* v = body->if_contains("is_active")) {
    if (!v->is_bool())
      return detail_response(req, http::status::bad_request, "is_active: expected true or false");
    is_active = v->get_bool();
  }
  std::optional<std::string> reason;
  if (const auto* v = body->if_contains("failed_reason"); v && !v->is_null()) {
    if (!v->is_string())
      return detail_response(req, http::status::bad_request,
                             "failed_reason: expected a string or null");
    reason = std::string(v->get_string());
  }
  const Persona* p = book_.pin(id, process_status, is_active, std::move(reason));
  if (!p) return detail_response(req, http::status::not_found, "Not found.");
  return json_response(req, http::status::ok, persona_to_json(*p, book_.status_of(*p), true));
}

Response AdminApi::set_faults(const Request& req) {
  const auto body = body_object(req);
  if (!body) return detail_response(req, http::status::bad_request, "expected a JSON object");
  FaultRates rates = faults_.rates();
  const std::pair<std::string_view, double*> fields[] = {
      {"5xx", &rates.server_error},    {"429", &rates.rate_limited},
      {"reset", &rates.reset},         {"slow", &rates.slow},
      {"malformed", &rates.malformed}, {"lost_create", &rates.lost_create},
      {"slow_create", &rates.slow_create}, {"list_page", &rates.list_page},
      {"retry_after_absurd", &rates.retry_after_absurd}};
  for (const auto& [key, value] : *body) {
    const auto field = std::find_if(std::begin(fields), std::end(fields),
                                    [&](const auto& f) { return f.first == key; });
    if (field == std::end(fields))
      return detail_response(req, http::status::bad_request,
                             "unknown fault \"" + std::string(key) + "\"");
    if (!value.is_number() || value.to_number<double>() < 0 || value.to_number<double>() > 1)
      return detail_response(req, http::status::bad_request,
                             std::string(key) + ": expected a probability 0..1");
    *field->second = value.to_number<double>();
  }
  faults_.set_rates(rates);
  return json_response(req, http::status::ok, fault_rates_json(rates));
}

Response AdminApi::advance(const Request& req) {
  const auto body = body_object(req);
  const auto* by = body ? body->if_contains("by") : nullptr;
  const auto duration = by && by->is_string() ? parse_duration(by->get_string()) : std::nullopt;
  if (!duration)
    return detail_response(req, http::status::bad_request,
                           "by: expected a duration such as \"4h\"");
  clock_.advance(*duration);
  return json_response(req, http::status::ok, json::object{{"now", format_rfc3339(clock_.now())}});
}

Response AdminApi::reset(const Request& req) {
  book_.clear();
  const std::uint64_t pending = stats_.slow_creates_pending;  // still in the server's hands
  stats_ = SimStats{};
  stats_.slow_creates_pending = pending;
  return json_response(req, http::status::ok, json::object{{"reset", true}});
}

}  // namespace creatify_sim
