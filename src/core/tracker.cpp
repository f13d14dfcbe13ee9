// The job state machine in motion (see tracker.hpp). Each due job runs one coroutine at a time;
// every step commits to the store before the next request leaves, so a crash at any point
// leaves a row that says exactly what may have happened.
#include "personad/tracker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/logger.h>

#include <algorithm>

#include "personad/backoff.hpp"
#include "personad/remote_list.hpp"

namespace personad {

namespace asio = boost::asio;
using spdlog::level::level_enum;

namespace {

// Whether a listed persona was created by this job according to its fields and time. Used only
// when the API does not return labels in its list.
bool fields_match(const Job& job, const RemotePersona& p) {
  const PersonaSpec& s = job.spec;
  if (p.creator_name != s.creator_name || p.gender != s.gender ||
      p.video_scene != s.video_scene || p.keywords != s.keywords)
    return false;
  if (!job.submitting_since) return true;
  if (!p.created_at) return true;  // no time to compare: fields alone decide
  // A minute of tolerance for clock skew between us and the API.
  return *p.created_at >= *job.submitting_since - Millis(60'000);
}

}  // namespace

// One list of remote personas shared by every reconcile that can use it, so a restart with
// many `submitting` rows lists the API once rather than once per job.
struct Tracker::SharedList {
  explicit SharedList(asio::any_io_executor ex) : wake(std::move(ex)) {}

  std::optional<TimePoint> fetched_at;  // when the last successful fetch started
  std::vector<RemotePersona> items;
  std::optional<TimePoint> in_flight_since;
  std::uint64_t fetches = 0;  // id of the latest fetch started
  std::uint64_t failed_fetch = 0;  // id of the latest fetch that failed
  ApiResult<std::vector<RemotePersona>> failure;
  asio::steady_timer wake;  // waiters sleep on it; cancelled when a fetch ends

