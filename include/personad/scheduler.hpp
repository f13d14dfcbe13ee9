// Due-time queue of job ids driven by a single timer of the clock: O(log n) per schedule, one
// wake-up per due time, no periodic scan, no timer armed while nothing is due.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <unordered_map>
#include <vector>

#include "personad/clock.hpp"

namespace personad {

class Scheduler {
 public:
  using Callback = std::function<void(std::int64_t job_id)>;

  Scheduler(boost::asio::any_io_executor ex, const Clock& clock, Callback on_due);

  // Due at `due` (now or in the past: as soon as the loop runs). Replaces an earlier entry.
  void schedule(std::int64_t job_id, TimePoint due);
  void cancel(std::int64_t job_id);
  bool contains(std::int64_t job_id) const { return live_.count(job_id) != 0; }
  std::optional<TimePoint> next_due() const;
  std::size_t size() const { return live_.size(); }
  // Stops for good: no callback runs afterwards.
  void stop();

 private:
  struct Entry {
    TimePoint due;
    std::int64_t id;
    std::uint64_t gen;
    bool operator>(const Entry& o) const { return due > o.due; }
  };
  struct Live {
    TimePoint due;
    std::uint64_t gen;
  };

  void drop_stale_top();
  void arm();
  void fire();
  void compact();

  const Clock& clock_;
  std::unique_ptr<WakeTimer> timer_;
  Callback on_due_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  std::unordered_map<std::int64_t, Live> live_;
  std::uint64_t next_gen_ = 1;
  std::optional<TimePoint> armed_for_;
  bool dispatching_ = false;
  bool stopped_ = false;
};

}  // namespace personad
