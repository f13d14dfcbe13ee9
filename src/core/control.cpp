// Routes of the control API (see control.hpp): JSON in, JSON out, errors as {error: …}.
#include "personad/control.hpp"

#include <unistd.h>

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <sstream>

#include "personad/batch.hpp"
#include "personad/job_json.hpp"
#include "personad/store.hpp"
#include "personad/tracker.hpp"

namespace personad {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

ControlResponse reply(int status, const json::value& v) {
  return ControlResponse{status, json::serialize(v), "application/json"};
}

ControlResponse error_reply(int status, const std::string& message) {
  return reply(status, json::object{{"error", message}});
}

// The HTTP status of an error, by its kind (the one mapping; ctl reads it back).
int status_for(ErrorKind k) {
  switch (k) {
    case ErrorKind::not_found: return 404;
    case ErrorKind::conflict: return 409;
    case ErrorKind::invalid: return 400;
    case ErrorKind::unavailable: return 503;
    case ErrorKind::io:
    case ErrorKind::internal: return 500;
  }
  return 500;
}

ControlResponse action_reply(const Result<ActionOutcome>& r) {
  if (!r) return error_reply(status_for(r.kind()), r.message());
  return reply(200, json::object{{"message", r->message}, {"job", job_to_json(r->job)}});
}

// Parses a request body as a JSON object; an empty body is an empty object.
Result<json::object> body_object(const std::string& body) {
  if (body.empty()) return json::object{};
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return make_error("request body: invalid JSON: " + ec.message());
  if (!v.is_object()) return make_error("request body: expected a JSON object");
  return v.get_object();
}

// Replies built outside the coroutines: GCC 12 miscompiles braced JSON initialisers holding
// string literals inside a coroutine ("array used as initializer").
ControlResponse health_reply() {
  return reply(200, json::object{{"status", "ok"},
                                 {"version", PERSONAD_VERSION},
                                 {"pid", static_cast<std::int64_t>(::getpid())}});
}

ControlResponse adopted_reply(std::size_t adopted) {
  return reply(200, json::object{{"adopted", adopted}});
}

ControlResponse invalid_reply(json::array errors) {
  return reply(400, json::object{{"error", "invalid personas; nothing was enqueued"},
                                 {"errors", std::move(errors)}});
}

ControlResponse valid_reply(std::size_t n) { return reply(200, json::object{{"valid", n}}); }

ControlResponse enqueued_reply(const std::vector<EnqueueOutcome>& outcome) {
  json::array results;
  for (const auto& o : outcome)
    results.push_back(json::object{{"key", o.key},
                                   {"result", o.inserted ? "queued" : "known"},
                                   {"state", to_string(o.state)},
                                   {"spec_changed", o.spec_changed}});
  return reply(200, json::object{{"results", results}});
}

json::object spec_error(std::size_t index, const std::string& message) {
  return json::object{{"index", index}, {"key", nullptr}, {"message", message}};
}

json::object field_error(std::size_t index, const std::string& key, const std::string& field,
                         const std::string& message) {
  return json::object{{"index", index}, {"key", key}, {"field", field}, {"message", message}};
}

bool flag(const json::object& o, std::string_view name) {
  auto it = o.find(name);
  return it != o.end() && it->value().is_bool() && it->value().get_bool();
}

}  // namespace

ControlApi::ControlApi(Tracker& tracker, StoreRunner& store, const Clock& clock)
    : tracker_(tracker), store_(store), clock_(clock) {}

asio::awaitable<ControlResponse> ControlApi::handle(ControlRequest req) {
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) co_return error_reply(400, "bad request target");
  boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) seg.emplace_back(s);
  const bool get = req.method == "GET";
  const bool post = req.method == "POST";

  if (get && seg == std::vector<std::string>{"metrics"}) co_return co_await metrics();
  if (seg.empty() || seg[0] != "v1") co_return error_reply(404, "no such route: " + req.target);
  seg.erase(seg.begin());

  if (get && seg == std::vector<std::string>{"health"}) co_return health_reply();
  if (get && seg == std::vector<std::string>{"stats"}) {
    auto s = co_await store_.read([](Store& st) { return st.stats(); });
    if (!s) co_return error_reply(500, s.message());
    co_return reply(200, stats_to_json(*s));
  }
  if (post && seg == std::vector<std::string>{"submit"}) co_return co_await submit(std::move(req.body), false);
  if (post && seg == std::vector<std::string>{"submit", "check"}) co_return co_await submit(std::move(req.body), true);
  if (post && seg == std::vector<std::string>{"adopt-queued"}) {
    const std::size_t adopted = co_await tracker_.adopt_queued();
    co_return adopted_reply(adopted);
  }
  if (seg.empty() || seg[0] != "jobs") co_return error_reply(404, "no such route: " + req.target);

  if (get && seg.size() == 1) {
    std::optional<State> filter;
    if (auto it = url.params().find("state"); it != url.params().end()) {
      filter = parse_state((*it).value);
      if (!filter) co_return error_reply(400, "unknown state '" + std::string((*it).value) + "'");
    }
    auto jobs = co_await store_.read([filter](Store& st) { return st.list(filter); });
    if (!jobs) co_return error_reply(500, jobs.message());
    json::array a;
    for (const auto& j : *jobs) a.push_back(job_to_json(j));
    co_return reply(200, a);
  }
  if (seg.size() < 2) co_return error_reply(404, "no such route: " + req.target);
  const std::string key = seg[1];

  if (get && (seg.size() == 2 || (seg.size() == 3 && seg[2] == "history"))) {
    auto job = co_await store_.read([&key](Store& st) { return st.find(key); });
    if (!job) co_return error_reply(500, job.message());
    if (!*job) co_return error_reply(404, "unknown key '" + key + "'");
    if (seg.size() == 2) co_return reply(200, job_to_json(**job));
    auto h = co_await store_.read([id = (*job)->id](Store& st) { return st.history(id); });
    if (!h) co_return error_reply(500, h.message());
    co_return reply(200, history_to_json(*h));
  }
  if (post && seg.size() == 3) {
    auto body = body_object(req.body);
    if (!body) co_return error_reply(400, body.message());
    if (seg[2] == "cancel") co_return action_reply(co_await tracker_.cancel(key));
    if (seg[2] == "retry") co_return action_reply(co_await tracker_.retry(key, flag(*body, "resubmit")));
    if (seg[2] == "resolve") {
      std::optional<std::string> adopt;
      if (auto it = body->find("adopt"); it != body->end() && it->value().is_string())
        adopt = std::string(it->value().get_string());
      co_return action_reply(co_await tracker_.resolve(key, adopt, flag(*body, "resubmit")));
    }
  }
  co_return error_reply(get || post ? 404 : 405, "no such route: " + req.method + " " + req.target);
}

