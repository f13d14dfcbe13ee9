// The orchestrator and the only writer of job state: loads jobs at start, submits, reconciles
// unknown creates, polls on the persisted schedule, expires, and applies operator actions.
//
// Every step: load → await the API → decide (a pure function: create_outcome,
// reconcile, poll_outcome) → commit → schedule: one read per step at most (none for a job
// whose last poll changed nothing: it is kept as written, see kept_); a write of a job that an
// operator changed meanwhile is refused by the store (conflict) and the step stops. A job's effects (schedule, hook, log line)
// follow its commit; a step that cannot read or write the store is run again later, so a
// non-final job is always scheduled, running, or waiting for the operator.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "personad/capacity.hpp"
#include "personad/clock.hpp"
#include "personad/config.hpp"
#include "personad/creatify_api.hpp"
#include "personad/logging.hpp"
#include "personad/operator_action.hpp"
#include "personad/remote_list.hpp"
#include "personad/scheduler.hpp"
#include "personad/slot_gate.hpp"
#include "personad/step_runner.hpp"
#include "personad/store.hpp"
#include "personad/store_runner.hpp"

namespace personad {

struct TrackerOptions {
  ApiConfig api;
  PollConfig poll;
  // With a webhook listener: a job's callback URL (webhook_url_for), given to every create
  // without its own webhook_url; those jobs poll on relaxed_for_webhook(poll) (backoff.hpp).
  std::function<std::string(const std::string& client_ref)> hook_url;
  // A host on a shared (PostgreSQL) store: false once its lease may have run out (pg_lease.hpp).
  // Then no create leaves: the job keeps its intent record (submitting, outcome unknown) and is
  // reconciled like a create whose answer was lost, by this host or by the one taking over.
  std::function<bool()> may_send;
};

struct TrackerMetrics {
  std::int64_t polls = 0;              // status polls answered
  std::int64_t creates_sent = 0;       // create requests sent
  std::int64_t reconciles = 0;         // reconcile passes run
  std::int64_t adopted = 0;            // remote personas adopted by a reconcile or resolve
  std::int64_t resent = 0;             // creates sent again after a reconcile proved them absent
  std::int64_t flagged = 0;            // jobs flagged for the operator (personactl resolve)
  std::int64_t api_transient = 0;      // requests that ended in a transient error
  std::int64_t api_permanent = 0;
  std::int64_t api_unauthorized = 0;
  std::int64_t store_errors = 0;
  std::map<State, std::int64_t> transitions;  // by target state
};

// What an operator's action did (errors: ErrorKind::not_found for an unknown key,
// ErrorKind::conflict when the action is not allowed in the job's state, io otherwise).
struct ActionOutcome {
  std::string message;
  Job job;
};

// What a bulk action did to one job: acted on (cancelled, retried), or skipped (its state
// before, and why: not applicable, or changed meanwhile).
struct BulkLine {
  enum class Kind { acted, skipped, failed };  // failed: could not be recorded
  std::string key;
  std::string state;  // the job's state when read (skipped) or after the action (acted)
  Kind result = Kind::skipped;
  std::string why;    // skipped, failed: why; acted: the action's message
};

// A bulk action reads and writes this many jobs at a time: one read and one write (one
// transaction) per chunk.
constexpr std::int64_t kBulkChunk = 500;

class Tracker {
 public:
  using TransitionHook = std::function<void(const Job&, const Transition&)>;
  using Random = std::function<double()>;  // uniform in [0, 1)

  // Every read and write goes through `store` (awaitable; on its own thread in the daemon).
  Tracker(boost::asio::any_io_executor ex, StoreRunner& store, CreatifyApi& api,
          const Clock& clock, const EventLog& log, TrackerOptions options, Random random);
  ~Tracker();

  // Loads what scheduling needs of every active job and schedules it (overdue ones spread
  // out). Called before the event loop runs: it waits for the store.
  Result<void> start();
  // Applies reloadable options (poll policy, status mapping, retry timing).
  void update_options(TrackerOptions options);

