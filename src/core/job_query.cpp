// The query side of the control API (see job_query.hpp): GET routes answered from the store.
#include "personad/job_query.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <optional>
#include <string>
#include <vector>

#include "personad/job_json.hpp"
#include "personad/stuck.hpp"

namespace personad {

namespace json = boost::json;

namespace {

// The contract's keys are [A-Za-z0-9._-]{1,128}.
constexpr std::size_t kKeyMaxChars = 128;

QueryAnswer error_answer(int status, const std::string& message) {
  json::object o;
  o["error"] = message;
  json::value v(std::move(o));
  make_valid_utf8(v);
  return QueryAnswer{status, std::move(v)};
}

QueryAnswer store_error(const Error& e) { return error_answer(http_status_for(e.kind), e.message); }

struct Route {
  std::vector<std::string> segments;  // after "v1"
  std::vector<SelectionParam> params;
};

std::optional<Route> parse_route(std::string_view target) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return std::nullopt;
  boost::urls::url_view url = *parsed;
  Route r;
  for (auto s : url.segments()) r.segments.emplace_back(s);
  if (r.segments.empty() || r.segments[0] != "v1") return std::nullopt;
  r.segments.erase(r.segments.begin());
  for (auto p : url.params()) r.params.emplace_back(std::string(p.key), std::string(p.value));
  return r;
}

enum class Kind { none, jobs, select, job, history, stats };

Kind kind_of(const Route& r) {
  const auto& s = r.segments;
  if (s.size() == 1 && s[0] == "jobs") return Kind::jobs;
  if (s.size() == 1 && s[0] == "select") return Kind::select;
  if (s.size() == 1 && s[0] == "stats") return Kind::stats;
  if (s.size() == 2 && s[0] == "jobs") return Kind::job;
  if (s.size() == 3 && s[0] == "jobs" && s[2] == "history") return Kind::history;
  return Kind::none;
}

// The job object with what the row alone does not say (stuck, ETA).
json::object annotated(const Job& j, const QueryContext& ctx) {
  JobAnnotations a;
  a.stuck = is_stuck(j, ctx.now, ctx.stuck_after);
  if (ctx.eta) a.estimate = ctx.eta->estimate(j, ctx.now);
  return job_to_json(j, a);
}

json::array jobs_array(const std::vector<Job>& jobs, const QueryContext& ctx) {
  json::array a;
  a.reserve(jobs.size());
  for (const auto& j : jobs) a.push_back(annotated(j, ctx));
  return a;
}

SelectOptions options_for(const QueryContext& ctx, bool count_more) {
  SelectOptions o;
  o.stuck_before = add_saturating(ctx.now, Millis(-ctx.stuck_after.count()));
  o.count_more = count_more;
  return o;
}

QueryAnswer list_jobs(const Store& store, const Route& r, const QueryContext& ctx) {
  auto sel = parse_selection(r.params, ctx.now);
  if (!sel) return store_error(sel.error());
  auto page = store.select(*sel, options_for(ctx, false));
  if (!page) return store_error(page.error());
  return QueryAnswer{200, jobs_array(page->jobs, ctx)};
}

QueryAnswer select_page(const Store& store, const Route& r, const QueryContext& ctx) {
  // `count` belongs to the route, not to the selection.
  std::vector<SelectionParam> params;
  bool count = false;
  for (const auto& p : r.params) {
    if (p.first != "count") {
      params.push_back(p);
    } else if (p.second == "1" || p.second == "true" || p.second.empty()) {
      count = true;
    } else if (p.second != "0" && p.second != "false") {
      return error_answer(400, "count: expected 1 or 0, got '" + p.second + "'");
    }
  }
  auto sel = parse_selection(params, ctx.now);
  if (!sel) return store_error(sel.error());
  sel->limit = std::min(sel->limit.value_or(kDefaultPage), kMaxPage);
  auto page = store.select(*sel, options_for(ctx, count));
  if (!page) return store_error(page.error());
  json::object o;
  o["jobs"] = jobs_array(page->jobs, ctx);
  o["next_after"] = page->has_more ? json::value(page->jobs.back().key) : json::value(nullptr);
  o["more"] = count ? json::value(page->more) : json::value(nullptr);
  json::value v(std::move(o));
  make_valid_utf8(v);
  return QueryAnswer{200, std::move(v)};
}

QueryAnswer job_or_history(const Store& store, const std::string& key, bool history,
                           const QueryContext& ctx) {
  if (key.size() > kKeyMaxChars)
    return error_answer(400, "key too long: " + std::to_string(key.size()) +
                                 " characters; keys are at most " + std::to_string(kKeyMaxChars));
  auto job = store.find(key);
  if (!job) return store_error(job.error());
  if (!*job) {
    // An archived key is not unknown: say where it went (personactl archive).
    if (auto a = store.find_archived(key); a && *a)
      return error_answer(404, "key '" + key + "' was archived (" +
                                   std::string(to_string((*a)->state)) + ") to " + (*a)->file +
                                   " at " + format_rfc3339((*a)->archived_at));
    return error_answer(404, "unknown key '" + key + "'");
  }
  if (!history) return QueryAnswer{200, annotated(**job, ctx)};
  auto h = store.history((*job)->id);
  if (!h) return store_error(h.error());
  return QueryAnswer{200, history_to_json(*h)};
}

// stats' `eta`: {p50, p90, basis, jobs} of the last completion among the active jobs (null
// values when nothing is active or nothing can be estimated).
json::value selection_eta_json(const Store& store, const QueryContext& ctx) {
  json::object o{{"p50", nullptr}, {"p90", nullptr}, {"basis", nullptr}, {"jobs", 0}};
  const std::optional<SelectionEta> e = ctx.stats_eta ? ctx.stats_eta : campaign_eta(store, ctx);
  if (!e) return o;
  if (e->p50) o["p50"] = format_rfc3339(*e->p50);
  if (e->p90) o["p90"] = format_rfc3339(*e->p90);
  if (!e->basis.empty()) o["basis"] = e->basis;
  o["jobs"] = e->jobs;
  return o;
}

}  // namespace

