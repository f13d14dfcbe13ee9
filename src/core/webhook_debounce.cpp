// Debounced polls on webhook callbacks (see webhook_debounce.hpp).
#include "personad/webhook_debounce.hpp"

#include <vector>

namespace personad {

DebounceDecision decide_callback(DebounceState& state, TimePoint now, Millis gap) {
  if (state.deferred_to) return {DebounceVerdict::absorbed, *state.deferred_to};
  if (!state.last_poll || now >= add_saturating(*state.last_poll, gap) || now < *state.last_poll) {
    state.last_poll = now;  // (a clock set back counts as a gap passed)
    return {DebounceVerdict::poll_now, now};
  }
  state.deferred_to = add_saturating(*state.last_poll, gap);
  return {DebounceVerdict::defer, *state.deferred_to};
}

HookPoller::HookPoller(boost::asio::any_io_executor ex, const Clock& clock, Millis gap, Poll poll)
    : ex_(std::move(ex)), clock_(clock), gap_(gap), poll_(std::move(poll)) {}

HookPoller::~HookPoller() { stop(); }

void HookPoller::stop() {
  stopped_ = true;
  for (auto& [id, timer] : timers_) timer->cancel();
  timers_.clear();
}

void HookPoller::callback(std::int64_t job_id) {
  if (stopped_) return;
  const TimePoint now = clock_.now();
  forget_stale(now);
  ++stats_.callbacks;
  const DebounceDecision d = decide_callback(states_[job_id], now, gap_);
  switch (d.verdict) {
    case DebounceVerdict::poll_now:
      ++stats_.polls;
      poll_(job_id);
      return;
    case DebounceVerdict::absorbed:
      ++stats_.absorbed;
      return;
    case DebounceVerdict::defer: {
      ++stats_.deferred;
      auto& timer = timers_[job_id];
      timer = clock_.make_timer(ex_);
      timer->wait_until(d.at, [this, job_id] { run(job_id); });
      return;
    }
  }
}

void HookPoller::run(std::int64_t job_id) {
  timers_.erase(job_id);  // (the timer's function has run: destroying it now is safe)
  if (stopped_) return;
  DebounceState& s = states_[job_id];
  s.deferred_to.reset();
  s.last_poll = clock_.now();
  ++stats_.polls;
  poll_(job_id);
}

// A job whose last poll is more than a gap ago is as good as unknown: its entry goes, so the
// table holds only the jobs of the last few seconds, however many jobs call back over days.
void HookPoller::forget_stale(TimePoint now) {
  if (states_.size() < 1024) return;
  std::vector<std::int64_t> stale;
  for (const auto& [id, s] : states_)
    if (!s.deferred_to && (!s.last_poll || now >= add_saturating(*s.last_poll, gap_)))
      stale.push_back(id);
  for (auto id : stale) states_.erase(id);
}

}  // namespace personad