  // A list fetched no earlier than `not_before`: the cached one, the one in flight, or a new
  // one. A failure is shared only with those who waited for that very fetch.
  asio::awaitable<ApiResult<std::vector<RemotePersona>>> fetch(CreatifyApi& api,
                                                               const Clock& clock,
                                                               TimePoint not_before) {
    for (;;) {
      if (fetched_at && *fetched_at >= not_before) {
        ApiResult<std::vector<RemotePersona>> r;
        r.outcome = Outcome::ok;
        r.value = items;
        co_return r;
      }
      if (in_flight_since) {
        bool usable = *in_flight_since >= not_before;
        std::uint64_t awaited = fetches;
        wake.expires_at(asio::steady_timer::time_point::max());
        co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
        if (usable && failed_fetch == awaited) co_return failure;
        continue;
      }
      TimePoint started = clock.now();
      in_flight_since = started;
      std::uint64_t id = ++fetches;
      auto listing = co_await fetch_listing(api, clock, ListingOptions{}, [] { return 0.5; });
      ApiResult<std::vector<RemotePersona>> r;
      r.outcome = listing.outcome;
      r.http_status = listing.http_status;
      r.retry_after = listing.retry_after;
      r.message = listing.message;
      r.value = std::move(listing.value.items);
      in_flight_since.reset();
      if (r.outcome == Outcome::ok) {
        fetched_at = started;
        items = r.value;
      } else {
        failed_fetch = id;
        failure = r;
      }
      wake.cancel();
      co_return r;
    }
  }
};

Tracker::Tracker(asio::any_io_executor ex, Store& store, CreatifyApi& api, const Clock& clock,
                 const EventLog& log, TrackerOptions options, Random random)
    : ex_(ex),
      store_(store),
      api_(api),
      clock_(clock),
      log_(log),
      options_(std::move(options)),
      random_(std::move(random)),
      scheduler_(ex, clock, [this](std::int64_t id) { on_due(id); }),
      list_(std::make_unique<SharedList>(ex)) {}

Tracker::~Tracker() = default;

void Tracker::update_options(TrackerOptions options) { options_ = std::move(options); }

Result<void> Tracker::start() {
  auto jobs = store_.load_active();
  if (!jobs) return jobs.error();
  TimePoint now = clock_.now();
  std::size_t overdue = 0;
  std::size_t held = 0;
  double rps = options_.api.max_requests_per_second;
  std::vector<std::pair<TimePoint, std::int64_t>> due;
  for (Job& job : *jobs) {
    if (job.state == State::submitting && job.needs_operator) {
      ++held;
      continue;  // waits for `personactl resolve`
    }
    due.emplace_back(job.next_poll_at.value_or(now), job.id);
  }
  // In due order: overdue work keeps its order and is spread at the request rate instead of
  // all firing at once, and the scheduler's timer is armed once rather than per job.
  std::sort(due.begin(), due.end());
  for (auto& [at, id] : due) {
    if (at <= now) at = now + startup_spread(overdue++, rps);
    scheduler_.schedule(id, at);
  }
  log_.event(level_enum::info, "loaded",
             {{"active", std::to_string(jobs->size())},
              {"overdue", std::to_string(overdue)},
              {"awaiting_operator", std::to_string(held)}});
  return {};
}

Result<std::vector<EnqueueOutcome>> Tracker::enqueue(const std::vector<PersonaSpec>& specs,
                                                     std::string_view source) {
  if (!accepting_) return make_error("personad is shutting down; nothing was enqueued");
  std::string reason = "enqueued from " + std::string(source);
  TimePoint now = clock_.now();
  auto r = store_.enqueue(specs, source, reason, now, [] { return new_client_ref(); });
  if (!r) {
    ++metrics_.store_errors;
    return r;
  }
  for (std::size_t i = 0; i < r->size(); ++i) {
    const EnqueueOutcome& o = (*r)[i];
    if (o.inserted) {
      // The row as enqueue wrote it; no need to read it back for the log line and the hook.
      Job job;
      job.id = o.job_id;
      job.key = o.key;
      job.client_ref = o.client_ref;
      job.spec = specs[i];
      job.source = std::string(source);
      job.created_at = job.updated_at = now;
      Transition t{o.job_id, now, std::nullopt, State::queued, "", reason};
      log_.transition(job, t);
      ++metrics_.transitions[State::queued];
      if (hook_) hook_(job, t);
      scheduler_.schedule(o.job_id, now);
    } else if (o.spec_changed) {
      log_.event(level_enum::warn, "spec_changed",
                 {{"key", o.key},
                  {"state", std::string(to_string(o.state))},
                  {"source", std::string(source)},
                  {"reason", "the stored spec differs from the one offered; a known key is never "
                             "sent again (cancel it and use a new key to create it anew)"}});
    }
  }
  return r;
}

std::size_t Tracker::adopt_queued() {
  auto queued = store_.list(State::queued);
  if (!queued) {
    ++metrics_.store_errors;
    log_.event(level_enum::err, "store_error", {{"reason", queued.message()}});
    return 0;
  }
  std::size_t n = 0;
  for (const Job& job : *queued) {
    if (scheduler_.contains(job.id) || running_.count(job.id) || ready_set_.count(job.id)) continue;
    scheduler_.schedule(job.id, clock_.now());
    ++n;
  }
  if (n)
    log_.event(level_enum::info, "adopted_queued",
               {{"jobs", std::to_string(n)},
                {"reason", "queued rows written to the database by personactl"}});
  return n;
}

void Tracker::stop_taking_work() {
  accepting_ = false;
  scheduler_.stop();
  ready_.clear();
  ready_set_.clear();
}

void Tracker::on_due(std::int64_t id) {
  if (!accepting_) return;
  // Due again while its previous step is still winding down (a step that scheduled itself at
  // once, before co_spawn's completion ran): run it again right after, never drop it.
  if (running_.count(id)) {
    due_while_running_.insert(id);
    return;
  }
  if (!ready_set_.insert(id).second) return;
  ready_.push_back(id);
  pump();
}

void Tracker::pump() {
  std::size_t limit = static_cast<std::size_t>(std::max(1, options_.api.max_in_flight));
  while (accepting_ && running_.size() < limit && !ready_.empty()) {
    std::int64_t id = ready_.front();
    ready_.pop_front();
    ready_set_.erase(id);
    running_.insert(id);
    asio::co_spawn(ex_, run(id), [this, id](std::exception_ptr e) {
      running_.erase(id);
      if (due_while_running_.erase(id) && accepting_ && ready_set_.insert(id).second)
        ready_.push_back(id);
      if (e) {
        // Nothing should throw here; if something does, the job stays as committed and is
        // retried later rather than taking the daemon down.
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log_.event(level_enum::err, "internal_error",
                     {{"job_id", std::to_string(id)}, {"reason", ex.what()}});
        }
        if (accepting_) scheduler_.schedule(id, clock_.now() + options_.api.retry_max);
      }
      pump();
    });
  }
}

asio::awaitable<void> Tracker::run(std::int64_t id) {
  auto loaded = store_.get(id);
  if (!loaded || !*loaded) {
    ++metrics_.store_errors;
    log_.event(level_enum::err, "store_error",
               {{"job_id", std::to_string(id)},
                {"reason", loaded ? "job vanished from the store" : loaded.message()}});
    co_return;
  }
  Job job = std::move(**loaded);
  switch (job.state) {
    case State::queued:
      co_await submit(std::move(job));
      break;
    case State::submitting:
      if (job.needs_operator) break;
      if (job.send_unknown) {
        co_await reconcile(std::move(job));
      } else {
        // The last attempt certainly never left: send again without a reconcile.
        mark_sending(job);
        if (save(job)) co_await send_create(std::move(job));
      }
      break;
    case State::pending:
      co_await poll(std::move(job));
      break;
    default:
      break;  // final: nothing to do
  }
}

// queued → submitting, durably, before anything leaves.
asio::awaitable<void> Tracker::submit(Job job) {
  job.submitting_since = clock_.now();
  job.errors = 0;
  mark_sending(job);
  if (!commit(job, State::submitting, "submitting create request", /*durable=*/true)) co_return;
  co_await send_create(std::move(job));
}

// The intent record: from the commit that follows, a create may be in flight. If we die during
// the request, the row says so and a reconcile runs at start-up.
void Tracker::mark_sending(Job& job) {
  TimePoint now = clock_.now();
  job.send_unknown = true;
  job.last_sent_at = now;
  ++job.attempts;
  job.next_poll_at = now + options_.api.reconcile_after;
}

asio::awaitable<void> Tracker::send_create(Job job) {
  ++metrics_.creates_sent;
  auto r = co_await api_.create(job.spec, job.client_ref);

  auto current = reload(job);
  if (!current) {
    if (r.outcome == Outcome::ok)
      log_.event(level_enum::warn, "late_result",
                 {{"key", job.key},
                  {"remote_id", r.value.id},
                  {"reason", "the create succeeded after the job was cancelled; the remote persona "
                             "exists"}});
    co_return;
  }
  job = std::move(*current);
  TimePoint now = clock_.now();

  switch (r.outcome) {
    case Outcome::ok: {
      job.send_unknown = false;
      job.errors = 0;
      job.remote_id = r.value.id;
      job.remote_status = r.value.process_status;
      job.submitted_at = now;
      job.expires_at = expiry_time(options_.poll, now);
      job.next_poll_at = next_poll_time(options_.poll, now, 0, now, rnd());
      if (commit(job, State::pending, "created (HTTP " + std::to_string(r.http_status) + ")"))
        schedule(job);
      co_return;
    }
    case Outcome::permanent: {
      job.send_unknown = false;
      job.failed_reason = r.message;
      commit(job, State::failed, "create rejected by the API: " + r.message);
      co_return;
    }
    case Outcome::unauthorized:
    case Outcome::transient: {
      count_api_error(r.outcome);
      // A 401/403 or a request that never left: certainly not created, send again later.
      // Anything else: the outcome is unknown and only a reconcile may decide.
      bool not_sent = r.outcome == Outcome::unauthorized || !r.sent;
      job.send_unknown = !not_sent;
      TimePoint at = retry_at(job, r.retry_after);
      log_.event(r.outcome == Outcome::unauthorized ? level_enum::err : level_enum::warn,
                 not_sent ? "create_not_sent" : "create_outcome_unknown",
                 {{"key", job.key},
                  {"attempt", std::to_string(job.attempts)},
                  {"next", not_sent ? "resend" : "reconcile"},
                  {"at", format_rfc3339(at)},
                  {"reason", r.message}});
      if (save(job)) schedule(job);
      co_return;
    }
  }
}

asio::awaitable<void> Tracker::reconcile(Job job) {
  ++metrics_.reconciles;
  TimePoint not_before = job.last_sent_at.value_or(job.submitting_since.value_or(job.created_at));
  auto listed = co_await list_->fetch(api_, clock_, not_before);
  auto current = reload(job);
  if (!current) co_return;
  job = std::move(*current);
  TimePoint now = clock_.now();

  if (listed.outcome != Outcome::ok) {
    count_api_error(listed.outcome);
    TimePoint at = retry_at(job, listed.retry_after);
    log_.event(level_enum::warn, "reconcile_deferred",
               {{"key", job.key}, {"at", format_rfc3339(at)}, {"reason", listed.message}});
    if (save(job)) schedule(job);
    co_return;
  }

  // Evidence, strongest first: our label on a listed persona.
  const std::string label = client_label(job.client_ref);
  std::vector<const RemotePersona*> by_label;
  bool any_labels = false;
  for (const auto& p : listed.value) {
    any_labels = any_labels || p.has_labels;
    for (const auto& l : p.labels)
      if (l == label) {
        by_label.push_back(&p);
        break;
      }
  }
  std::vector<const RemotePersona*> candidates = by_label;
  std::string evidence;
  if (!by_label.empty()) {
    evidence = "label " + label;
    if (by_label.size() > 1)
      log_.event(level_enum::err, "duplicate_remote",
                 {{"key", job.key},
                  {"count", std::to_string(by_label.size())},
                  {"reason", "several remote personas carry " + label + "; adopting the oldest"}});
    std::sort(candidates.begin(), candidates.end(), [](auto* a, auto* b) {
      return a->created_at.value_or(TimePoint{}) < b->created_at.value_or(TimePoint{});
    });
    candidates.resize(1);
  } else if (!any_labels) {
    // The list carries no labels: fall back to the submitted fields and the creation time.
    candidates.clear();
    for (const auto& p : listed.value) {
      if (!fields_match(job, p)) continue;
      auto owner = store_.find_by_remote_id(p.id);
      if (owner && *owner && (*owner)->id != job.id) continue;  // another job's persona
      candidates.push_back(&p);
    }
    evidence = "matching creator_name, gender, video_scene, keywords and creation time";
  }

  if (candidates.size() == 1) {
    const RemotePersona& p = *candidates.front();
    ++metrics_.adopted;
    job.send_unknown = false;
    job.errors = 0;
    job.remote_id = p.id;
    job.remote_status = p.process_status;
    job.submitted_at = p.created_at.value_or(now);
    job.expires_at = expiry_time(options_.poll, *job.submitted_at);
    job.next_poll_at = now;  // read its current status at once
    if (commit(job, State::pending,
               "reconciled: adopted remote persona " + p.id + " found by " + evidence + " among " +
                   std::to_string(listed.value.size()) + " listed"))
      schedule(job);
    co_return;
  }

  if (candidates.size() > 1) {
    std::string ids;
    for (auto* p : candidates) ids += (ids.empty() ? "" : ", ") + p->id;
    job.needs_operator = true;
    job.next_poll_at.reset();
    commit(job, State::submitting,
           "reconcile ambiguous: " + std::to_string(candidates.size()) + " remote personas match (" +
               ids + "); waiting for personactl resolve " + job.key +
               " --adopt REMOTE_ID | --resubmit");
    co_return;
  }

  // Nothing found. Resend only once the API has had reconcile_after to show the create.
  TimePoint settle = not_before + options_.api.reconcile_after;
  if (now < settle) {
    job.next_poll_at = settle;
    log_.event(level_enum::info, "reconcile_wait",
               {{"key", job.key},
                {"listed", std::to_string(listed.value.size())},
                {"at", format_rfc3339(settle)},
                {"reason", "not listed yet; the API gets " +
                               format_duration(options_.api.reconcile_after) + " to show a create"}});
    if (save(job)) schedule(job);
    co_return;
  }
  ++metrics_.resent;
  mark_sending(job);
  if (!commit(job, State::submitting,
              "reconciled: no persona with " + label + " among " +
                  std::to_string(listed.value.size()) + " listed " +
                  format_duration(std::chrono::duration_cast<Millis>(now - not_before)) +
                  " after the last create; submitting again",
              /*durable=*/true))
    co_return;
  co_await send_create(std::move(job));
}

asio::awaitable<void> Tracker::poll(Job job) {
  if (!job.remote_id) {
    // Cannot happen through the tracker; an edited database could. Say so rather than loop.
    job.failed_reason = "pending without a remote id";
    commit(job, State::failed, "inconsistent row: pending without a remote id");
    co_return;
  }
  auto r = co_await api_.get(*job.remote_id);
  auto current = reload(job);
  if (!current) co_return;
  job = std::move(*current);
  TimePoint now = clock_.now();
  TimePoint expires = job.expires_at.value_or(
      expiry_time(options_.poll, job.submitted_at.value_or(job.created_at)));

  if (r.outcome != Outcome::ok) {
    bool gone = r.outcome == Outcome::permanent && (r.http_status == 404 || r.http_status == 410);
    if (gone) {
      job.failed_reason = "remote persona " + *job.remote_id + " not found (HTTP " +
                          std::to_string(r.http_status) + ")";
      commit(job, State::failed, *job.failed_reason);
      co_return;
    }
    count_api_error(r.outcome);
    // An API that never answers still lets the job expire, after one more retry window.
    if (now >= expires + options_.api.retry_max) {
      commit(job, State::expired,
             "no final status within " + format_duration(options_.poll.give_up_after) +
                 "; the API did not answer: " + r.message);
      co_return;
    }
    TimePoint at = retry_at(job, r.retry_after);
    log_.event(level_enum::warn, "poll_retry",
               {{"key", job.key},
                {"remote_id", *job.remote_id},
                {"at", format_rfc3339(at)},
                {"reason", r.message}});
    if (save(job)) schedule(job);
    co_return;
  }

  ++job.polls;
  ++metrics_.polls;
  job.errors = 0;
  const RemotePersona& p = r.value;
  std::string previous = job.remote_status.value_or("");
  job.remote_status = p.process_status;
  if (!is_documented_status(p.process_status)) warn_unknown_status(job, p.process_status);

  switch (classify_remote(options_.api.status, p.process_status, p.is_active)) {
    case RemoteVerdict::done:
      commit(job, State::done, "process_status=" + p.process_status + " is_active=" +
                                   (p.is_active ? "true" : "false"));
      co_return;
    case RemoteVerdict::failed:
      job.failed_reason = p.failed_reason.empty() ? p.process_status : p.failed_reason;
      commit(job, State::failed, "process_status=" + p.process_status + ": " + *job.failed_reason);
      co_return;
    case RemoteVerdict::pending:
      break;
  }
  if (now >= expires) {
    commit(job, State::expired,
           "no final status within " + format_duration(options_.poll.give_up_after) +
               " (last process_status=" + p.process_status + ")");
    co_return;
  }
  job.next_poll_at = std::min(now + poll_delay(options_.poll, job.polls, rnd()), expires);
  bool ok = true;
  if (previous != p.process_status) {
    std::string reason = "process_status " + (previous.empty() ? "none" : previous) + " → " +
                         p.process_status;
    if (awaiting_approval(options_.api.status, p.process_status, p.is_active))
      reason += " (awaiting approval: is_active=false)";
    ok = commit(job, State::pending, std::move(reason));
  } else {
    ok = save(job);
  }
  if (ok) schedule(job);
}

bool Tracker::commit(Job& job, State to, std::string reason, bool durable) {
  Transition t;
  t.job_id = job.id;
  t.at = clock_.now();
  t.from = job.state;
  t.to = to;
  t.remote_status = job.remote_status.value_or("");
  t.reason = std::move(reason);
  Job next = job;
  next.state = to;
  next.updated_at = t.at;
  if (is_final(to)) next.next_poll_at.reset();
  if (auto r = store_.apply(next, t, durable); !r) {
    ++metrics_.store_errors;
    log_.event(level_enum::err, "store_error",
               {{"key", job.key},
                {"from", std::string(to_string(job.state))},
                {"to", std::string(to_string(to))},
                {"reason", r.message()}});
    // The row still says what it said; try the whole step again later.
    if (accepting_) scheduler_.schedule(job.id, t.at + options_.api.retry_max);
    return false;
  }
  job = std::move(next);
  log_.transition(job, t);
  ++metrics_.transitions[to];
  if (hook_) hook_(job, t);
  return true;
}

bool Tracker::save(Job& job) {
  job.updated_at = clock_.now();
  if (auto r = store_.update(job); !r) {
    ++metrics_.store_errors;
    log_.event(level_enum::err, "store_error", {{"key", job.key}, {"reason", r.message()}});
    if (accepting_) scheduler_.schedule(job.id, job.updated_at + options_.api.retry_max);
    return false;
  }
  return true;
}

void Tracker::schedule(const Job& job) {
  if (!accepting_ || is_final(job.state) || !job.next_poll_at) return;
  scheduler_.schedule(job.id, *job.next_poll_at);
}

std::optional<Job> Tracker::reload(const Job& before) {
  auto r = store_.get(before.id);
  if (!r || !*r) {
    ++metrics_.store_errors;
    log_.event(level_enum::err, "store_error",
               {{"key", before.key}, {"reason", r ? "job vanished from the store" : r.message()}});
    return std::nullopt;
  }
  if ((*r)->state != before.state) {
    log_.event(level_enum::info, "superseded",
               {{"key", before.key},
                {"state", std::string(to_string((*r)->state))},
                {"reason", "an operator changed the job while a request was in flight"}});
    return std::nullopt;
  }
  return std::move(**r);
}

void Tracker::count_api_error(Outcome o) {
  if (o == Outcome::transient) ++metrics_.api_transient;
  if (o == Outcome::permanent) ++metrics_.api_permanent;
  if (o == Outcome::unauthorized) ++metrics_.api_unauthorized;
}

TimePoint Tracker::retry_at(Job& job, std::optional<Millis> retry_after) {
  ++job.errors;
  TimePoint at = clock_.now() + retry_delay(options_.api, job.errors, retry_after, rnd());
  job.next_poll_at = at;
  return at;
}

void Tracker::warn_unknown_status(const Job& job, const std::string& status) {
  if (!warned_statuses_.insert(status).second) return;
  log_.event(level_enum::warn, "unknown_status",
             {{"key", job.key},
              {"remote_status", status},
              {"reason", "process_status not documented by the API; the job stays pending (logged "
                         "once per value)"}});
}

// ---- Operator actions ----

namespace {
ActionResult refuse(ActionStatus s, std::string message) {
  return ActionResult{s, std::move(message), std::nullopt};
}
}  // namespace

ActionResult Tracker::cancel(std::string_view key) {
  auto found = store_.find(key);
  if (!found) return refuse(ActionStatus::failed, found.message());
  if (!*found) return refuse(ActionStatus::unknown_key, "unknown key '" + std::string(key) + "'");
  Job job = std::move(**found);
  if (is_final(job.state))
    return refuse(ActionStatus::not_allowed, "job '" + job.key + "' is already " +
                                                 std::string(to_string(job.state)));
  std::string reason = "cancelled by operator";
  if (job.state == State::queued) reason += "; nothing was sent";
  if (job.state == State::submitting)
    reason += "; a create may exist remotely with label " + client_label(job.client_ref);
  if (job.state == State::pending) reason += "; remote persona " + job.remote_id.value_or("?") +
                                             " is no longer tracked";
  if (!commit(job, State::cancelled, reason))
    return refuse(ActionStatus::failed, "could not record the cancel; see the log");
  scheduler_.cancel(job.id);
  return ActionResult{ActionStatus::ok, reason, job};
}

ActionResult Tracker::retry(std::string_view key, bool resubmit) {
  auto found = store_.find(key);
  if (!found) return refuse(ActionStatus::failed, found.message());
  if (!*found) return refuse(ActionStatus::unknown_key, "unknown key '" + std::string(key) + "'");
  Job job = std::move(**found);
  // Only final jobs are retried, and a job action writes nothing after its final commit, so
  // an action still winding down cannot race with this one.
  TimePoint now = clock_.now();
  if (job.state == State::expired) {
    job.expires_at = now + options_.poll.give_up_after;
    job.next_poll_at = now;
    job.errors = 0;
    if (!commit(job, State::pending,
                "retry by operator: polling resumes for another " +
                    format_duration(options_.poll.give_up_after)))
      return refuse(ActionStatus::failed, "could not record the retry; see the log");
    schedule(job);
    return ActionResult{ActionStatus::ok, "polling resumed", job};
  }
  if (job.state == State::failed) {
    if (!resubmit)
      return refuse(ActionStatus::not_allowed,
                    "job '" + job.key + "' failed (" + job.failed_reason.value_or("") +
                        "); creating it anew costs credits: confirm with --resubmit");
    std::string old_id = job.remote_id.value_or("none");
    job.client_ref = new_client_ref();  // the old persona keeps the old label
    job.remote_id.reset();
    job.remote_status.reset();
    job.failed_reason.reset();
    job.submitted_at.reset();
    job.expires_at.reset();
    job.submitting_since.reset();
    job.last_sent_at.reset();
    job.send_unknown = false;
    job.needs_operator = false;
    job.polls = 0;
    job.errors = 0;
    job.next_poll_at = now;
    if (!commit(job, State::queued,
                "retry --resubmit by operator: a new create with client_ref " + job.client_ref +
                    " (previous remote persona: " + old_id + ")"))
      return refuse(ActionStatus::failed, "could not record the retry; see the log");
    schedule(job);
    return ActionResult{ActionStatus::ok, "queued for a new create", job};
  }
  return refuse(ActionStatus::not_allowed, "job '" + job.key + "' is " +
                                               std::string(to_string(job.state)) +
                                               "; only failed or expired jobs can be retried");
}

ActionResult Tracker::resolve(std::string_view key, std::optional<std::string> adopt,
                              bool resubmit) {
  auto found = store_.find(key);
  if (!found) return refuse(ActionStatus::failed, found.message());
  if (!*found) return refuse(ActionStatus::unknown_key, "unknown key '" + std::string(key) + "'");
  Job job = std::move(**found);
  if (job.state != State::submitting)
    return refuse(ActionStatus::not_allowed,
                  "job '" + job.key + "' is " + std::string(to_string(job.state)) +
                      "; only a submitting job can be resolved");
  if (running_.count(job.id))
    return refuse(ActionStatus::not_allowed, "job '" + job.key + "' has a request in flight");
  if (adopt.has_value() == resubmit)
    return refuse(ActionStatus::not_allowed, "give exactly one of --adopt REMOTE_ID or --resubmit");
  TimePoint now = clock_.now();
  job.needs_operator = false;
  job.errors = 0;
  job.next_poll_at = now;
  if (adopt) {
    if (auto owner = store_.find_by_remote_id(*adopt); owner && *owner)
      return refuse(ActionStatus::not_allowed,
                    "remote persona " + *adopt + " already belongs to job '" + (*owner)->key + "'");
    job.send_unknown = false;
    job.remote_id = *adopt;
    job.submitted_at = now;
    job.expires_at = expiry_time(options_.poll, now);
    if (!commit(job, State::pending, "resolved by operator: adopted remote persona " + *adopt))
      return refuse(ActionStatus::failed, "could not record the resolve; see the log");
  } else {
    job.send_unknown = false;
    job.submitting_since.reset();
    if (!commit(job, State::queued, "resolved by operator: not created; submitting again"))
      return refuse(ActionStatus::failed, "could not record the resolve; see the log");
  }
  if (adopt) ++metrics_.adopted;
  schedule(job);
  return ActionResult{ActionStatus::ok, adopt ? "adopted" : "queued for a new create", job};
}

}  // namespace personad