asio::awaitable<ControlResponse> ControlApi::submit(std::string body_text, bool check_only) {
  auto body = body_object(body_text);
  if (!body) co_return error_reply(400, body.message());
  std::string source = "personactl";
  if (auto it = body->find("source"); it != body->end() && it->value().is_string())
    source = std::string(it->value().get_string());
  auto it = body->find("personas");
  if (it == body->end() || !it->value().is_array())
    co_return error_reply(400, "request body: 'personas' must be an array");

  std::vector<PersonaSpec> specs;
  json::array errors;
  std::size_t index = 0;
  for (const auto& v : it->value().get_array()) {
    auto spec = spec_from_json(v);
    if (!spec) {
      errors.push_back(spec_error(index, spec.message()));
    } else {
      for (const auto& fe : validate_spec(*spec))
        errors.push_back(field_error(index, spec->key, fe.field, fe.message));
      specs.push_back(std::move(*spec));
    }
    ++index;
  }
  if (!errors.empty()) co_return invalid_reply(std::move(errors));
  if (check_only) co_return valid_reply(specs.size());
  auto outcome = co_await tracker_.enqueue(std::move(specs), source);
  if (!outcome) co_return error_reply(503, outcome.message());
  co_return enqueued_reply(*outcome);
}

asio::awaitable<ControlResponse> ControlApi::metrics() {
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, std::int64_t v) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n"
        << name << ' ' << v << '\n';
  };
  const TrackerMetrics& m = tracker_.metrics();
  if (auto s = co_await store_.read([](Store& st) { return st.stats(); }); s) {
    out << "# HELP personad_jobs Jobs per state.\n# TYPE personad_jobs gauge\n";
    for (State st : all_states()) {
      auto it = s->counts.find(st);
      out << "personad_jobs{state=\"" << to_string(st) << "\"} "
          << (it == s->counts.end() ? 0 : it->second) << '\n';
    }
    out << "# HELP personad_jobs_needs_operator Jobs waiting for personactl resolve.\n"
        << "# TYPE personad_jobs_needs_operator gauge\npersonad_jobs_needs_operator "
        << s->needs_operator << '\n';
  }
  counter("personad_polls_total", "Status polls answered since start.", m.polls);
  counter("personad_creates_sent_total", "Create requests sent since start.", m.creates_sent);
  counter("personad_reconciles_total", "Reconcile passes since start.", m.reconciles);
  counter("personad_adopted_total", "Remote personas adopted since start.", m.adopted);
  counter("personad_resent_total", "Creates sent again after a reconcile.", m.resent);
  counter("personad_flagged_total",
          "Jobs flagged for the operator since start (ambiguous reconcile, reconcile deadline, "
          "permanent list error, a remote id another job holds).",
          m.flagged);
  counter("personad_store_errors_total", "Store operations that failed.", m.store_errors);
  out << "# HELP personad_api_errors_total API requests that failed, by kind.\n"
      << "# TYPE personad_api_errors_total counter\n"
      << "personad_api_errors_total{kind=\"transient\"} " << m.api_transient << '\n'
      << "personad_api_errors_total{kind=\"permanent\"} " << m.api_permanent << '\n'
      << "personad_api_errors_total{kind=\"unauthorized\"} " << m.api_unauthorized << '\n';
  out << "# HELP personad_transitions_total Transitions since start, by target state.\n"
      << "# TYPE personad_transitions_total counter\n";
  for (State st : all_states()) {
    auto it = m.transitions.find(st);
    out << "personad_transitions_total{to=\"" << to_string(st) << "\"} "
        << (it == m.transitions.end() ? 0 : it->second) << '\n';
  }
  out << "# HELP personad_in_flight Job actions running now.\n# TYPE personad_in_flight gauge\n"
      << "personad_in_flight " << tracker_.in_flight() << '\n';
  if (auto due = tracker_.next_due())
    out << "# HELP personad_next_due_seconds Seconds until the next scheduled action.\n"
        << "# TYPE personad_next_due_seconds gauge\npersonad_next_due_seconds "
        << std::max<double>(0, std::chrono::duration<double>(*due - clock_.now()).count()) << '\n';
  if (extra_metrics_) out << extra_metrics_();
  co_return ControlResponse{200, out.str(), "text/plain; version=0.0.4"};
}

}  // namespace personad
