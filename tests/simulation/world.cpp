// The simulated installation (see world.hpp).
#include "world.hpp"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace personad::simulation {

namespace {

// SQLite on tmpfs when there is one: the simulation checks logic, not the disk, and thousands
// of seeds must not wait on fsync.
std::filesystem::path scratch_dir(std::uint64_t seed) {
  std::filesystem::path base = std::filesystem::exists("/dev/shm")
                                   ? std::filesystem::path("/dev/shm")
                                   : std::filesystem::temp_directory_path();
  auto dir = base / ("personad-sim-" + std::to_string(::getpid()) + "-" + std::to_string(seed));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TrackerOptions simulation_tracker_options() {
  TrackerOptions o;
  o.api.timeout = Millis(30'000);
  o.api.max_requests_per_second = 5;
  o.api.max_in_flight = 4;
  o.api.retry_initial = Millis(1'000);
  o.api.retry_max = Millis(300'000);
  o.api.reconcile_after = Millis(60'000);
  o.api.reconcile_give_up = Millis(3'600'000);
  o.poll.first_after = Millis(300'000);
  o.poll.initial_interval = Millis(300'000);
  o.poll.multiplier = 2.0;
  o.poll.max_interval = Millis(4 * 3'600'000);
  o.poll.jitter = 0.2;
  o.poll.give_up_after = Millis(6LL * 86'400'000);
  return o;
}

SimFaults no_faults() {
  SimFaults f;
  f.create_lost = f.create_malformed = f.create_not_sent = f.create_rejected = 0;
  f.create_early_413 = f.create_unauthorized = f.create_throttled = f.create_server_error = 0;
  f.create_slow = f.list_page_fails = f.get_fails = f.absurd_retry_after = 0;
  f.never_finishes = f.remote_failure = 0;
  f.list_lag = Millis(0);
  return f;
}

World::World(WorldOptions options)
    : options_(options),
      api_(clock_, options.seed * 3 + 1, options.faults, options.tracker.api.timeout),
      tracker_rng_(options.seed * 5 + 2),
      store_rng_(options.seed * 7 + 3),
      dir_(scratch_dir(options.seed)) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(log_text_);
  auto logger = std::make_shared<spdlog::logger>("sim", sink);
  logger->set_pattern("%l %v");
  logger->set_level(options.log_level);
  log_ = std::make_unique<EventLog>(logger, LogFormat::text);
}

World::~World() {
  crash();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool World::boot() {
  if (up()) return true;
  ioc_ = std::make_unique<boost::asio::io_context>(1);
  auto opened = Store::open((dir_ / "personad.db").string(), OpenMode::read_write);
  if (!opened) {
    std::fprintf(stderr, "simulation: cannot open the store: %s\n", opened.message().c_str());
    std::abort();
  }
  store_ = std::make_unique<FaultyStore>(std::move(*opened), store_rng_, options_.store_read_fail,
                                         options_.store_write_fail);
  runner_ = std::make_unique<InlineStoreRunner>(*store_);
  tracker_ = std::make_unique<Tracker>(
      ioc_->get_executor(), *runner_, api_, clock_, *log_, options_.tracker,
      [this] { return std::uniform_real_distribution<double>(0, 1)(tracker_rng_); });
  tracker_->set_client_ref_source([this] {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08llx-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(options_.seed & 0xffffffffULL),
                  static_cast<unsigned long long>(++refs_made_));
    return std::string(buf);
  });
  if (auto r = tracker_->start(); !r) {
    crash();
    return false;
  }
  return true;
}

void World::crash() {
  // Order matters: the timers go first (nothing may fire into a dead loop), then the tracker
  // (its timers cancel into the queue, which never runs again), then the loop (destroying the
  // suspended coroutines without resuming them), then the database.
  clock_.drop_timers();
  tracker_.reset();
  ioc_.reset();
  runner_.reset();
  if (store_) store_failures_ += store_->failures();
  store_.reset();
  clock_.drop_timers();
}

std::size_t World::drain(std::size_t limit, const std::function<void()>& after_each) {
  std::size_t n = 0;
  while (ioc_ && n < limit) {
    ioc_->restart();
    if (ioc_->poll_one() == 0) break;
    ++n;
    if (after_each) after_each();
  }
  return n;
}

bool World::run_until(TimePoint limit, const std::function<bool()>& done, std::size_t* handlers) {
  for (;;) {
    std::size_t n = drain(1'000'000);
    if (handlers) *handlers += n;
    if (done()) return true;
    auto next = clock_.next_timer();
    if (!next || *next > limit) return done();
    clock_.fire_next();
  }
}

}  // namespace personad::simulation
