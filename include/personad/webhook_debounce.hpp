// From webhook callbacks to polls: at most one poll a job per `gap`, whatever the callers send.
// The rule is a pure function (decide_callback); HookPoller applies it on a Clock's timers.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

#include "personad/clock.hpp"

namespace personad {

// The gap the daemon uses: callbacks of one job cause at most one poll each 2 s.
inline constexpr Millis kWebhookPollGap{2'000};

// What is known of one job's callbacks.
struct DebounceState {
  std::optional<TimePoint> last_poll;   // when a callback last caused a poll
  std::optional<TimePoint> deferred_to; // a poll waits for then (a callback came too soon)
};

enum class DebounceVerdict {
  poll_now,  // no poll for this job within `gap`: poll at once
  defer,     // one within `gap`: poll once at last_poll + gap
  absorbed,  // a deferred poll is waiting already: this callback adds nothing
};

struct DebounceDecision {
  DebounceVerdict verdict;
  TimePoint at;  // poll_now: now; defer/absorbed: when the deferred poll runs
};

// The rule for a callback at `now`; `state` is updated as if the decision were carried out.
DebounceDecision decide_callback(DebounceState& state, TimePoint now, Millis gap);

struct HookPollerStats {
  std::uint64_t callbacks = 0;  // callbacks of known jobs taken
  std::uint64_t polls = 0;      // polls asked of the tracker
  std::uint64_t deferred = 0;   // callbacks that waited for the gap
  std::uint64_t absorbed = 0;   // callbacks a waiting poll already covered
};

// Applies decide_callback for every job: `poll` runs at once or, deferred, from a timer of
// `clock` (virtual time in tests). Callbacks arriving while a poll runs are the tracker's
// concern: its StepRunner runs a job asked for during its step once more afterwards.
class HookPoller {
 public:
  using Poll = std::function<void(std::int64_t job_id)>;
  HookPoller(boost::asio::any_io_executor ex, const Clock& clock, Millis gap, Poll poll);
  ~HookPoller();

  void callback(std::int64_t job_id);
  void stop();  // no poll afterwards
  const HookPollerStats& stats() const { return stats_; }
  std::size_t waiting() const { return timers_.size(); }
  std::size_t tracked() const { return states_.size(); }

 private:
  void run(std::int64_t job_id);
  void forget_stale(TimePoint now);

  boost::asio::any_io_executor ex_;
  const Clock& clock_;
  Millis gap_;
  Poll poll_;
  std::unordered_map<std::int64_t, DebounceState> states_;
  std::unordered_map<std::int64_t, std::unique_ptr<WakeTimer>> timers_;
  HookPollerStats stats_;
  bool stopped_ = false;
};

}  // namespace personad
