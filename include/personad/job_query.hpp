// The query side of the control API: every GET that reads jobs (list, a page of a selection,
// show, history, stats), answered from the store alone. The daemon runs it on its store thread;
// personactl runs the very same code on a read-only store when the daemon is down, so both give
// the same JSON by construction. What changes jobs (the action side) goes to the tracker.
#pragma once

#include <boost/json/value.hpp>
#include <cstdint>
#include <memory>
#include <string_view>

#include "personad/clock.hpp"
#include "personad/eta.hpp"
#include "personad/selection.hpp"
#include "personad/store.hpp"

namespace personad {

// What the answers depend on besides the store.
struct QueryContext {
  TimePoint now{};                          // `--stuck` counts back from here
  Millis stuck_after = kDefaultStuckAfter;  // [alerts] stuck_after
  // What estimates come from (eta.hpp); null: learnt from the store's done jobs for this answer.
  std::shared_ptr<const EtaModel> eta{};
  // The campaign's estimate for GET /v1/stats, worked out earlier (it reads every active job:
  // the daemon keeps one for a while rather than paying that at every stats call); unset: worked
  // out for this answer.
  std::optional<SelectionEta> stats_eta{};
};

// The estimate of when the last active job completes (stats' "eta"), from every active job,
// read as groups alike to within kEtaCohortBucket (Store::active_cohorts): a minute is nothing
// beside estimates of days, and a campaign has a few hundred such groups, not a million rows.
constexpr Millis kEtaCohortBucket{60'000};
std::optional<SelectionEta> campaign_eta(const Store& store, const QueryContext& ctx);

// How many of the latest done jobs estimates learn from.
constexpr std::size_t kEtaHistoryJobs = 2'000;
// The model of estimates from the store's latest done jobs (null when the store fails: the
// answers then carry no estimate rather than failing).
std::shared_ptr<const EtaModel> learn_eta(const Store& store);

// An HTTP-like answer: the status the control socket replies with, and its JSON body.
struct QueryAnswer {
  int status = 200;
  boost::json::value body;
};

// A page of GET /v1/select holds at most this many jobs (kDefaultPage without `limit`).
constexpr std::int64_t kDefaultPage = 1'000;
constexpr std::int64_t kMaxPage = 10'000;

// Routes (GET; SELECTION is the query string of selection.hpp):
//   /v1/jobs[?SELECTION]          → [job…]: every matching job (or `limit` of them after `after`)
//   /v1/select[?SELECTION][&count=1]
//                                 → {jobs: [job…], next_after: KEY|null, more: N|null}: one page
//                                   (`limit` jobs, default 1,000, at most 10,000); next_after is
//                                   the `after` of the next page (null: it was the last), more
//                                   the matching jobs after this page when count=1 was asked
//   /v1/jobs/KEY                  → job               (404 unknown key)
//   /v1/jobs/KEY/history          → [transition…]     (404)
//   /v1/stats                     → stats
// Errors are {error: …}: 400 a bad parameter or a key over 128 characters, 404, 500 the store.
bool is_query_route(std::string_view target);
// The HTTP status of an error, by its kind, for every route: the one mapping.
int http_status_for(ErrorKind k);
QueryAnswer answer_query(const Store& store, std::string_view target, const QueryContext& ctx);

}  // namespace personad
