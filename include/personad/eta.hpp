// When will it be done: estimates from what this installation has observed (pure; no I/O).
//
// Every finished (`done`) job's history says when it entered each remote stage and when it was
// done; per stage, the times from entering it to `done` form an empirical distribution. A job now
// in stage S, entered at t_S, is expected at t_S + the distribution's quantiles, conditioned on
// the time already spent (only observed durations longer than that count). A stage seen too
// rarely falls back to the distribution from submission; while fewer than `min_finished` jobs
// have finished, the documented window (1–5 days from submission, uniform) is the estimate
// (basis "documented"). The last completion of a set of jobs is the quantile of their maximum,
// assuming independent jobs: P(all done by t) = Π P(job i done by t).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/job_json.hpp"

namespace personad {

struct EtaOptions {
  std::size_t min_finished = 20;      // fewer finished jobs: the documented window
  std::size_t min_stage_samples = 5;  // fewer for a stage: the distribution from submission
  Millis window_start{24LL * 3600'000};      // documented: done 1 day after submission at the earliest
  Millis window_end{5LL * 24 * 3600'000};    // … and 5 days at the latest
};

// The stage a job is in, as the model names it: the remote status while pending ("pending" when
// the API has said nothing yet), "@queued" / "@submitting" before.
std::string eta_stage(State state, const std::string& remote_status);

// The estimate of a set of jobs' last completion.
struct SelectionEta {
  std::optional<TimePoint> p50;
  std::optional<TimePoint> p90;
  std::string basis;  // "observed" | "documented" (documented if any job's is)
  std::size_t jobs = 0;  // jobs counted (those with an estimate)
};

class EtaModel {
 public:
  // `done_histories`: the transitions of finished `done` jobs, each oldest first (others are
  // skipped: a history that does not end in `done`).
  static EtaModel from_histories(const std::vector<std::vector<Transition>>& done_histories,
                                 EtaOptions options = {});
  std::size_t finished() const { return finished_; }
  bool observed() const { return finished_ >= options_.min_finished; }
  // A non-final job's estimate (nullopt for a final job). eta / eta_p90 are null when the job is
  // past every observed duration (or past the documented window): overdue, no estimate.
  std::optional<JobEstimate> estimate(const Job& job, TimePoint now) const;
  SelectionEta last_completion(const std::vector<Job>& active, TimePoint now) const;
  // The same from groups of alike jobs (Store::active_cohorts): each group's distribution
  // counts once per job, so a campaign of 1,000,000 jobs costs what its groups cost.
  SelectionEta last_completion(const std::vector<ActiveCohort>& active, TimePoint now) const;
  // The stage's observed durations from entry to done (sorted), for reports.
  const std::map<std::string, std::vector<Millis>>& stages() const { return stages_; }
  const std::vector<Millis>& from_submission() const { return from_submission_; }

 private:
  // One job's completion-time distribution: either empirical (sorted remaining durations after
  // `entry`, those longer than the elapsed time) or uniform over [lo, hi].
  struct Dist {
    bool empirical = false;
    TimePoint entry{};
    const std::vector<Millis>* samples = nullptr;
    std::size_t first = 0;  // samples[first..] are longer than the elapsed time
    TimePoint lo{}, hi{};
    bool empty() const;
    double cdf(TimePoint t) const;
    TimePoint quantile(double q) const;
    TimePoint upper() const;
  };
  std::optional<Dist> distribution(const ActiveCohort& c, TimePoint now, bool& observed_basis) const;

  EtaOptions options_;
  std::size_t finished_ = 0;
  std::map<std::string, std::vector<Millis>> stages_;
  std::vector<Millis> from_submission_;
};

}  // namespace personad
