// The due-time queue (see scheduler.hpp). Rescheduling leaves a stale heap entry behind that is
// skipped when it surfaces (lazy deletion); the heap is rebuilt when stale entries dominate.
#include "personad/scheduler.hpp"

namespace personad {

Scheduler::Scheduler(boost::asio::any_io_executor ex, const Clock& clock, Callback on_due)
    : clock_(clock), timer_(clock.make_timer(ex)), on_due_(std::move(on_due)) {}

void Scheduler::schedule(std::int64_t id, TimePoint due) {
  if (stopped_) return;
  std::uint64_t gen = next_gen_++;
  live_[id] = Live{due, gen};
  heap_.push(Entry{due, id, gen});
  compact();
  arm();
}

void Scheduler::cancel(std::int64_t id) {
  live_.erase(id);
  drop_stale_top();
  if (live_.empty()) {
    timer_->cancel();
    armed_for_.reset();
  }
}

std::optional<TimePoint> Scheduler::next_due() const {
  // The top may be stale; the live map is authoritative, but the heap top is exact whenever it
  // is live, which drop_stale_top() maintains after every change.
  if (heap_.empty()) return std::nullopt;
  return heap_.top().due;
}

void Scheduler::stop() {
  stopped_ = true;
  timer_->cancel();
  live_.clear();
  heap_ = {};
}

void Scheduler::drop_stale_top() {
  while (!heap_.empty()) {
    const Entry& top = heap_.top();
    auto it = live_.find(top.id);
    if (it != live_.end() && it->second.gen == top.gen) return;
    heap_.pop();
  }
}

void Scheduler::compact() {
  if (heap_.size() <= 2 * live_.size() + 64) return;
  std::vector<Entry> entries;
  entries.reserve(live_.size());
  for (const auto& [id, l] : live_) entries.push_back(Entry{l.due, id, l.gen});
  heap_ = decltype(heap_)(std::greater<>{}, std::move(entries));
}

void Scheduler::arm() {
  if (dispatching_ || stopped_) return;  // fire() re-arms once it has dispatched
  drop_stale_top();
  if (heap_.empty()) {
    if (armed_for_) timer_->cancel();
    armed_for_.reset();
    return;
  }
  TimePoint due = heap_.top().due;
  // Already armed for this time or an earlier one: keep it. Waking early costs one look at the
  // heap (fire() dispatches nothing and arms for the real top); re-arming whenever the top moves
  // later cost a timerfd_settime per poll under load (the job just polled was often the top).
  if (armed_for_ && *armed_for_ <= due) return;
  armed_for_ = due;
  // The timer calls back only once the clock has reached `due` (see WakeTimer).
  timer_->wait_until(due, [this] {
    armed_for_.reset();
    if (!stopped_) fire();
  });
}

void Scheduler::fire() {
  TimePoint now = clock_.now();
  std::vector<std::int64_t> due;
  drop_stale_top();
  while (!heap_.empty() && heap_.top().due <= now) {
    due.push_back(heap_.top().id);
    live_.erase(heap_.top().id);
    heap_.pop();
    drop_stale_top();
  }
  dispatching_ = true;
  for (std::int64_t id : due) on_due_(id);
  dispatching_ = false;
  arm();
}

}  // namespace personad
