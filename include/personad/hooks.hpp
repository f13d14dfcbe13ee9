// Runs the operator's on_transition program once per transition: asynchronously, without a
// shell, with the transition in its environment, a timeout, and failures logged and counted.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/logging.hpp"

namespace personad {

struct HookOptions {
  std::string program;  // absolute path; empty: no hook
  Millis timeout{10'000};
  std::size_t max_running = 4;      // hooks running at once
  std::size_t max_queued = 10'000;  // beyond this, transitions are dropped (and counted)
};

struct HookStats {
  std::int64_t runs = 0;      // hooks that finished (any way)
  std::int64_t failures = 0;  // non-zero exit, killed, timed out, or could not start
  std::int64_t dropped = 0;   // not run because the queue was full
};

// The environment of one hook run: PERSONA_KEY, REMOTE_ID, FROM_STATE, TO_STATE, REMOTE_STATUS,
// REASON, PERSONAD_CLIENT_REF, PERSONAD_AT — plus the daemon's own environment minus its
// secrets and systemd plumbing (CREATIFY_API_*, CREDENTIALS_DIRECTORY, NOTIFY_SOCKET, WATCHDOG_*).
std::vector<std::string> hook_environment(const Job& job, const Transition& t,
                                          const std::vector<std::string>& inherited);

class HookRunner {
 public:
  HookRunner(boost::asio::any_io_executor ex, HookOptions options, const EventLog& log);

  void on_transition(const Job& job, const Transition& t);
  void update(HookOptions options) { options_ = std::move(options); }
  bool idle() const { return running_ == 0 && queue_.empty(); }
  const HookStats& stats() const { return stats_; }

 private:
  struct Run {
    std::string key;
    std::vector<std::string> env;
  };
  void pump();
  boost::asio::awaitable<void> run(Run r);

  boost::asio::any_io_executor ex_;
  HookOptions options_;
  const EventLog& log_;
  std::deque<Run> queue_;
  std::size_t running_ = 0;
  HookStats stats_;
};

}  // namespace personad
