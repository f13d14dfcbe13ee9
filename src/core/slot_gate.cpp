// First-come, first-served slots (see slot_gate.hpp).
#include "personad/slot_gate.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>

namespace personad {

namespace asio = boost::asio;

namespace {

struct Waiter {
  explicit Waiter(const asio::any_io_executor& ex)
      : timer(ex, asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  bool granted = false;
};

}  // namespace

struct SlotGate::State {
  asio::any_io_executor ex;
  std::size_t limit = 1;
  std::size_t in_use = 0;
  std::deque<std::shared_ptr<Waiter>> waiters;  // oldest first
  bool closed = false;

  // The slot goes straight to the oldest waiter, so a newcomer cannot overtake it.
  void let_in() {
    while (!closed && in_use < limit && !waiters.empty()) {
      auto next = std::move(waiters.front());
      waiters.pop_front();
      ++in_use;
      next->granted = true;
      next->timer.cancel();
    }
  }
  void release() {
    if (in_use > 0) --in_use;
    let_in();
  }
};

SlotGate::SlotGate(asio::any_io_executor ex, std::size_t limit) : state_(std::make_shared<State>()) {
  state_->ex = std::move(ex);
  state_->limit = limit < 1 ? 1 : limit;
}

SlotGate::~SlotGate() { close(); }

SlotGate::Held& SlotGate::Held::operator=(Held&& o) noexcept {
  if (this != &o) {
    reset();
    state_ = std::move(o.state_);
  }
  return *this;
}

void SlotGate::Held::reset() {
  if (auto s = std::move(state_)) s->release();
}

asio::awaitable<SlotGate::Held> SlotGate::hold() {
  // The state, not `this`: the gate may be gone by the time the wait ends.
  std::shared_ptr<State> s = state_;
  bool got = false;
  if (!s->closed) {
    if (s->in_use < s->limit && s->waiters.empty()) {
      ++s->in_use;
      got = true;
    } else {
      auto waiter = std::make_shared<Waiter>(s->ex);
      s->waiters.push_back(waiter);
      // let_in() or close() cancels the wait; `granted` says which one it was.
      co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
      got = waiter->granted;
    }
  }
  // (One co_return of a named value: GCC 12 miscompiles a co_return of a temporary here.)
  Held held;
  if (got) held = Held{std::move(s)};
  co_return held;
}

void SlotGate::set_limit(std::size_t limit) {
  state_->limit = limit < 1 ? 1 : limit;
  state_->let_in();
}

void SlotGate::close() {
  state_->closed = true;
  for (auto& w : state_->waiters) w->timer.cancel();
  state_->waiters.clear();
}

std::size_t SlotGate::limit() const { return state_->limit; }
std::size_t SlotGate::in_use() const { return state_->in_use; }
std::size_t SlotGate::waiting() const { return state_->waiters.size(); }
bool SlotGate::closed() const { return state_->closed; }

}  // namespace personad
