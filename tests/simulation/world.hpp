// One simulated installation: personad's real Tracker and Store (a real SQLite file) on virtual
// time, against the simulated API. It can crash at any await point (the event loop is dropped
// mid-flight, the database closed) and boot again, as a SIGKILL and a restart would.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <memory>
#include <random>
#include <sstream>

#include "faulty_store.hpp"
#include "personad/logging.hpp"
#include "personad/store_runner.hpp"
#include "personad/tracker.hpp"
#include "sim_api.hpp"

namespace personad::simulation {

struct WorldOptions {
  std::uint64_t seed = 1;
  TrackerOptions tracker;
  SimFaults faults;
  double store_read_fail = 0;
  double store_write_fail = 0;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

// Sensible options for simulated runs: the daemon's defaults, scaled for a 10-day horizon.
TrackerOptions simulation_tracker_options();
// An API that never fails (scenario tests script what they need).
SimFaults no_faults();

class World {
 public:
  static constexpr TimePoint kStart{Millis(1'800'000'000'000)};

  explicit World(WorldOptions options);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // Opens the store and starts a tracker on a fresh event loop. False when start-up failed (an
  // injected store error): the caller tries again later, as systemd would.
  bool boot();
  // Drops the event loop mid-flight and closes the database (SIGKILL).
  void crash();
  bool up() const { return tracker_ != nullptr; }

  // Runs ready handlers one at a time until none is ready or `limit` ran; calls `after_each`
  // after each (it may crash the world). Returns how many ran.
  std::size_t drain(std::size_t limit, const std::function<void()>& after_each = {});
  // Moves virtual time to the next armed timer and fires what is due; false when none.
  bool fire_next() { return clock_.fire_next() != 0; }
  std::optional<TimePoint> next_timer() const { return clock_.next_timer(); }

  // Runs the loop on virtual time until `done()` holds or time would pass `limit`. Returns
  // done(); counts the handlers run into *handlers when given.
  bool run_until(TimePoint limit, const std::function<bool()>& done,
                 std::size_t* handlers = nullptr);

  // Runs a tracker coroutine (an intake, an operator's action) to its end: store operations
  // only, no virtual time passes. Empty when the loop ran dry first (it never should).
  template <class T>
  std::optional<T> call(boost::asio::awaitable<T> op) {
    std::optional<T> out;
    boost::asio::co_spawn(*ioc_, std::move(op), [&out](std::exception_ptr e, T value) {
      if (!e) out.emplace(std::move(value));
    });
    while (!out) {
      ioc_->restart();
      if (ioc_->poll_one() == 0) break;
    }
    return out;
  }

  ManualClock& clock() { return clock_; }
  FaultyStore& faulty_store() { return *store_; }
  SimApi& api() { return api_; }
  Tracker& tracker() { return *tracker_; }
  // The real store, for the checks (never fails on purpose). Open while the world is up.
  Store& truth() { return store_->inner(); }
  std::size_t store_failures() const { return store_failures_ + (store_ ? store_->failures() : 0); }
  std::string log_text() const { return log_text_.str(); }
  std::uint64_t refs_made() const { return refs_made_; }

 private:
  WorldOptions options_;
  ManualClock clock_{kStart};
  SimApi api_;
  std::mt19937_64 tracker_rng_;
  std::mt19937_64 store_rng_;
  std::filesystem::path dir_;
  std::ostringstream log_text_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<FaultyStore> store_;
  std::unique_ptr<InlineStoreRunner> runner_;
  std::unique_ptr<Tracker> tracker_;
  std::size_t store_failures_ = 0;
  std::uint64_t refs_made_ = 0;
};

}  // namespace personad::simulation