  // Intake: unknown keys become queued jobs (due at once); known keys are reported, untouched.
  // One transaction per call: callers chunk big batches.
  boost::asio::awaitable<Result<std::vector<EnqueueOutcome>>> enqueue(
      std::vector<PersonaSpec> specs, std::string source);

  // Schedules queued jobs the tracker does not know of yet: rows `personactl submit` wrote
  // straight into the database when it could not reach the control socket. Returns how many.
  boost::asio::awaitable<std::size_t> adopt_queued();

  // Operator actions (personactl).
  boost::asio::awaitable<Result<ActionOutcome>> cancel(std::string key);
  // expired → pending (polling resumes); failed → queued with a fresh client_ref (resubmit).
  boost::asio::awaitable<Result<ActionOutcome>> retry(std::string key, bool resubmit);
  // The same for every job a selection matches, in its order (selection.hpp), in chunks of
  // kBulkChunk: never one store round trip per job. A job the action does not apply to is
  // skipped with the reason; so is one an in-flight step changed between read and write.
  boost::asio::awaitable<Result<std::vector<BulkLine>>> act_on_selection(
      BulkAction action, Selection selection, SelectOptions options, bool resubmit);
  // A `submitting` job: adopt a remote persona id, or declare it not created and resend.
  boost::asio::awaitable<Result<ActionOutcome>> resolve(std::string key,
                                                        std::optional<std::string> adopt_remote_id,
                                                        bool resubmit);

  // Called after every committed transition (hooks, notify STATUS).
  void set_transition_hook(TransitionHook hook) { hook_ = std::move(hook); }
  // Where new client references come from (default: random UUIDs; the simulation seeds them).
  void set_client_ref_source(std::function<std::string()> source) { new_ref_ = std::move(source); }

  // "Poll this job soon" (a webhook callback): runs the job's step as soon as the runner has
  // room, or once more right after the step that runs now, never two at once; the schedule is
  // untouched until that step sets the next one. False when the tracker does not track the job
  // (final, waiting for the operator, or stopping).
  bool poll_soon(std::int64_t job_id);

  // The schedule a job polls on: relaxed when its callbacks come to our webhook listener.
  const PollConfig& poll_policy(const Job& job) const;

  // Graceful stop: no new actions start, no step sends a request it has not sent yet; requests
  // in flight finish on their own, and so do their steps.
  void stop_taking_work();
  std::size_t in_flight() const { return runner_.running(); }
  std::optional<TimePoint> next_due() const { return scheduler_.next_due(); }
  std::size_t scheduled() const { return scheduler_.size(); }
  // Whether the tracker will act on this job again by itself: scheduled, waiting to run or
  // running. Every non-final job not waiting for the operator must be.
  bool is_tracking(std::int64_t job_id) const {
    return scheduler_.contains(job_id) || runner_.contains(job_id);
  }
  const TrackerMetrics& metrics() const { return metrics_; }
  // Avatars the workspace can still take, as the last count said (capacity.hpp).
  std::optional<std::int64_t> capacity_remaining() const { return capacity_.remaining(); }

 private:
  boost::asio::awaitable<StepEnd> step(std::int64_t id);
  boost::asio::awaitable<StepEnd> submit(Job job);
  // A submitting job not waiting for the operator: its reconcile, or its create sent again.
  boost::asio::awaitable<StepEnd> resend(Job job);
  // A request slot, then the intent record (mark_sending, and a transition to submitting with
  // `reason`, or a plain save without one: the row is submitting already), then the create
  // under that slot. `what` names the record in a store error.
  boost::asio::awaitable<StepEnd> record_intent_and_send(Job job, std::optional<std::string> reason,
                                                         std::string_view what);
  // `slot`: a request slot taken before the create's intent record was written.
  boost::asio::awaitable<StepEnd> send_create(Job job, SlotGate::Held slot);
  boost::asio::awaitable<StepEnd> reconcile(Job job);
  boost::asio::awaitable<StepEnd> poll(Job job, std::uint64_t epoch);
  void step_done(std::int64_t id, StepEnd end, const std::string& failure);
  // The request limit and the step limit from options_.api.
  void apply_limits();
  // Jobs kept between polls (see kept_): taken out by the step that runs them.
  std::optional<Job> take_kept(std::int64_t id);
  void keep(Job job, std::uint64_t epoch);
  // Brackets an operator's action: kept jobs are dropped before and after its writes, and a
  // step that began before its end keeps nothing.
  struct OperatorWrites;

