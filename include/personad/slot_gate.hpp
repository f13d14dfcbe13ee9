// At most `limit` holders at once, served first come, first served: the one rule behind the
// HTTP client's request slots (api.max_in_flight connections) and the tracker's request slots
// (api.max_in_flight requests, while steps waiting for their commit hold none).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <memory>

namespace personad {

class SlotGate {
  struct State;

 public:
  SlotGate(boost::asio::any_io_executor ex, std::size_t limit);
  ~SlotGate();  // closes the gate
  SlotGate(const SlotGate&) = delete;
  SlotGate& operator=(const SlotGate&) = delete;

  // A held slot; gives it back when it goes out of scope. Empty when the gate was closed.
  // It may outlive the gate (a suspended coroutine destroyed after its owner): then giving it
  // back lets no one in.
  class Held {
   public:
    Held() = default;
    Held(Held&&) noexcept = default;
    Held& operator=(Held&& o) noexcept;
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { reset(); }
    explicit operator bool() const { return state_ != nullptr; }
    void reset();

   private:
    friend class SlotGate;
    explicit Held(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
  };

  // Waits for a slot (behind every earlier waiter). An empty Held once the gate is closed, and
  // for every waiter when it closes.
  boost::asio::awaitable<Held> hold();

  // A larger limit lets waiters in at once; a smaller one lets no one in until enough slots
  // have been given back.
  void set_limit(std::size_t limit);
  void close();

  std::size_t limit() const;
  std::size_t in_use() const;
  std::size_t waiting() const;
  bool closed() const;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace personad
