// A tracker wired to a real store in a temp directory, a FakeApi and a fast scaled clock, with
// its log captured, for tests that drive whole job lifecycles in milliseconds.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <random>
#include <sstream>

#include "await.hpp"
#include "fake_api.hpp"
#include "personad/logging.hpp"
#include "personad/store.hpp"
#include "personad/store_runner.hpp"
#include "personad/tracker.hpp"

namespace personad::testing {

inline std::filesystem::path make_temp_dir(const std::string& tag) {
  auto base = std::filesystem::temp_directory_path() /
              ("personad-" + tag + "-" + std::to_string(::getpid()) + "-" +
               std::to_string(std::random_device{}()));
  std::filesystem::create_directories(base);
  return base;
}

inline PersonaSpec make_spec(const std::string& key, const std::string& name = "Jane Doe") {
  PersonaSpec s;
  s.key = key;
  s.gender = "f";
  s.creator_name = name;
  s.video_scene = "office";
  s.keywords = "friendly";
  s.lipsync_input = "https://cdn.example.com/" + key + "/lipsync.mp4";
  s.consent_video = "https://cdn.example.com/" + key + "/consent.mp4";
  s.labels = {"acme"};
  return s;
}

class TrackerFixture : public ::testing::Test {
 protected:
  // Simulated time runs this much faster than real time: 10 s of policy = 5 ms.
  static constexpr double kScale = 2000;

  void SetUp() override {
    dir_ = make_temp_dir("tracker");
    auto s = Store::open((dir_ / "p.db").string(), OpenMode::read_write);
    ASSERT_TRUE(s) << s.message();
    store_ = std::move(*s);
    runner_ = std::make_unique<InlineStoreRunner>(*store_);
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text_);
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_pattern("%l %v");
    logger->set_level(spdlog::level::debug);
    log_ = std::make_unique<EventLog>(logger, LogFormat::text);
    api_.now = [this] { return clock_.now(); };
    options_.api.max_requests_per_second = 1000;
    options_.api.max_in_flight = 4;
    options_.api.retry_initial = Millis(1'000);
    options_.api.retry_max = Millis(10'000);
    options_.api.reconcile_after = Millis(30'000);
    options_.poll.first_after = Millis(10'000);
    options_.poll.initial_interval = Millis(10'000);
    options_.poll.multiplier = 2.0;
    options_.poll.max_interval = Millis(60'000);
    options_.poll.jitter = 0.2;
    options_.poll.give_up_after = Millis(3'600'000);
  }

  void TearDown() override {
    tracker_.reset();
    runner_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // `through`: another runner in front of the store (one that holds writes back, say).
  void make_tracker(StoreRunner* through = nullptr) {
    StoreRunner& runner = through != nullptr ? *through : *runner_;
    tracker_ = std::make_unique<Tracker>(ioc_.get_executor(), runner, api_, clock_, *log_,
                                         options_, [this] { return dist_(rng_); });
    auto r = tracker_->start();
    ASSERT_TRUE(r) << r.message();
  }

  // Runs the loop until `done()` holds or `real_timeout` passes; returns done().
  // Once it holds, the steps still winding down finish too (a commit's log line and hook
  // follow it), so a test sees their effects.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds real_timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + real_timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      ioc_.restart();
      ioc_.run_for(std::chrono::milliseconds(5));
    }
    auto settle = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (tracker_ && tracker_->in_flight() > 0 && std::chrono::steady_clock::now() < settle) {
      ioc_.restart();
      ioc_.run_for(std::chrono::milliseconds(1));
    }
    return done();
  }

  Job job(const std::string& key) {
    auto j = store_->find(key);
    EXPECT_TRUE(j && *j) << key;
    return j && *j ? **j : Job{};
  }

  State state(const std::string& key) { return job(key).state; }

  bool final_state(const std::string& key) { return is_final(state(key)); }

  std::vector<State> path(const std::string& key) {
    std::vector<State> out;
    auto h = store_->history(job(key).id);
    for (const auto& t : *h) out.push_back(t.to);
    return out;
  }

  void enqueue(std::vector<PersonaSpec> specs) {
    auto r = run_op(tracker_->enqueue(specs, "test"));
    ASSERT_TRUE(r) << r.message();
  }

  std::string log() const { return log_text_.str(); }

  // Runs a tracker coroutine (an operator's action, an intake) to its end.
  template <class T>
  T run_op(boost::asio::awaitable<T> op) {
    return await(ioc_, std::move(op));
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<InlineStoreRunner> runner_;
  std::ostringstream log_text_;
  std::unique_ptr<EventLog> log_;
  boost::asio::io_context ioc_;
  ScaledClock clock_{kScale, from_unix_ms(1'790'000'000'000)};
  FakeApi api_;
  TrackerOptions options_;
  std::mt19937_64 rng_{42};
  std::uniform_real_distribution<double> dist_{0.0, 1.0};
  std::unique_ptr<Tracker> tracker_;
};

}  // namespace personad::testing
