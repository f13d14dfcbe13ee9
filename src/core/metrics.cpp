// The one metrics writer (see metrics.hpp).
#include "personad/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace personad {

namespace asio = boost::asio;

namespace {

// Request durations: from a fast local simulator to a slow upload of a consent video.
const std::vector<double> kDurationBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60,  120};
const char* const kOps[] = {"create", "get", "list", "count"};

std::string escape(std::string_view s, bool quote) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '"' && quote) out += "\\\"";
    else out += c;
  }
  return out;
}

double seconds(Millis d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

// ---- Histogram ----

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), cumulative_(bounds_.size(), 0) {}

void Histogram::observe(double value) {
  for (std::size_t i = 0; i < bounds_.size(); ++i)
    if (value <= bounds_[i]) ++cumulative_[i];
  ++count_;
  sum_ += value;
}

// ---- PrometheusText ----

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<std::int64_t>(v));
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void PrometheusText::header(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape(help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void PrometheusText::sample(std::string_view name, const MetricLabels& labels, double value) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"" + escape(labels[i].second, true) + '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_metric_value(value);
  out_ += '\n';
}

void PrometheusText::gauge(std::string_view name, std::string_view help, double value) {
  family(name, help, "gauge", {{{}, value}});
}

void PrometheusText::counter(std::string_view name, std::string_view help, double value) {
  family(name, help, "counter", {{{}, value}});
}

void PrometheusText::family(std::string_view name, std::string_view help, std::string_view type,
                            const Samples& samples) {
  header(name, help, type);
  for (const auto& [labels, value] : samples) sample(name, labels, value);
}

void PrometheusText::histogram(
    std::string_view name, std::string_view help,
    const std::vector<std::pair<MetricLabels, const Histogram*>>& series) {
  header(name, help, "histogram");
  const std::string n(name);
  for (const auto& [labels, h] : series) {
    for (std::size_t i = 0; i < h->upper_bounds().size(); ++i) {
      MetricLabels l = labels;
      l.emplace_back("le", format_metric_value(h->upper_bounds()[i]));
      sample(n + "_bucket", l, static_cast<double>(h->cumulative()[i]));
    }
    MetricLabels inf = labels;
    inf.emplace_back("le", "+Inf");
    sample(n + "_bucket", inf, static_cast<double>(h->count()));
    sample(n + "_sum", labels, h->sum());
    sample(n + "_count", labels, static_cast<double>(h->count()));
  }
}

// ---- API requests ----

ApiRequestMetrics::ApiRequestMetrics() {
  for (const char* op : kOps) durations_.emplace(op, Histogram(kDurationBounds));
}

void ApiRequestMetrics::record(std::string_view op, int http_status, double secs) {
  ++requests_[{std::string(op), std::to_string(http_status)}];
  auto it = durations_.find(std::string(op));
  if (it == durations_.end()) it = durations_.emplace(std::string(op), Histogram(kDurationBounds)).first;
  it->second.observe(std::max(0.0, secs));
}

void MeteredApi::record(std::string_view op, TimePoint began, int http_status) {
  metrics_.record(op, http_status, seconds(clock_.now() - began));
}

asio::awaitable<ApiResult<RemotePersona>> MeteredApi::create(const PersonaSpec& spec,
                                                             std::string client_ref) {
  const TimePoint began = clock_.now();
  auto r = co_await inner_.create(spec, std::move(client_ref));
  record("create", began, r.http_status);
  co_return r;
}

asio::awaitable<ApiResult<RemotePersona>> MeteredApi::get(std::string id) {
  const TimePoint began = clock_.now();
  auto r = co_await inner_.get(std::move(id));
  record("get", began, r.http_status);
  co_return r;
}

asio::awaitable<ApiResult<ListPage>> MeteredApi::list_page(std::string target) {
  const TimePoint began = clock_.now();
  auto r = co_await inner_.list_page(std::move(target));
  record("list", began, r.http_status);
  co_return r;
}

asio::awaitable<ApiResult<AvatarCapacity>> MeteredApi::count() {
  const TimePoint began = clock_.now();
  auto r = co_await inner_.count();
  record("count", began, r.http_status);
  co_return r;
}

// ---- The page ----

namespace {

void job_families(PrometheusText& t, const MetricsSnapshot& s) {
  if (!s.store) return;
  PrometheusText::Samples jobs;
  for (State st : all_states()) {
    auto it = s.store->counts.find(st);
    jobs.push_back({{{"state", std::string(to_string(st))}},
                    static_cast<double>(it == s.store->counts.end() ? 0 : it->second)});
  }
  t.family("personad_jobs", "Jobs per state.", "gauge", jobs);
  t.gauge("personad_jobs_needs_operator", "Jobs waiting for personactl resolve.",
          static_cast<double>(s.store->needs_operator));
}

void tracker_families(PrometheusText& t, const MetricsSnapshot& s) {
  const TrackerMetrics& m = s.tracker;
  auto c = [&](const char* name, const char* help, std::int64_t v) {
    t.counter(name, help, static_cast<double>(v));
  };
  c("personad_polls_total", "Status polls answered since start.", m.polls);
  c("personad_creates_sent_total", "Create requests sent since start.", m.creates_sent);
  c("personad_reconciles_total", "Reconcile passes since start.", m.reconciles);
  c("personad_adopted_total", "Remote personas adopted since start.", m.adopted);
  c("personad_resent_total", "Creates sent again after a reconcile.", m.resent);
  c("personad_flagged_total",
    "Jobs flagged for the operator since start (ambiguous reconcile, reconcile deadline, "
    "permanent list error, a remote id another job holds).",
    m.flagged);
  c("personad_store_errors_total", "Store operations that failed.", m.store_errors);
  t.family("personad_api_errors_total", "API requests that failed, by kind.", "counter",
           {{{{"kind", "transient"}}, static_cast<double>(m.api_transient)},
            {{{"kind", "permanent"}}, static_cast<double>(m.api_permanent)},
            {{{"kind", "unauthorized"}}, static_cast<double>(m.api_unauthorized)}});
  PrometheusText::Samples transitions;
  for (State st : all_states()) {
    auto it = m.transitions.find(st);
    transitions.push_back({{{"to", std::string(to_string(st))}},
                           static_cast<double>(it == m.transitions.end() ? 0 : it->second)});
  }
  t.family("personad_transitions_total", "Transitions since start, by target state.", "counter",
           transitions);
}

void api_families(PrometheusText& t, const MetricsSnapshot& s) {
  PrometheusText::Samples requests;
  std::vector<std::pair<MetricLabels, const Histogram*>> durations;
  if (s.api) {
    for (const auto& [k, n] : s.api->requests())
      requests.push_back({{{"op", k.first}, {"code", k.second}}, static_cast<double>(n)});
    for (const auto& [op, h] : s.api->durations()) durations.push_back({{{"op", op}}, &h});
  }
  t.family("personad_api_requests_total",
           "API requests since start, by operation and HTTP status (0: no answer).", "counter",
           requests);
  t.histogram("personad_api_request_duration_seconds",
              "Time from sending an API request to its answer (or its failure).", durations);
}

}  // namespace

Result<void> read_store_metrics(const Store& store, TimePoint now, Millis stuck_after,
                                MetricsSnapshot& out) {
  auto stats = store.stats();
  if (!stats) return stats.error();
  auto stuck = store.count_stuck(add_saturating(now, Millis(-stuck_after.count())));
  if (!stuck) return stuck.error();
  Selection pending;
  pending.states = {State::pending};
  pending.limit = 1;
  auto oldest = store.select(pending, SelectOptions{});
  if (!oldest) return oldest.error();
  out.store = std::move(*stats);
  out.jobs_stuck = *stuck;
  out.oldest_pending_age = 0.0;
  if (!oldest->jobs.empty()) {
    const Job& j = oldest->jobs.front();
    out.oldest_pending_age = std::max(0.0, seconds(now - j.submitted_at.value_or(j.created_at)));
  }
  return {};
}

std::string render_metrics(const MetricsSnapshot& s) {
  PrometheusText t;
  t.family("personad_build_info", "The running personad's version.", "gauge",
           {{{{"version", s.version}}, 1}});
  job_families(t, s);
  const double nan = std::nan("");
  t.gauge("personad_jobs_stuck",
          "Non-final jobs whose remote status has not changed for [alerts] stuck_after.",
          s.jobs_stuck ? static_cast<double>(*s.jobs_stuck) : nan);
  t.gauge("personad_oldest_pending_age_seconds",
          "Seconds since the oldest pending job was submitted (0: none pending).",
          s.oldest_pending_age.value_or(s.store ? 0.0 : nan));
  t.gauge("personad_capacity_remaining",
          "Avatars the workspace can still take (NaN: not known).",
          s.capacity_remaining ? static_cast<double>(*s.capacity_remaining) : nan);
  tracker_families(t, s);
  api_families(t, s);
  t.gauge("personad_in_flight", "Job actions running now.", static_cast<double>(s.in_flight));
  if (s.next_due_seconds)
    t.gauge("personad_next_due_seconds", "Seconds until the next scheduled action.",
            *s.next_due_seconds);
  if (s.hooks) {
    t.counter("personad_hook_runs_total", "on_transition hook runs.",
              static_cast<double>(s.hooks->runs));
    t.counter("personad_hook_failures_total", "Hook runs that failed or timed out.",
              static_cast<double>(s.hooks->failures));
    t.counter("personad_hook_dropped_total", "Hook runs dropped (queue full).",
              static_cast<double>(s.hooks->dropped));
  }
  if (s.webhook) {
    PrometheusText::Samples by_result;
    for (const auto& [result, n] : s.webhook->requests)
      by_result.push_back({{{"result", result}}, static_cast<double>(n)});
    t.family("personad_webhook_requests_total", "Webhook requests, by how they ended.", "counter",
             by_result);
    t.counter("personad_webhook_polls_total", "Polls caused by webhook callbacks (debounced).",
              static_cast<double>(s.webhook->polls));
    t.counter("personad_webhook_connections_evicted_total",
              "Webhook connections closed at the cap while waiting for a request.",
              static_cast<double>(s.webhook->evicted));
    t.gauge("personad_webhook_connections_open", "Webhook connections open.",
            static_cast<double>(s.webhook->open));
  }
  return t.str();
}

}  // namespace personad
