// Runs the steps of due jobs: at most `limit` at once, each job at most once at a time, in the
// order they became due; a job due again while its step runs is run again right after.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_set>

namespace personad {

// How a job's step ended, for the runner's caller.
enum class StepEnd {
  settled,      // the job is final, scheduled again, or waits for the operator
  retry_later,  // the store failed: nothing (more) was written; run the step again later
  superseded,   // an operator's action changed the job meanwhile; it rescheduled what it needs
  stopping,     // the tracker stopped taking work before the step's request left: nothing done
};

class StepRunner {
 public:
  using Step = std::function<boost::asio::awaitable<StepEnd>(std::int64_t job_id)>;
  // After every step; `failure` holds what an escaping exception said (then end is retry_later).
  using Done = std::function<void(std::int64_t job_id, StepEnd end, const std::string& failure)>;

  StepRunner(boost::asio::any_io_executor ex, Step step, Done done);

  void set_limit(std::size_t limit) { limit_ = limit < 1 ? 1 : limit; }
  void due(std::int64_t job_id);
  // Drops what waits; running steps finish on their own, and nothing new starts.
  void stop();

  bool contains(std::int64_t job_id) const {
    return running_.count(job_id) != 0 || ready_set_.count(job_id) != 0;
  }
  std::size_t running() const { return running_.size(); }
  bool is_running(std::int64_t job_id) const { return running_.count(job_id) != 0; }

 private:
  void pump();

  boost::asio::any_io_executor ex_;
  Step step_;
  Done done_;
  std::size_t limit_ = 1;
  std::deque<std::int64_t> ready_;
  std::unordered_set<std::int64_t> ready_set_;
  std::unordered_set<std::int64_t> running_;
  std::unordered_set<std::int64_t> due_while_running_;
  bool stopped_ = false;
};

}  // namespace personad
