// One seed of the deterministic simulation (see simulation.hpp).
#include "simulation.hpp"

#include <algorithm>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <sstream>

#include "world.hpp"

namespace personad::simulation {

namespace {

constexpr Millis kMinute{60'000};
constexpr Millis kHour{3'600'000};
constexpr Millis kDay{86'400'000};
constexpr Millis kHorizon = 15 * kDay;  // a retry of an expired job at day 8 gets 6 more days
// Handlers run at one instant of virtual time before it counts as a busy loop.
constexpr std::size_t kSpinHandlers = 200'000;
// Timer wake-ups at one instant before it counts as a busy loop.
constexpr std::size_t kSpinWakeups = 10'000;

enum class EventKind {
  submit, cancel, retry, resolve, checkpoint, reboot,
  poll_soon, bulk_cancel, bulk_retry  // drawn from Run::extra_ (see draw_extras)
};

struct Event {
  TimePoint at;
  std::uint64_t order;
  EventKind kind;
  bool operator>(const Event& o) const { return std::tie(at, order) > std::tie(o.at, o.order); }
};

class Run {
 public:
  Run(std::uint64_t seed, SeedOptions options)
      : rng_(seed), extra_(seed ^ 0x9e3779b97f4a7c15ULL), options_(options) {
    report_.seed = seed;
    draw_scenario();
    draw_extras();
    world_ = std::make_unique<World>(world_options_);
  }

  SeedReport go() {
    const TimePoint start = world_->clock().now();
    const TimePoint horizon = start + kHorizon;
    boot_until_up();
    submit(initial_jobs_);
    for (TimePoint t = start + 30 * kMinute; t < horizon; t += 30 * kMinute)
      push(t, EventKind::checkpoint);

    std::optional<TimePoint> last_wake;
    std::size_t wakes_here = 0;
    while (report_.violations.empty()) {
      if (world_->up()) {
        std::size_t n = world_->drain(kSpinHandlers, [this] { maybe_crash(); });
        report_.handlers += n;
        if (n >= kSpinHandlers) {
          violation("busy loop: " + std::to_string(n) + " handlers at " +
                    format_rfc3339(world_->clock().now()) + " without time moving");
          break;
        }
      }
      std::optional<TimePoint> timer = world_->up() ? world_->next_timer() : std::nullopt;
      std::optional<TimePoint> event =
          events_.empty() ? std::nullopt : std::optional<TimePoint>(events_.top().at);
      if (!timer && !event) break;
      if (timer && (!event || *timer <= *event)) {
        if (*timer > horizon) break;
        world_->fire_next();
        ++report_.wakeups;
        if (last_wake == *timer) {
          if (++wakes_here > kSpinWakeups) {
            violation("busy loop: " + std::to_string(wakes_here) + " timer wake-ups at " +
                      format_rfc3339(*timer));
            break;
          }
        } else {
          last_wake = *timer;
          wakes_here = 0;
        }
        continue;
      }
      if (*event > horizon) break;
      Event e = events_.top();
      events_.pop();
      if (e.at > world_->clock().now()) world_->clock().set(e.at);
      handle(e);
    }
    if (report_.violations.empty()) final_checks();
    report_.requests = world_->api().requests();
    report_.creates = world_->api().creates_received();
    report_.store_failures = world_->store_failures();
    if (!report_.ok() || options_.keep_log) report_.log = world_->log_text();
    return report_;
  }

 private:
  // ---- The scenario of this seed ----

  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  bool chance(double p) { return uniform(0, 1) < p; }
  std::int64_t pick(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_);
  }

  // The second generator's draws: only the events added after the first scenarios were drawn.
  bool extra_chance(double p) { return std::uniform_real_distribution<double>(0, 1)(extra_) < p; }
  std::int64_t extra_pick(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(extra_);
  }

  PersonaSpec spec(std::size_t i, bool twin) {
    PersonaSpec s;
    s.key = "job-" + std::to_string(i);
    s.gender = i % 3 == 0 ? "m" : (i % 3 == 1 ? "f" : "nb");
    s.creator_name = twin ? "Twin Creator" : "Creator " + std::to_string(i);
    s.video_scene = "office";
    s.keywords = "friendly";
    s.lipsync_input = "https://cdn.example.com/" + s.key + "/lipsync.mp4";
    s.consent_video = "https://cdn.example.com/" + s.key + "/consent.mp4";
    s.labels = {"campaign"};
    return s;
  }

  void draw_scenario() {
    std::ostringstream sc;
    world_options_.seed = report_.seed;
    world_options_.log_level = options_.debug_log ? spdlog::level::debug : spdlog::level::info;
    world_options_.tracker = simulation_tracker_options();
    world_options_.tracker.api.max_in_flight = static_cast<int>(pick(1, 4));
    SimFaults& f = world_options_.faults;
    f.list_has_labels = chance(0.85);
    f.list_broken = chance(0.03);
    f.list_lag = Millis(pick(0, 15'000));
    f.page_size = static_cast<std::size_t>(pick(1, 6));
    if (chance(0.3)) {  // a hostile day: everything fails more often
      f.create_lost = 0.25;
      f.create_throttled = 0.15;
      f.create_server_error = 0.15;
      f.list_page_fails = 0.3;
      f.get_fails = 0.3;
      f.create_slow = 0.3;
      sc << "hostile ";
    }
    if (chance(0.4)) {
      world_options_.store_read_fail = uniform(0.002, 0.03);
      world_options_.store_write_fail = uniform(0.002, 0.03);
      sc << "store-faults ";
    }
    crash_p_ = chance(0.3) ? 0.0 : 1.0 / static_cast<double>(pick(300, 5'000));
    const std::size_t n = static_cast<std::size_t>(pick(1, 10));
    const bool twins = chance(0.2);
    for (std::size_t i = 0; i < n; ++i) initial_jobs_.push_back(spec(i, twins && i < 2));
    next_job_ = n;
    const TimePoint t0 = World::kStart;
    if (chance(0.3))
      for (int k = pick(1, 3); k > 0; --k) push(t0 + Millis(pick(0, 2 * kDay.count())), EventKind::submit);
    operator_ = chance(0.5);
    if (operator_) {
      for (int k = pick(0, 2); k > 0; --k) push(t0 + Millis(pick(0, 2 * kDay.count())), EventKind::cancel);
      for (int k = pick(0, 3); k > 0; --k) push(t0 + Millis(pick(0, 8 * kDay.count())), EventKind::retry);
      for (Millis t = 3 * kHour; t < 3 * kDay; t += 6 * kHour) push(t0 + t, EventKind::resolve);
    }
    // Even seeds poll on the window-aware schedule (issue 10): sparse until day 1, then steady.
    // Chosen by the seed, not drawn, so every other draw of a seed's scenario stays as it was.
    const bool window = report_.seed % 2 == 0;
    if (window) {
      world_options_.tracker.poll.expected_after = kDay;
      world_options_.tracker.poll.sparse_interval = 18 * kHour;
    }
    report_.jobs = n;
    sc << n << " jobs, max_in_flight " << world_options_.tracker.api.max_in_flight
       << (window ? ", window 1d" : "")
       << (f.list_has_labels ? ", labels" : ", no labels") << (f.list_broken ? ", list 404" : "")
       << ", lag " << f.list_lag.count() << " ms, page " << f.page_size
       << (twins ? ", twins" : "") << (crash_p_ > 0 ? ", crashes" : "")
       << (operator_ ? ", operator" : "");
    report_.scenario = sc.str();
  }

  // Webhook-like "poll this job soon" calls (Tracker::poll_soon) and bulk operator actions
  // (Tracker::act_on_selection). Drawn from their own generator after the rest, so a seed that
  // draws none of them runs exactly as it did before they were added.
  void draw_extras() {
    const TimePoint t0 = World::kStart;
    std::string more;
    if (extra_chance(0.5)) {
      for (auto k = extra_pick(1, 40); k > 0; --k)
        push(t0 + Millis(extra_pick(0, 5 * kDay.count())), EventKind::poll_soon);
      more += ", poll_soon";
    }
    if (extra_chance(0.3)) {
      for (auto k = extra_pick(1, 2); k > 0; --k)
        push(t0 + Millis(extra_pick(0, 2 * kDay.count())), EventKind::bulk_cancel);
      for (auto k = extra_pick(1, 3); k > 0; --k)
        push(t0 + Millis(extra_pick(0, 8 * kDay.count())), EventKind::bulk_retry);
      more += ", bulk actions";
    }
    report_.scenario += more;
  }

  void push(TimePoint at, EventKind kind) { events_.push(Event{at, ++order_, kind}); }

  // ---- Effects ----

  void boot_until_up() {
    for (int i = 0; i < 1000 && !world_->boot(); ++i) world_->clock().advance(Millis(1'000));
    if (!world_->up()) violation("personad could not start in 1,000 tries");
  }

  void maybe_crash() {
    if (crash_p_ <= 0 || !chance(crash_p_)) return;
    world_->crash();
    ++report_.crashes;
    push(world_->clock().now() + Millis(pick(1'000, 600'000)), EventKind::reboot);
  }

  void submit(const std::vector<PersonaSpec>& specs) {
    if (!world_->up()) {
      pending_submits_.insert(pending_submits_.end(), specs.begin(), specs.end());
      return;
    }
    auto r = world_->call(world_->tracker().enqueue(specs, "simulation"));
    if (!r || !*r) {  // a store failure: the operator submits again (known keys are never resent)
      pending_submits_.insert(pending_submits_.end(), specs.begin(), specs.end());
      push(world_->clock().now() + Millis(1'000), EventKind::submit);
    }
  }

  std::vector<Job> jobs() {
    auto all = world_->truth().list(std::nullopt);
    if (!all) {
      violation("cannot read the jobs: " + all.message());
      return {};
    }
    return *all;
  }

  void handle(const Event& e) {
    switch (e.kind) {
      case EventKind::reboot:
        boot_until_up();
        return;
      case EventKind::checkpoint:
        if (world_->up()) checkpoint();
        return;
      default:
        break;
    }
    if (!world_->up()) {
      if (e.kind == EventKind::submit) {  // personactl would write the rows; keep it simple
        push(world_->clock().now() + kMinute, e.kind);
      }
      return;
    }
    switch (e.kind) {
      case EventKind::submit: {
        std::vector<PersonaSpec> specs = std::move(pending_submits_);
        pending_submits_.clear();
        if (specs.empty()) {
          specs.push_back(spec(next_job_++, false));
          ++report_.jobs;
        }
        submit(specs);
        return;
      }
      case EventKind::cancel: {
        std::vector<Job> live;
        for (auto& j : jobs())
          if (!is_final(j.state)) live.push_back(j);
        if (!live.empty()) (void)world_->call(world_->tracker().cancel(live[pick(0, live.size() - 1)].key));
        return;
      }
      case EventKind::retry: {
        std::vector<Job> ended;
        for (auto& j : jobs())
          if (j.state == State::failed || j.state == State::expired) ended.push_back(j);
        if (!ended.empty())
          (void)world_->call(world_->tracker().retry(ended[pick(0, ended.size() - 1)].key, true));
        return;
      }
      case EventKind::resolve:
        for (auto& j : jobs())
          if (j.state == State::submitting && j.needs_operator) resolve_as_operator(j);
        return;
      case EventKind::poll_soon: {  // a callback for a job, in any state but final
        std::vector<Job> live;
        for (auto& j : jobs())
          if (!is_final(j.state)) live.push_back(j);
        if (!live.empty())
          (void)world_->tracker().poll_soon(live[extra_pick(0, live.size() - 1)].id);
        return;
      }
      case EventKind::bulk_cancel:
      case EventKind::bulk_retry: {
        const bool cancel = e.kind == EventKind::bulk_cancel;
        Selection sel;
        sel.labels = {"campaign"};
        sel.states = cancel ? std::vector<State>{State::queued, State::submitting, State::pending}
                            : std::vector<State>{State::failed, State::expired};
        if (extra_chance(0.5)) sel.limit = extra_pick(1, 3);
        (void)world_->call(world_->tracker().act_on_selection(
            cancel ? BulkAction::cancel : BulkAction::retry, sel, SelectOptions{}, true));
        return;
      }
      default:
        return;
    }
  }

  // An operator who knows the truth: adopts the persona that carries the job's label, or
  // declares it not created.
  void resolve_as_operator(const Job& j) {
    auto ids = world_->api().with_label(client_label(j.client_ref));
    for (const auto& id : ids) {
      auto holder = world_->truth().find_by_remote_id(id);
      if (holder && !*holder) {
        (void)world_->call(world_->tracker().resolve(j.key, id, false));
        return;
      }
    }
    if (ids.empty()) (void)world_->call(world_->tracker().resolve(j.key, std::nullopt, true));
  }

  // ---- Checks ----

  void violation(std::string what) { report_.violations.push_back(std::move(what)); }

  void check_labels() {
    std::map<std::string, std::vector<std::string>> by_label;
    for (const auto& [id, r] : world_->api().remotes())
      for (const auto& l : r.persona.labels)
        if (l.starts_with("personad:")) by_label[l].push_back(id);
    for (const auto& [label, ids] : by_label)
      if (ids.size() > 1) {
        std::string list;
        for (const auto& id : ids) list += (list.empty() ? "" : ", ") + id;
        violation("duplicate create: " + std::to_string(ids.size()) + " personas carry " + label +
                  " (" + list + ")");
      }
  }

  void checkpoint() {
    const TimePoint now = world_->clock().now();
    const ApiConfig& api = world_options_.tracker.api;
    check_labels();
    for (const Job& j : jobs()) {
      if (is_final(j.state)) continue;
      const std::string who = "job " + j.key + " (" + std::string(to_string(j.state)) + ")";
      if (!j.needs_operator && !world_->tracker().is_tracking(j.id))
        violation(who + " is stranded at " + format_rfc3339(now) +
                  ": not scheduled, not running, not flagged for the operator");
      if (j.state == State::pending && j.expires_at &&
          now > *j.expires_at + api.retry_max + api.reconcile_give_up)
        violation(who + " is still pending at " + format_rfc3339(now) + ", past its expiry " +
                  format_rfc3339(*j.expires_at));
      if (j.state == State::submitting && j.send_unknown && j.unknown_since && !j.needs_operator &&
          now > *j.unknown_since + 2 * api.reconcile_give_up + api.retry_max)
        violation(who + " is still reconciling at " + format_rfc3339(now) +
                  ", its outcome unknown since " + format_rfc3339(*j.unknown_since));
    }
  }

  void check_history(const Job& j) {
    auto h = world_->truth().history(j.id);
    if (!h) return violation("cannot read the history of " + j.key + ": " + h.message());
    std::optional<State> at;
    for (std::size_t i = 0; i < h->size(); ++i) {
      const Transition& t = (*h)[i];
      if (i == 0) {
        if (t.from || t.to != State::queued)
          violation("job " + j.key + ": history does not start with (none) → queued");
      } else if (!t.from || t.from != at || !transition_allowed(*t.from, t.to)) {
        violation("job " + j.key + ": history row " + std::to_string(i + 1) + " " +
                  (t.from ? std::string(to_string(*t.from)) : "(none)") + " → " +
                  std::string(to_string(t.to)) + " does not follow " +
                  (at ? std::string(to_string(*at)) : "(none)") + " along the table");
      }
      at = t.to;
    }
    if (at != j.state)
      violation("job " + j.key + ": history ends in " + (at ? std::string(to_string(*at)) : "") +
                " but the row says " + std::string(to_string(j.state)));
  }

  void final_checks() {
    if (!world_->up()) boot_until_up();
    if (!world_->up()) return;
    check_labels();
    std::set<std::string> owned;
    std::size_t progress = world_->api().requests();
    for (const Job& j : jobs()) {
      check_history(j);
      if (auto h = world_->truth().history(j.id)) progress += h->size();
      if (j.remote_id && !owned.insert(*j.remote_id).second)
        violation("remote persona " + *j.remote_id + " is held by two jobs");
      switch (j.state) {
        case State::done: ++report_.done; break;
        case State::failed: ++report_.failed; break;
        case State::expired: ++report_.expired; break;
        case State::cancelled: ++report_.cancelled; break;
        default:
          if (j.needs_operator) {
            ++report_.flagged;
          } else {
            violation("job " + j.key + " is still " + std::string(to_string(j.state)) +
                      " at the end (" + std::to_string(kHorizon.count() / kDay.count()) +
                      " days), neither final nor flagged for the operator");
          }
      }
      if (j.state == State::done && world_options_.faults.list_has_labels) {
        auto ids = world_->api().with_label(client_label(j.client_ref));
        if (std::find(ids.begin(), ids.end(), j.remote_id.value_or("")) == ids.end())
          violation("job " + j.key + " is done with remote persona " + j.remote_id.value_or("?") +
                    ", which does not carry its label");
      }
    }
    // Every wake-up and handler must come from work: requests, transitions, jobs.
    if (report_.wakeups > 200 + 40 * progress)
      violation("too many timer wake-ups without progress: " + std::to_string(report_.wakeups) +
                " for " + std::to_string(progress) + " requests and transitions");
    if (report_.handlers > 5'000 + 400 * progress)
      violation("too many handlers without progress: " + std::to_string(report_.handlers) +
                " for " + std::to_string(progress) + " requests and transitions");
  }

  std::mt19937_64 rng_;
  std::mt19937_64 extra_;
  SeedOptions options_;
  SeedReport report_;
  WorldOptions world_options_;
  std::unique_ptr<World> world_;
  std::vector<PersonaSpec> initial_jobs_;
  std::vector<PersonaSpec> pending_submits_;
  std::size_t next_job_ = 0;
  double crash_p_ = 0;
  bool operator_ = false;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t order_ = 0;
};

}  // namespace

SeedReport run_seed(std::uint64_t seed, SeedOptions options) {
  Run run(seed, options);
  return run.go();
}

std::string describe(const SeedReport& r) {
  std::ostringstream out;
  out << "seed " << r.seed << " (" << r.scenario << "): ";
  if (r.ok()) {
    out << "ok";
  } else {
    out << r.violations.size() << " violation(s):";
    for (const auto& v : r.violations) out << "\n  - " << v;
    out << "\n  replay: scripts/simulate.sh --seed " << r.seed << " --log";
  }
  out << "\n  jobs " << r.jobs << ", done " << r.done << ", failed " << r.failed << ", expired "
      << r.expired << ", cancelled " << r.cancelled << ", flagged " << r.flagged << "; creates "
      << r.creates << ", requests " << r.requests << ", crashes " << r.crashes
      << ", store failures " << r.store_failures << ", wake-ups " << r.wakeups;
  return out.str();
}

}  // namespace personad::simulation
