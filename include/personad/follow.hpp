// What `personactl watch` and `wait` know of the jobs they follow: the selection's jobs read
// once from the store, then moved on by the daemon's events (event_feed.hpp). Pure: the counts,
// the lines and the exit code are decided here; ctl_follow.cpp talks to the daemon.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "personad/job.hpp"

namespace personad {

struct FollowedJob {
  State state = State::queued;
  std::string remote_status;  // empty: none yet
  std::string eta;            // the job object's `eta` when read (empty: none)
};

class Campaign {
 public:
  // A job object of the contract (key, state, remote_status, eta).
  void add(const boost::json::object& job);
  void clear();
  // An event of GET /v1/events; false (nothing changes) for a job not followed.
  bool apply(const boost::json::object& event);

  std::size_t total() const { return jobs_.size(); }
  std::size_t final_count() const;
  bool all_final() const { return final_count() == total(); }
  // Jobs per state (every state, zero included), and per remote stage of the non-final ones
  // (their remote_status; "-" before the API named one).
  std::map<State, std::size_t> counts() const;
  std::map<std::string, std::size_t> stages() const;
  // The latest eta of the non-final jobs, as read (empty when none carries one).
  std::string eta() const;
  // The newest transition lines, newest last (at most kLatest).
  const std::deque<std::string>& latest() const { return latest_; }
  static constexpr std::size_t kLatest = 50;

 private:
  std::unordered_map<std::string, FollowedJob> jobs_;
  std::deque<std::string> latest_;
};

// One event as a line: "AT KEY FROM -> TO remote_status=S reason=\"…\"".
std::string event_line(const boost::json::object& event);
// "N jobs: a done, b failed, … (k final)" over the states present.
std::string summary_line(const Campaign& c);
// `wait`'s exit once all are final: 0 every job done, 3 any failed, expired or cancelled.
int wait_exit_code(const Campaign& c);
// "[#####.....] 12/40" of width `width` (the bar's inside).
std::string progress_bar(std::size_t final_count, std::size_t total, std::size_t width);

}  // namespace personad