  // The intent record, committed before a create leaves (see mark_sending in tracker.cpp).
  void mark_sending(Job& job);
  // How soon a write's group begins: `grouped` lets a busy writer gather more writes first (up
  // to 3 ms); `at_once` is for a write a request slot waits for (the intent record).
  enum class Commit { grouped, at_once };
  // One committed transition: the row and the history entry, durable; then the log line and
  // the hook. Errors: conflict when an operator changed the job meanwhile, else io.
  // `held_by`: given when the job takes a remote persona (job.remote_id). The write first looks,
  // in its own transaction, whether another job holds that persona (the writes grouped before
  // it included): if one does, nothing is written, `job` is left as it was and *held_by is set
  // to that job's key. One remote persona is never two jobs'.
  boost::asio::awaitable<Result<void>> commit(Job& job, State to, std::string reason,
                                              Commit when = Commit::grouped,
                                              std::optional<std::string>* held_by = nullptr);
  // The row only (poll counters, schedule, remote_status that did not change state).
  boost::asio::awaitable<Result<void>> save(Job& job, Commit when = Commit::grouped);
  // A poll that changed neither state nor remote status: the poll's columns only
  // (Store::record_poll).
  boost::asio::awaitable<Result<void>> save_poll(Job& job);
  boost::asio::awaitable<Result<Job>> find_job(std::string key);
  // How a failed read, commit or save ends the step (logged once here).
  StepEnd end_after(const Error& e, const Job& job, std::string_view what);
  void schedule(const Job& job);
  void flag_for_operator(Job& job, std::string reason);
  void count_api_error(Outcome o);
  void warn_unknown_status(const Job& job, const std::string& status);
  double rnd() { return random_(); }

  boost::asio::any_io_executor ex_;
  StoreRunner& store_;
  CreatifyApi& api_;
  const Clock& clock_;
  const EventLog& log_;
  TrackerOptions options_;
  PollConfig webhook_poll_;  // relaxed_for_webhook(options_.poll)
  Random random_;
  std::function<std::string()> new_ref_;
  Scheduler scheduler_;
  // api.max_in_flight requests at once. A poll or count holds a slot for its request only, a
  // listing for its pages (only the step that starts it: the reconciles waiting for it hold
  // none); a create from before its intent record's commit (so that the sent time recorded is
  // the real one) to the end of its request, not through its result's commit. Steps waiting for
  // their grouped commit leave the API's connections busy with the next requests.
  SlotGate requests_;
  // Steps at once: kStepsPerRequestSlot × api.max_in_flight (tracker.cpp).
  StepRunner runner_;
  SharedListing listing_;
  TransitionHook hook_;
  TrackerMetrics metrics_;
  CapacityGate capacity_{true, Millis(600'000)};
  // api.check_capacity: holds a queued job while the workspace is full (nullopt: go on).
  boost::asio::awaitable<std::optional<StepEnd>> hold_for_capacity(Job& job);
  std::unordered_map<std::int64_t, std::int64_t> store_failures_;  // consecutive, per job
  std::set<std::string> warned_statuses_;
  // Jobs whose last write was this tracker's record of a poll that changed nothing, exactly
  // as written (Store::record_poll guards the state and remote status; every other column is
  // as read): their next step needs no read. Bounded (kKeptJobsMax, due within kKeepHorizon,
  // tracker.cpp); emptied around every operator action (OperatorWrites). Shared with the
  // operator actions in flight: a loop stopped at once (a lost lease) destroys their coroutines
  // after the tracker, and their bracket still ends.
  struct Kept {
    std::unordered_map<std::int64_t, Job> jobs;
    std::uint64_t operator_epoch = 0;  // bumped before and after every operator action
  };
  std::shared_ptr<Kept> kept_ = std::make_shared<Kept>();
  TimePoint started_at_{};
  bool accepting_ = true;
};

}  // namespace personad
