// The job state machine in motion (see tracker.hpp). Each due job runs one step at a time;
// every step commits to the store before the next request leaves, so a crash at any point
// leaves a row that says exactly what may have happened.
#include "personad/tracker.hpp"

#include <spdlog/logger.h>

#include <algorithm>
#include <future>
#include <map>

#include "personad/backoff.hpp"
#include "personad/create_outcome.hpp"
#include "personad/poll_outcome.hpp"
#include "personad/reconcile.hpp"

namespace personad {

namespace asio = boost::asio;
using spdlog::level::level_enum;

namespace {

ListingOptions listing_options(const ApiConfig& api) {
  ListingOptions o;
  o.retry_initial = api.retry_initial;
  o.retry_max = api.retry_max;
  return o;
}

// One request under a request slot of `gate`, given back when the request ends (the commit
// that follows waits without it); nullopt when the gate closed first: the tracker is stopping,
// and nothing was sent.
template <class T>
asio::awaitable<std::optional<T>> with_request_slot(SlotGate& gate, asio::awaitable<T> request) {
  auto slot = co_await gate.hold();
  if (!slot) co_return std::nullopt;
  co_return co_await std::move(request);
}

std::size_t in_flight_limit(const ApiConfig& api) {
  return static_cast<std::size_t>(std::max(1, api.max_in_flight));
}

// Steps that may run at once, per request slot. A poll's step spends most of its time after
// its request, waiting for the grouped commit (an fsync: milliseconds on a disk, against well
// under one for a request to a fast API); without more steps than requests, the slots sit idle
// through every commit. Four per slot keeps them busy with commits up to 3× a request's time.
constexpr std::size_t kStepsPerRequestSlot = 4;

// Jobs kept between polls (Tracker::kept_): at most this many (~1-2 KiB each with their spec),
// and only those due again within the horizon; one polled hours apart gains nothing from
// staying in memory, and its read is then one among thousands of seconds.
constexpr std::size_t kKeptJobsMax = 4096;
constexpr Millis kKeepHorizon{600'000};

}  // namespace

Tracker::Tracker(asio::any_io_executor ex, StoreRunner& store, CreatifyApi& api,
                 const Clock& clock, const EventLog& log, TrackerOptions options, Random random)
    : ex_(ex),
      store_(store),
      api_(api),
      clock_(clock),
      log_(log),
      options_(std::move(options)),
      webhook_poll_(relaxed_for_webhook(options_.poll)),
      random_(std::move(random)),
      new_ref_([] { return new_client_ref(); }),
      scheduler_(ex, clock,
                 [this](std::int64_t id) {
                   if (accepting_) runner_.due(id);
                 }),
      requests_(ex, 1),  // apply_limits()
      runner_(
          ex, [this](std::int64_t id) { return step(id); },
          [this](std::int64_t id, StepEnd end, const std::string& failure) {
            step_done(id, end, failure);
          }),
      listing_(api, clock, listing_options(options_.api), [this] { return rnd(); }, requests_) {
  apply_limits();
}

Tracker::~Tracker() = default;

void Tracker::update_options(TrackerOptions options) {
  options_ = std::move(options);
  webhook_poll_ = relaxed_for_webhook(options_.poll);
  apply_limits();
  listing_.update_options(listing_options(options_.api));
  capacity_.configure(options_.api.check_capacity, options_.api.capacity_recheck);
}

void Tracker::apply_limits() {
  requests_.set_limit(in_flight_limit(options_.api));
  runner_.set_limit(kStepsPerRequestSlot * in_flight_limit(options_.api));
}

Result<void> Tracker::start() {
  started_at_ = clock_.now();
  TimePoint now = clock_.now();
  std::size_t overdue = 0;
  std::size_t held = 0;
  std::size_t active = 0;
  double rps = options_.api.max_requests_per_second;
  std::vector<std::pair<TimePoint, std::int64_t>> due;
  // Before the loop runs: wait for the store thread (a promise, not the loop).
  std::promise<Result<void>> loaded;
  StoreRunner::Task task;
  std::optional<Result<void>> outcome;
  task.access = StoreRunner::Access::read;
  task.work = [&](Store& s) {
    outcome.emplace(s.for_each_active([&](const ScheduleEntry& e) {
      ++active;
      if (e.needs_operator) {
        ++held;  // waits for `personactl resolve`
        return;
      }
      due.emplace_back(e.due.value_or(now), e.id);
    }));
  };
  task.group_failed = [&](const Error& e) { outcome.emplace(e); };
  task.finish = [&] { loaded.set_value(outcome ? std::move(*outcome) : Result<void>()); };
  store_.submit(std::move(task));
  auto r = loaded.get_future().get();
  if (!r) return r.error();
  // In due order: overdue work keeps its order and is spread at the request rate instead of
  // all firing at once, and the scheduler's timer is armed once rather than per job.
  std::sort(due.begin(), due.end());
  for (auto& [at, id] : due) {
    if (at <= now) at = add_saturating(now, startup_spread(overdue++, rps));
    scheduler_.schedule(id, at);
  }
  log_.event(level_enum::info, "loaded",
             {{"active", std::to_string(active)},
              {"overdue", std::to_string(overdue)},
              {"awaiting_operator", std::to_string(held)}});
  return {};
}

asio::awaitable<Result<std::vector<EnqueueOutcome>>> Tracker::enqueue(
    std::vector<PersonaSpec> specs, std::string source) {
  if (!accepting_)
    co_return make_error(ErrorKind::unavailable, "personad is shutting down; nothing was enqueued");
  std::string reason = "enqueued from " + source;
  TimePoint now = clock_.now();
  // The references are made here, on the loop (the source may not be thread-safe), one per
  // spec; a known key leaves its reference unused.
  std::vector<std::string> refs;
  refs.reserve(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) refs.push_back(new_ref_());
  auto insert = [&specs, &source, &reason, now, &refs](Store& s) {
    std::size_t next = 0;
    return s.enqueue(specs, source, reason, now, [&] { return refs[next++]; });
  };
  // Many rows (a batch file's chunk) commit after the writes taken with them (store_runner.hpp).
  Result<std::vector<EnqueueOutcome>> r = std::vector<EnqueueOutcome>{};
  if (specs.size() > 1)
    r = co_await store_.write_bulk(insert);
  else
    r = co_await store_.write(insert);
  if (!r) {
    ++metrics_.store_errors;
    co_return r;
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
  co_return r;
}

namespace {
// The ids of the queued jobs, from what scheduling reads (not their rows: 100,000 queued rows
// with their specs were ~140 MiB for the moment of a start-up).
Result<std::vector<std::int64_t>> queued_ids(Store& s) {
  std::vector<std::int64_t> ids;
  auto r = s.for_each_active([&ids](const ScheduleEntry& e) {
    if (e.state == State::queued) ids.push_back(e.id);
  });
  if (!r) return r.error();
  return ids;
}
}  // namespace

asio::awaitable<std::size_t> Tracker::adopt_queued() {
  auto queued = co_await store_.read(queued_ids);
  if (!queued) {
    ++metrics_.store_errors;
    log_.event(level_enum::err, "store_error", {{"reason", queued.message()}});
    co_return 0;
  }
  std::size_t n = 0;
  for (const std::int64_t id : *queued) {
    if (is_tracking(id)) continue;
    scheduler_.schedule(id, clock_.now());
    ++n;
  }
  if (n)
    log_.event(level_enum::info, "adopted_queued",
               {{"jobs", std::to_string(n)},
                {"reason", "queued rows written to the database by personactl"}});
  co_return n;
}

bool Tracker::poll_soon(std::int64_t job_id) {
  if (!accepting_ || !is_tracking(job_id)) return false;
  runner_.due(job_id);
  return true;
}

const PollConfig& Tracker::poll_policy(const Job& job) const {
  return options_.hook_url && job.spec.webhook_url.empty() ? webhook_poll_ : options_.poll;
}

void Tracker::stop_taking_work() {
  accepting_ = false;
  kept_->jobs.clear();
  scheduler_.stop();
  runner_.stop();
  requests_.close();  // steps waiting for a request slot end without sending
}

// ---- Steps ----

asio::awaitable<StepEnd> Tracker::step(std::int64_t id) {
  const std::uint64_t epoch = kept_->operator_epoch;
  std::optional<Job> kept = take_kept(id);
  if (!kept) {
    auto loaded = co_await store_.read([id](Store& s) { return s.get(id); });
    if (!loaded) {
      ++metrics_.store_errors;
      log_.event(level_enum::err, "store_error",
                 {{"job_id", std::to_string(id)}, {"reason", loaded.message()}});
      co_return StepEnd::retry_later;
    }
    if (!*loaded) co_return StepEnd::settled;  // the row is gone: nothing to do
    kept = std::move(**loaded);
  }
  Job job = std::move(*kept);
  // Each request waits for a request slot (requests_), held through no commit but a create's
  // intent record (see submit).
  switch (job.state) {
    case State::queued:
      co_return co_await submit(std::move(job));
    case State::submitting:
      if (job.needs_operator) co_return StepEnd::settled;  // waits for the operator
      co_return co_await resend(std::move(job));
    case State::pending:
      co_return co_await poll(std::move(job), epoch);
    default:
      co_return StepEnd::settled;  // final: nothing to do
  }
}

// A submitting job the tracker picks up again: a create that may have left is reconciled, one
// that certainly never left is sent again.
asio::awaitable<StepEnd> Tracker::resend(Job job) {
  if (job.send_unknown) co_return co_await reconcile(std::move(job));
  co_return co_await record_intent_and_send(std::move(job), std::nullopt, "record the send");
}

std::optional<Job> Tracker::take_kept(std::int64_t id) {
  auto it = kept_->jobs.find(id);
  if (it == kept_->jobs.end()) return std::nullopt;
  std::optional<Job> job(std::move(it->second));
  kept_->jobs.erase(it);
  return job;
}

void Tracker::keep(Job job, std::uint64_t epoch) {
  if (epoch != kept_->operator_epoch || !accepting_ || !job.next_poll_at) return;
  if (kept_->jobs.size() >= kKeptJobsMax) return;
  if (*job.next_poll_at > add_saturating(clock_.now(), kKeepHorizon)) return;
  const std::int64_t id = job.id;
  kept_->jobs.insert_or_assign(id, std::move(job));
}

// The kept jobs, not the tracker: the action's coroutine may be destroyed after the tracker.
struct Tracker::OperatorWrites {
  explicit OperatorWrites(Tracker& t) : kept(t.kept_) { forget(); }
  ~OperatorWrites() { forget(); }
  OperatorWrites(const OperatorWrites&) = delete;
  OperatorWrites& operator=(const OperatorWrites&) = delete;
  void forget() {
    ++kept->operator_epoch;
    kept->jobs.clear();
  }
  std::shared_ptr<Kept> kept;
};

void Tracker::step_done(std::int64_t id, StepEnd end, const std::string& failure) {
  if (!failure.empty())
    log_.event(level_enum::err, "internal_error",
               {{"job_id", std::to_string(id)}, {"reason", failure}});
  if (end != StepEnd::retry_later) {
    store_failures_.erase(id);
    return;
  }
  if (!accepting_) return;
  // The row still says what it said: the whole step runs again, on the retry backoff.
  std::int64_t n = ++store_failures_[id];
  scheduler_.schedule(id, add_saturating(clock_.now(),
                                         retry_delay(options_.api, n, std::nullopt, rnd())));
}

// queued → submitting, durably, before anything leaves.
// Before a create: the workspace's capacity (capacity.hpp). A full workspace keeps the job
// queued with its waiting reason, due again when the count is next asked.
asio::awaitable<std::optional<StepEnd>> Tracker::hold_for_capacity(Job& job) {
  capacity_.configure(options_.api.check_capacity, options_.api.capacity_recheck);
  if (!capacity_.active()) co_return std::nullopt;
  if (capacity_.needs_count(clock_.now())) {
    // Places taken while the count is on its way are not in its answer.
    const std::uint64_t taken_before = capacity_.taken();
    auto r = co_await with_request_slot(requests_, api_.count());
    if (!r) co_return StepEnd::stopping;
    if (auto warning = capacity_.record(*r, clock_.now(), taken_before))
      log_.event(level_enum::warn, "capacity_check_off", {{"reason", *warning}});
  }
  // Takes a place at once: jobs submitted side by side cannot overshoot the capacity.
  auto reason = capacity_.take();
  if (!reason) co_return std::nullopt;
  const bool news = job.waiting_reason != *reason;
  job.waiting_reason = *reason;
  job.next_poll_at = capacity_.next_check(clock_.now());
  if (auto s = co_await save(job); !s) co_return end_after(s.error(), job, "hold the job for capacity");
  if (news)
    log_.event(level_enum::info, "capacity_wait",
               {{"key", job.key},
                {"reason", *reason},
                {"next_check", format_rfc3339(*job.next_poll_at)}});
  schedule(job);
  co_return StepEnd::settled;
}

asio::awaitable<StepEnd> Tracker::submit(Job job) {
  if (auto held = co_await hold_for_capacity(job)) co_return *held;
  job.waiting_reason.reset();
  job.submitting_since = clock_.now();
  job.errors = 0;
  co_return co_await record_intent_and_send(std::move(job), "submitting create request",
                                            "record the submission");
}

// The slot before the intent record: the create leaves right after its commit, so the sent time
// the record holds (last_sent_at, from which a reconcile counts) is the real one. A wait for a
// slot between the two would let another host (or the next start) reconcile too early.
asio::awaitable<StepEnd> Tracker::record_intent_and_send(Job job, std::optional<std::string> reason,
                                                         std::string_view what) {
  auto slot = co_await requests_.hold();
  if (!slot) co_return StepEnd::stopping;  // nothing written: the row is as it was
  mark_sending(job);
  Result<void> recorded;
  // The slot waits for this commit: the writer begins its group at once (Task::at_once).
  if (reason)
    recorded = co_await commit(job, State::submitting, std::move(*reason), Commit::at_once);
  else
    recorded = co_await save(job, Commit::at_once);
  if (!recorded) co_return end_after(recorded.error(), job, what);
  co_return co_await send_create(std::move(job), std::move(slot));
}

// The intent record: from the commit that follows, a create may be in flight. If we die during
// the request, the row says so and a reconcile runs at start-up.
void Tracker::mark_sending(Job& job) {
  TimePoint now = clock_.now();
  job.send_unknown = true;
  job.unknown_since.reset();
  job.last_sent_at = now;
  ++job.attempts;
  job.next_poll_at = absence_proof_after(job, options_.api);
}

// The slot is held from before the intent record's commit to the end of the request; the result's
// commit waits without it.
asio::awaitable<StepEnd> Tracker::send_create(Job job, SlotGate::Held slot) {
  if (options_.may_send && !options_.may_send()) {
    log_.event(level_enum::warn, "create_held",
               {{"key", job.key},
                {"reason", "this host's lease on the shared store may have run out; the create "
                           "is reconciled instead of sent"}});
    schedule(job);
    co_return StepEnd::settled;
  }
  ++metrics_.creates_sent;
  // The callback URL goes with the request only: the stored spec stays the operator's.
  PersonaSpec sent = job.spec;
  if (options_.hook_url && sent.webhook_url.empty()) sent.webhook_url = options_.hook_url(job.client_ref);
  auto r = co_await api_.create(sent, job.client_ref);
  slot.reset();
  const CreateDecision d = decide_create(r);

  // No re-read: the job cannot change under a running step but by an operator's action, and
  // then the store refuses the step's write (conflict), so the action stands.
  TimePoint now = clock_.now();

  switch (d.verdict) {
    case CreateVerdict::created: {
      Job created = job;
      created.send_unknown = false;
      created.unknown_since.reset();
      created.errors = 0;
      created.remote_id = r.value.id;
      created.remote_status = r.value.process_status;
      created.submitted_at = now;
      created.expires_at = expiry_time(options_.poll, now);
      created.next_poll_at = next_poll_time(poll_policy(created), now, 0, now, rnd());
      // A remote id another job holds is the API's fault: never adopt it twice, never resend.
      // The commit looks for its holder itself (held_by), so it sees the results grouped before
      // it too: two creates answered with one id in the same moment cannot both take it.
      std::optional<std::string> held_by;
      if (auto c = co_await commit(created, State::pending, d.reason, Commit::grouped, &held_by); !c) {
        if (c.kind() == ErrorKind::conflict)
          log_.event(level_enum::warn, "late_result",
                     {{"key", job.key},
                      {"remote_id", r.value.id},
                      {"reason", "the create succeeded after the job was cancelled; the remote "
                                 "persona exists"}});
        co_return end_after(c.error(), job, "record the create");
      }
      if (held_by) {
        flag_for_operator(job, "the API answered the create with remote persona " + r.value.id +
                                   ", which belongs to job '" + *held_by +
                                   "'; personactl resolve " + job.key +
                                   " --adopt REMOTE_ID | --resubmit");
        if (auto c = co_await commit(job, State::submitting, *job.operator_reason); !c)
          co_return end_after(c.error(), job, "flag the job");
        co_return StepEnd::settled;
      }
      schedule(created);
      co_return StepEnd::settled;
    }
    case CreateVerdict::rejected: {
      job.send_unknown = false;
      job.unknown_since.reset();
      job.failed_reason = r.message;
      if (auto c = co_await commit(job, State::failed, d.reason); !c)
        co_return end_after(c.error(), job, "record the rejection");
      co_return StepEnd::settled;
    }
    case CreateVerdict::not_sent:
    case CreateVerdict::unknown: {
      count_api_error(r.outcome);
      const bool not_sent = d.verdict == CreateVerdict::not_sent;
      // Not sent: certainly not created, send again later. Unknown: only a reconcile may
      // decide; its first look (soon: the label may be listed at once) starts the clock.
      job.send_unknown = !not_sent;
      if (!not_sent) job.unknown_since = now;
      ++job.errors;
      job.next_poll_at =
          add_saturating(now, retry_delay(options_.api, job.errors, r.retry_after, rnd()));
      log_.event(r.outcome == Outcome::unauthorized ? level_enum::err : level_enum::warn,
                 not_sent ? "create_not_sent" : "create_outcome_unknown",
                 {{"key", job.key},
                  {"attempt", std::to_string(job.attempts)},
                  {"next", not_sent ? "resend" : "reconcile"},
                  {"at", format_rfc3339(*job.next_poll_at)},
                  {"reason", d.reason}});
      if (auto s = co_await save(job); !s) co_return end_after(s.error(), job, "record the create's failure");
      schedule(job);
      co_return StepEnd::settled;
    }
  }
  co_return StepEnd::settled;
}

asio::awaitable<StepEnd> Tracker::reconcile(Job job) {
  ++metrics_.reconciles;
  std::string resend_reason;  // set when the verdict is to send again
  TimePoint look = clock_.now();
  // The first look after a failure (or after a restart, when the failure was never seen):
  // from here the deadline and the freshness rule count.
  const bool first_look =
      !job.unknown_since || (job.last_sent_at && *job.unknown_since < *job.last_sent_at);
  const TimePoint since = first_look ? look : *job.unknown_since;
  {
    Job probe = job;
    probe.unknown_since = since;
    const TimePoint proof_after = absence_proof_after(probe, options_.api);
    // Before proof_after any listing since the failure may still show the create (adopt);
    // from then on only a listing started after proof_after may prove it absent.
    const TimePoint not_before = look >= proof_after ? proof_after : since;
    // Shared by the reconciles that can use it; the one that starts it holds a request slot.
    auto got = co_await listing_.get(not_before);
    if (!got) co_return StepEnd::stopping;
    const SharedListingResult listed = std::move(*got);

    if (first_look) job.unknown_since = since;
    TimePoint now = clock_.now();

    // Which of the candidates other jobs already hold: one read for all of them.
    std::map<std::string, std::int64_t> holders;
    if (listed.outcome == Outcome::ok && listed.value) {
      auto ids = owner_checks(job, *listed.value);
      if (!ids.empty()) {
        auto found = co_await store_.read([&ids](Store& s) -> Result<std::map<std::string, std::int64_t>> {
          std::map<std::string, std::int64_t> out;
          for (const auto& id : ids) {
            auto holder = s.find_by_remote_id(id);
            if (!holder) return holder.error();
            if (*holder) out[id] = (*holder)->id;
          }
          return out;
        });
        if (!found) co_return end_after(found.error(), job, "look up the listed personas");
        holders = std::move(*found);
      }
    }
    const RemoteOwner owner = [&holders](std::string_view remote_id) -> std::optional<std::int64_t> {
      auto it = holders.find(std::string(remote_id));
      if (it == holders.end()) return std::nullopt;
      return it->second;
    };
    const ReconcileDecision d = decide_reconcile(job, listed, now, options_.api, owner, rnd());
    switch (d.verdict) {
      case ReconcileVerdict::adopt: {
        const RemotePersona& p = *d.persona;
        Job adopted = job;
        adopted.send_unknown = false;
        adopted.unknown_since.reset();
        adopted.errors = 0;
        adopted.remote_id = p.id;
        adopted.remote_status = p.process_status;
        // The API's creation time, kept within what we know: not before we first sent, not
        // after now (an API clock far off must not expire the job at once or never).
        TimePoint created = p.created_at.value_or(now);
        created = std::clamp(created, job.submitting_since.value_or(job.created_at), now);
        adopted.submitted_at = created;
        adopted.expires_at = expiry_time(options_.poll, created);
        adopted.next_poll_at = now;  // read its current status at once
        // The holders read above were committed before the listing's answer; one committed
        // since (another job adopting or created with the same id) is caught by the commit.
        std::optional<std::string> held_by;
        if (auto c = co_await commit(adopted, State::pending, d.reason, Commit::grouped, &held_by); !c)
          co_return end_after(c.error(), job, "record the adoption");
        if (held_by) {
          flag_for_operator(job, "remote persona " + p.id + ", listed with this job's label, "
                                 "belongs to job '" + *held_by + "'; personactl resolve " +
                                 job.key + " --adopt REMOTE_ID | --resubmit");
          if (auto c = co_await commit(job, State::submitting, *job.operator_reason); !c)
            co_return end_after(c.error(), job, "flag the job");
          co_return StepEnd::settled;
        }
        ++metrics_.adopted;
        schedule(adopted);
        co_return StepEnd::settled;
      }
      case ReconcileVerdict::ambiguous:
      case ReconcileVerdict::flag: {
        flag_for_operator(job, d.reason);
        if (auto c = co_await commit(job, State::submitting, d.reason); !c)
          co_return end_after(c.error(), job, "flag the job");
        co_return StepEnd::settled;
      }
      case ReconcileVerdict::wait:
      case ReconcileVerdict::retry: {
        const bool retry = d.verdict == ReconcileVerdict::retry;
        if (retry) {
          count_api_error(listed.outcome);
          job.errors = d.errors;
        }
        job.next_poll_at = d.at;
        log_.event(retry ? level_enum::warn : level_enum::info,
                   retry ? "reconcile_deferred" : "reconcile_wait",
                   {{"key", job.key}, {"at", format_rfc3339(d.at)}, {"reason", d.reason}});
        if (auto s = co_await save(job); !s) co_return end_after(s.error(), job, "record the reconcile");
        schedule(job);
        co_return StepEnd::settled;
      }
      case ReconcileVerdict::resend: {
        ++metrics_.resent;
        job.errors = 0;
        resend_reason = d.reason;
        break;
      }
    }
  }
  // Out of the block: the listing is let go before the create.
  co_return co_await record_intent_and_send(std::move(job), std::move(resend_reason),
                                            "record the resend");
}

asio::awaitable<StepEnd> Tracker::poll(Job job, std::uint64_t epoch) {
  if (!job.remote_id) {
    // Cannot happen through the tracker; an edited database could. Say so rather than loop.
    job.failed_reason = "pending without a remote id";
    if (auto c = co_await commit(job, State::failed, "inconsistent row: pending without a remote id"); !c)
      co_return end_after(c.error(), job, "fail the job");
    co_return StepEnd::settled;
  }
  auto answer = co_await with_request_slot(requests_, api_.get(*job.remote_id));
  if (!answer) co_return StepEnd::stopping;
  const ApiResult<RemotePersona>& r = *answer;
  TimePoint now = clock_.now();
  const PollDecision d = decide_poll(job, r, now, options_.api, poll_policy(job), rnd());

  job.missing_since = d.missing_since;  // an answer clears them, a 404 counts
  job.missing_count = d.missing_count;
  if (d.answered) {
    ++job.polls;
    ++metrics_.polls;
    job.errors = 0;
    job.remote_status = d.remote_status;
    if (!is_documented_status(*d.remote_status)) warn_unknown_status(job, *d.remote_status);
  }
  switch (d.verdict) {
    case PollVerdict::done:
    case PollVerdict::failed:
    case PollVerdict::expired: {
      if (d.failed_reason) job.failed_reason = d.failed_reason;
      State to = d.verdict == PollVerdict::done     ? State::done
                 : d.verdict == PollVerdict::failed ? State::failed
                                                    : State::expired;
      if (auto c = co_await commit(job, to, d.reason); !c) co_return end_after(c.error(), job, "record the poll");
      co_return StepEnd::settled;
    }
    case PollVerdict::pending: {
      job.next_poll_at = d.next_at;
      // (No co_await inside ?: — GCC 12 destroys its result twice.)
      Result<void> w;
      if (d.status_changed)
        w = co_await commit(job, State::pending, d.reason);
      else
        w = co_await save_poll(job);
      if (!w) co_return end_after(w.error(), job, "record the poll");
      schedule(job);
      // The row is now exactly `job` (record_poll wrote the poll's columns from it; a commit
      // moved status_since in the store, so that row is read again).
      if (!d.status_changed) keep(std::move(job), epoch);
      co_return StepEnd::settled;
    }
    case PollVerdict::retry: {
      count_api_error(r.outcome);
      job.errors = d.errors;
      job.next_poll_at = d.next_at;
      log_.event(level_enum::warn, "poll_retry",
                 {{"key", job.key},
                  {"remote_id", *job.remote_id},
                  {"at", format_rfc3339(d.next_at)},
                  {"reason", d.reason}});
      if (auto s = co_await save_poll(job); !s) co_return end_after(s.error(), job, "record the poll");
      schedule(job);
      co_return StepEnd::settled;
    }
  }
  co_return StepEnd::settled;
}

// ---- Writes and their effects ----

asio::awaitable<Result<void>> Tracker::commit(Job& job, State to, std::string reason,
                                              Commit when, std::optional<std::string>* held_by) {
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
  if (held_by) held_by->reset();
  auto r = co_await store_.write(
      [&next, &t, held_by](Store& s) -> Result<void> {
        if (held_by && next.remote_id) {
          auto holder = s.find_by_remote_id(*next.remote_id);
          if (!holder) return holder.error();
          if (*holder && (*holder)->id != next.id) {
            *held_by = (*holder)->key;
            return Result<void>();  // nothing written
          }
        }
        return s.apply(next, t);
      },
      when == Commit::at_once);
  if (!r) co_return r.error();
  if (held_by && *held_by) co_return Result<void>();
  job = std::move(next);
  log_.transition(job, t);
  ++metrics_.transitions[to];
  if (hook_) hook_(job, t);
  co_return Result<void>();
}

asio::awaitable<Result<void>> Tracker::save(Job& job, Commit when) {
  job.updated_at = clock_.now();
  co_return co_await store_.write([&job](Store& s) { return s.update(job); },
                                  when == Commit::at_once);
}

asio::awaitable<Result<void>> Tracker::save_poll(Job& job) {
  job.updated_at = clock_.now();
  co_return co_await store_.write([&job](Store& s) { return s.record_poll(job); });
}

asio::awaitable<Result<Job>> Tracker::find_job(std::string key) {
  auto found = co_await store_.read([&key](Store& s) { return s.find(key); });
  if (!found) co_return found.error();
  if (!*found) co_return make_error(ErrorKind::not_found, "unknown key '" + key + "'");
  co_return std::move(**found);
}

StepEnd Tracker::end_after(const Error& e, const Job& job, std::string_view what) {
  if (e.kind == ErrorKind::conflict || e.kind == ErrorKind::not_found) {
    log_.event(level_enum::info, "superseded",
               {{"key", job.key},
                {"reason", "an operator changed the job while a request was in flight (" +
                               e.message + ")"}});
    return StepEnd::superseded;
  }
  ++metrics_.store_errors;
  log_.event(level_enum::err, "store_error",
             {{"key", job.key},
              {"state", std::string(to_string(job.state))},
              {"reason", "cannot " + std::string(what) + ": " + e.message +
                             "; the step runs again later"}});
  return StepEnd::retry_later;
}

void Tracker::schedule(const Job& job) {
  if (!accepting_ || is_final(job.state) || job.needs_operator || !job.next_poll_at) return;
  scheduler_.schedule(job.id, *job.next_poll_at);
}

void Tracker::flag_for_operator(Job& job, std::string reason) {
  ++metrics_.flagged;
  job.needs_operator = true;
  job.operator_reason = std::move(reason);
  job.next_poll_at.reset();
  log_.event(level_enum::warn, "needs_operator",
             {{"key", job.key}, {"reason", *job.operator_reason}});
}

void Tracker::count_api_error(Outcome o) {
  if (o == Outcome::transient) ++metrics_.api_transient;
  if (o == Outcome::permanent) ++metrics_.api_permanent;
  if (o == Outcome::unauthorized) ++metrics_.api_unauthorized;
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

Error refuse(std::string message) { return make_error(ErrorKind::conflict, std::move(message)); }

Error not_recorded(std::string_view what, const Error& e) {
  return make_error(e.kind == ErrorKind::conflict ? ErrorKind::conflict : ErrorKind::io,
                    "could not record the " + std::string(what) + ": " + e.message);
}

}  // namespace

asio::awaitable<Result<ActionOutcome>> Tracker::cancel(std::string key) {
  OperatorWrites bracket(*this);
  auto found = co_await find_job(key);
  if (!found) co_return found.error();
  Job job = std::move(*found);
  auto plan = plan_cancel(job);
  if (!plan) co_return plan.error();
  job = std::move(plan->job);
  if (auto c = co_await commit(job, State::cancelled, plan->reason); !c) co_return not_recorded("cancel", c.error());
  scheduler_.cancel(job.id);
  co_return ActionOutcome{plan->message, job};
}

asio::awaitable<Result<ActionOutcome>> Tracker::retry(std::string key, bool resubmit) {
  OperatorWrites bracket(*this);
  auto found = co_await find_job(key);
  if (!found) co_return found.error();
  // Only final jobs are retried, and a step writes nothing after its final commit, so a step
  // still winding down cannot race with this one.
  auto plan = plan_retry(*found, resubmit, clock_.now(), options_.poll.give_up_after, new_ref_);
  if (!plan) co_return plan.error();
  Job job = std::move(plan->job);
  if (auto c = co_await commit(job, plan->to, plan->reason); !c) co_return not_recorded("retry", c.error());
  schedule(job);
  co_return ActionOutcome{plan->message, job};
}

namespace {

// One chunk's writes in one transaction: inside the store thread's group already (the daemon),
// or in a group of its own (an inline runner). A write that conflicts with a step is refused
// before it changes anything, so it leaves the others.
std::vector<std::optional<Error>> apply_chunk(Store& s,
                                              const std::vector<std::pair<Job, Transition>>& w) {
  const bool own_group = static_cast<bool>(s.begin_group());
  std::vector<std::optional<Error>> out;
  out.reserve(w.size());
  for (const auto& [job, t] : w) {
    auto r = s.apply(job, t);
    out.push_back(r ? std::nullopt : std::optional<Error>(r.error()));
  }
  if (own_group)
    if (auto e = s.end_group(); !e)
      for (auto& o : out) o = e.error();
  return out;
}

}  // namespace

asio::awaitable<Result<std::vector<BulkLine>>> Tracker::act_on_selection(
    BulkAction action, Selection selection, SelectOptions options, bool resubmit) {
  OperatorWrites bracket(*this);
  std::vector<BulkLine> lines;
  std::optional<std::int64_t> left = selection.limit;
  options.count_more = false;
  for (;;) {
    Selection page = selection;
    page.limit = left ? std::min(*left, kBulkChunk) : kBulkChunk;
    auto read = co_await store_.read(
        [&page, &options](Store& s) { return s.select(page, options); });
    if (!read) co_return read.error();
    const TimePoint now = clock_.now();
    std::vector<std::pair<Job, Transition>> writes;
    std::vector<std::string> messages;
    for (const Job& job : read->jobs) {
      auto plan = action == BulkAction::cancel
                      ? plan_cancel(job)
                      : plan_retry(job, resubmit, now, options_.poll.give_up_after, new_ref_);
      if (!plan) {
        lines.push_back({job.key, std::string(to_string(job.state)), BulkLine::Kind::skipped,
                         plan.message()});
        continue;
      }
      Transition t{job.id, now, job.state, plan->to, plan->job.remote_status.value_or(""),
                   plan->reason};
      Job next = std::move(plan->job);
      next.state = plan->to;
      next.updated_at = now;
      if (is_final(plan->to)) next.next_poll_at.reset();
      writes.emplace_back(std::move(next), std::move(t));
      messages.push_back(std::move(plan->message));
    }
    if (!writes.empty()) {
      auto done = co_await store_.write(
          [&writes](Store& s) -> Result<std::vector<std::optional<Error>>> { return apply_chunk(s, writes); });
      if (!done) co_return done.error();
      for (std::size_t i = 0; i < writes.size(); ++i) {
        auto& [job, t] = writes[i];
        if (const auto& e = (*done)[i]) {
          lines.push_back({job.key, std::string(to_string(*t.from)),
                           e->kind == ErrorKind::conflict ? BulkLine::Kind::skipped
                                                          : BulkLine::Kind::failed,
                           "not recorded: " + e->message});
          continue;
        }
        log_.transition(job, t);
        ++metrics_.transitions[t.to];
        if (hook_) hook_(job, t);
        if (is_final(job.state))
          scheduler_.cancel(job.id);
        else
          schedule(job);
        lines.push_back({job.key, std::string(to_string(job.state)), BulkLine::Kind::acted,
                         messages[i]});
      }
    }
    const auto n = static_cast<std::int64_t>(read->jobs.size());
    if (left) *left -= n;
    if (!read->has_more || read->jobs.empty() || (left && *left <= 0)) break;
    selection.after = read->jobs.back().key;
  }
  co_return lines;
}

asio::awaitable<Result<ActionOutcome>> Tracker::resolve(std::string key,
                                                        std::optional<std::string> adopt,
                                                        bool resubmit) {
  OperatorWrites bracket(*this);
  auto found = co_await find_job(key);
  if (!found) co_return found.error();
  Job job = std::move(*found);
  if (job.state != State::submitting)
    co_return refuse("job '" + job.key + "' is " + std::string(to_string(job.state)) +
                  "; only a submitting job can be resolved");
  if (runner_.is_running(job.id)) co_return refuse("job '" + job.key + "' has a request in flight");
  if (adopt.has_value() == resubmit)
    co_return make_error(ErrorKind::invalid, "give exactly one of --adopt REMOTE_ID or --resubmit");
  TimePoint now = clock_.now();
  job.needs_operator = false;
  job.operator_reason.reset();
  job.errors = 0;
  job.next_poll_at = now;
  job.send_unknown = false;
  job.unknown_since.reset();
  if (adopt) {
    job.remote_id = *adopt;
    job.submitted_at = now;
    job.expires_at = expiry_time(options_.poll, now);
    // The commit looks for another holder of the persona itself (held_by): nothing is written
    // if there is one.
    std::optional<std::string> held_by;
    if (auto c = co_await commit(job, State::pending, "resolved by operator: adopted remote persona " + *adopt,
                                 Commit::grouped, &held_by);
        !c)
      co_return not_recorded("resolve", c.error());
    if (held_by)
      co_return refuse("remote persona " + *adopt + " already belongs to job '" + *held_by + "'");
    ++metrics_.adopted;
  } else {
    job.submitting_since.reset();
    if (auto c = co_await commit(job, State::queued, "resolved by operator: not created; submitting again");
        !c)
      co_return not_recorded("resolve", c.error());
  }
  scheduler_.cancel(job.id);
  schedule(job);
  co_return ActionOutcome{adopt ? "adopted" : "queued for a new create", job};
}

}  // namespace personad
