// The orchestrator and the only writer of job state: loads jobs at start, submits, reconciles
// unknown creates, polls on the persisted schedule, expires, and applies operator actions.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "personad/clock.hpp"
#include "personad/config.hpp"
#include "personad/creatify_api.hpp"
#include "personad/logging.hpp"
#include "personad/scheduler.hpp"
#include "personad/store.hpp"

namespace personad {

struct TrackerOptions {
  ApiConfig api;
  PollConfig poll;
};

struct TrackerMetrics {
  std::int64_t polls = 0;              // status polls answered
  std::int64_t creates_sent = 0;       // create requests sent
  std::int64_t reconciles = 0;         // reconcile passes run
  std::int64_t adopted = 0;            // remote personas adopted by a reconcile or resolve
  std::int64_t resent = 0;             // creates sent again after a reconcile found nothing
  std::int64_t api_transient = 0;      // requests that ended in a transient error
  std::int64_t api_permanent = 0;
  std::int64_t api_unauthorized = 0;
  std::int64_t store_errors = 0;
  std::map<State, std::int64_t> transitions;  // by target state
};

enum class ActionStatus { ok, unknown_key, not_allowed, failed };

struct ActionResult {
  ActionStatus status = ActionStatus::ok;
  std::string message;
  std::optional<Job> job;
};

class Tracker {
 public:
  using TransitionHook = std::function<void(const Job&, const Transition&)>;
  using Random = std::function<double()>;  // uniform in [0, 1)

  Tracker(boost::asio::any_io_executor ex, Store& store, CreatifyApi& api, const Clock& clock,
          const EventLog& log, TrackerOptions options, Random random);
  ~Tracker();

  // Loads every active job from the store and schedules it (overdue ones spread out).
  Result<void> start();
  // Applies reloadable options (poll policy, status mapping, retry timing).
  void update_options(TrackerOptions options);

  // Intake: unknown keys become queued jobs (due at once); known keys are reported, untouched.
  Result<std::vector<EnqueueOutcome>> enqueue(const std::vector<PersonaSpec>& specs,
                                              std::string_view source);

  // Schedules queued jobs the tracker does not know of yet: rows `personactl submit` wrote
  // straight into the database when it could not reach the control socket. Returns how many.
  std::size_t adopt_queued();

  // Operator actions (personactl).
  ActionResult cancel(std::string_view key);
  // expired → pending (polling resumes); failed → queued with a fresh client_ref (resubmit).
  ActionResult retry(std::string_view key, bool resubmit);
  // A `submitting` job: adopt a remote persona id, or declare it not created and resend.
  ActionResult resolve(std::string_view key, std::optional<std::string> adopt_remote_id,
                       bool resubmit);

  // Called after every committed transition (hooks, notify STATUS).
  void set_transition_hook(TransitionHook hook) { hook_ = std::move(hook); }

  // Graceful stop: no new actions start; in-flight ones finish on their own.
  void stop_taking_work();
  std::size_t in_flight() const { return running_.size(); }
  std::optional<TimePoint> next_due() const { return scheduler_.next_due(); }
  std::size_t scheduled() const { return scheduler_.size(); }
  const TrackerMetrics& metrics() const { return metrics_; }

 private:
  struct SharedList;

  void on_due(std::int64_t id);
  void pump();
  boost::asio::awaitable<void> run(std::int64_t id);
  boost::asio::awaitable<void> submit(Job job);
  void mark_sending(Job& job);
  boost::asio::awaitable<void> send_create(Job job);
  boost::asio::awaitable<void> reconcile(Job job);
  boost::asio::awaitable<void> poll(Job job);

  // One committed transition: the row, the history entry, the log line, the hook.
  bool commit(Job& job, State to, std::string reason, bool durable = false);
  // The row only (schedule, counters, remote_status that did not change state).
  bool save(Job& job);
  void schedule(const Job& job);
  // Re-reads the job after an await; nullopt (and a log line) when an operator changed it.
  std::optional<Job> reload(const Job& before);
  void count_api_error(Outcome o);
  TimePoint retry_at(Job& job, std::optional<Millis> retry_after);
  void warn_unknown_status(const Job& job, const std::string& status);
  double rnd() { return random_(); }

  boost::asio::any_io_executor ex_;
  Store& store_;
  CreatifyApi& api_;
  const Clock& clock_;
  const EventLog& log_;
  TrackerOptions options_;
  Random random_;
  Scheduler scheduler_;
  std::unique_ptr<SharedList> list_;
  TransitionHook hook_;
  TrackerMetrics metrics_;
  std::deque<std::int64_t> ready_;
  std::unordered_set<std::int64_t> ready_set_;
  std::unordered_set<std::int64_t> running_;
  std::unordered_set<std::int64_t> due_while_running_;
  std::set<std::string> warned_statuses_;
  bool accepting_ = true;
};

}  // namespace personad
