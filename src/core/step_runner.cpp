// The runner of job steps (see step_runner.hpp).
#include "personad/step_runner.hpp"

#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <string>

namespace personad {

namespace asio = boost::asio;

StepRunner::StepRunner(asio::any_io_executor ex, Step step, Done done)
    : ex_(std::move(ex)), step_(std::move(step)), done_(std::move(done)) {}

void StepRunner::due(std::int64_t id) {
  if (stopped_) return;
  // Due again while its step is still winding down (a step that scheduled itself at once):
  // run it again right after, never drop it.
  if (running_.count(id)) {
    due_while_running_.insert(id);
    return;
  }
  if (!ready_set_.insert(id).second) return;
  ready_.push_back(id);
  pump();
}

void StepRunner::stop() {
  stopped_ = true;
  ready_.clear();
  ready_set_.clear();
  due_while_running_.clear();
}

void StepRunner::pump() {
  while (!stopped_ && running_.size() < limit_ && !ready_.empty()) {
    std::int64_t id = ready_.front();
    ready_.pop_front();
    ready_set_.erase(id);
    running_.insert(id);
    asio::co_spawn(ex_, step_(id), [this, id](std::exception_ptr e, StepEnd end) {
      running_.erase(id);
      std::string failure;
      if (e) {
        // Nothing should throw; if something does, the job stays as committed and its step
        // runs again later rather than taking the daemon down.
        end = StepEnd::retry_later;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          failure = ex.what();
        } catch (...) {
          failure = "unknown exception";
        }
      }
      const bool again = due_while_running_.erase(id) != 0;
      done_(id, end, failure);
      if (again) due(id);
      pump();
    });
  }
}

}  // namespace personad