std::optional<SelectionEta> campaign_eta(const Store& store, const QueryContext& ctx) {
  if (!ctx.eta) return std::nullopt;
  // Groups of alike jobs from one index, not every active row (0.8 s and ~200 MiB of heap at
  // 100,000 jobs when it read them all).
  auto active = store.active_cohorts(kEtaCohortBucket);
  if (!active) return std::nullopt;
  return ctx.eta->last_completion(*active, ctx.now);
}

std::shared_ptr<const EtaModel> learn_eta(const Store& store) {
  auto h = store.done_histories(kEtaHistoryJobs);
  if (!h) return nullptr;
  return std::make_shared<const EtaModel>(EtaModel::from_histories(*h));
}

bool is_query_route(std::string_view target) {
  auto r = parse_route(target);
  return r && kind_of(*r) != Kind::none;
}

QueryAnswer answer_query(const Store& store, std::string_view target, const QueryContext& ctx) {
  auto r = parse_route(target);
  if (!r) return error_answer(404, "no such route: " + std::string(target));
  const Kind kind = kind_of(*r);
  QueryContext c = ctx;
  if (!c.eta && kind != Kind::history && kind != Kind::none) c.eta = learn_eta(store);
  switch (kind) {
    case Kind::jobs: return list_jobs(store, *r, c);
    case Kind::select: return select_page(store, *r, c);
    case Kind::job: return job_or_history(store, r->segments[1], false, c);
    case Kind::history: return job_or_history(store, r->segments[1], true, c);
    case Kind::stats: {
      auto s = store.stats();
      if (!s) return store_error(s.error());
      json::object o = stats_to_json(*s);
      o["eta"] = selection_eta_json(store, c);
      return QueryAnswer{200, std::move(o)};
    }
    case Kind::none: break;
  }
  return error_answer(404, "no such route: " + std::string(target));
}

// The HTTP status of an error, by its kind: the one mapping (personactl reads it back).
int http_status_for(ErrorKind k) {
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

}  // namespace personad
