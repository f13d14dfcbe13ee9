// Estimates of completion (see eta.hpp).
#include "personad/eta.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace personad {

std::string eta_stage(State state, const std::string& remote_status) {
  if (state == State::pending) return remote_status.empty() ? "pending" : remote_status;
  return "@" + std::string(to_string(state));
}

EtaModel EtaModel::from_histories(const std::vector<std::vector<Transition>>& histories,
                                  EtaOptions options) {
  EtaModel m;
  m.options_ = options;
  for (const auto& h : histories) {
    if (h.empty() || h.back().to != State::done) continue;
    const TimePoint done_at = h.back().at;
    ++m.finished_;
    std::set<std::string> seen;
    bool submitted = false;
    for (const Transition& t : h) {
      if (t.to == State::done) break;
      if (is_final(t.to)) continue;  // a failed-then-retried spell: its later stages count
      const std::string stage = eta_stage(t.to, t.remote_status);
      if (seen.insert(stage).second) m.stages_[stage].push_back(done_at - t.at);
      if (t.to == State::pending && !submitted) {
        submitted = true;
        m.from_submission_.push_back(done_at - t.at);
      }
    }
  }
  for (auto& [stage, v] : m.stages_) std::sort(v.begin(), v.end());
  std::sort(m.from_submission_.begin(), m.from_submission_.end());
  return m;
}

bool EtaModel::Dist::empty() const {
  return empirical ? first >= samples->size() : !(lo < hi);
}

double EtaModel::Dist::cdf(TimePoint t) const {
  if (empirical) {
    const auto begin = samples->begin() + static_cast<std::ptrdiff_t>(first);
    const auto n = static_cast<double>(samples->end() - begin);
    const auto le = std::upper_bound(begin, samples->end(), t - entry) - begin;
    return static_cast<double>(le) / n;
  }
  if (t <= lo) return 0;
  if (t >= hi) return 1;
  return static_cast<double>((t - lo).count()) / static_cast<double>((hi - lo).count());
}

TimePoint EtaModel::Dist::quantile(double q) const {
  if (empirical) {
    const std::size_t n = samples->size() - first;
    const double pos = q * static_cast<double>(n - 1);
    const auto i = static_cast<std::size_t>(std::floor(pos));
    const std::size_t j = std::min(i + 1, n - 1);
    const double f = pos - static_cast<double>(i);
    const double ms = static_cast<double>((*samples)[first + i].count()) * (1 - f) +
                      static_cast<double>((*samples)[first + j].count()) * f;
    return entry + Millis(static_cast<std::int64_t>(std::llround(ms)));
  }
  return lo + Millis(static_cast<std::int64_t>(
                  std::llround(q * static_cast<double>((hi - lo).count()))));
}

TimePoint EtaModel::Dist::upper() const {
  return empirical ? entry + samples->back() : hi;
}

std::optional<EtaModel::Dist> EtaModel::distribution(const ActiveCohort& job, TimePoint now,
                                                     bool& observed_basis) const {
  if (is_final(job.state)) return std::nullopt;
  const TimePoint entry = job.entry;
  observed_basis = observed();
  if (observed_basis) {
    auto conditioned = [&](const std::vector<Millis>& v, TimePoint from) -> std::optional<Dist> {
      if (v.size() < options_.min_stage_samples) return std::nullopt;
      Dist d;
      d.empirical = true;
      d.entry = from;
      d.samples = &v;
      d.first = static_cast<std::size_t>(std::upper_bound(v.begin(), v.end(), now - from) - v.begin());
      return d;
    };
    auto it = stages_.find(eta_stage(job.state, job.remote_status));
    if (it != stages_.end())
      if (auto d = conditioned(it->second, entry)) return d;
    if (job.state == State::pending && job.submitted)
      if (auto d = conditioned(from_submission_, *job.submitted)) return d;
  }
  // The documented window from submission (a job not submitted yet: from when it entered its
  // state, so that the answer stays the same from one call to the next until the window opens).
  observed_basis = false;
  const TimePoint submitted =
      job.state == State::pending && job.submitted ? *job.submitted : entry;
  Dist d;
  d.lo = std::max(now, submitted + options_.window_start);
  d.hi = submitted + options_.window_end;
  return d;
}

std::optional<JobEstimate> EtaModel::estimate(const Job& job, TimePoint now) const {
  bool observed_basis = false;
  auto d = distribution(cohort_of(job), now, observed_basis);
  if (!d) return std::nullopt;
  JobEstimate e;
  e.basis = observed_basis ? "observed" : "documented";
  if (!d->empty()) {
    e.eta = d->quantile(0.5);
    e.eta_p90 = d->quantile(0.9);
  }
  return e;
}

SelectionEta EtaModel::last_completion(const std::vector<Job>& active, TimePoint now) const {
  std::vector<ActiveCohort> each;
  each.reserve(active.size());
  for (const Job& j : active) each.push_back(cohort_of(j));
  return last_completion(each, now);
}

SelectionEta EtaModel::last_completion(const std::vector<ActiveCohort>& active,
                                       TimePoint now) const {
  SelectionEta out;
  std::vector<std::pair<Dist, double>> dists;  // and how many jobs follow it
  bool all_observed = true;
  for (const ActiveCohort& c : active) {
    bool observed_basis = false;
    auto d = distribution(c, now, observed_basis);
    if (!d || d->empty() || c.jobs <= 0) continue;
    all_observed = all_observed && observed_basis;
    dists.emplace_back(*d, static_cast<double>(c.jobs));
    out.jobs += static_cast<std::size_t>(c.jobs);
  }
  if (dists.empty()) return out;
  out.basis = all_observed ? "observed" : "documented";
  TimePoint hi = now;
  for (const auto& [d, n] : dists) hi = std::max(hi, d.upper());
  // P(all done by t) as a sum of logs (thousands of factors below 1 would underflow).
  auto all_done_by = [&](TimePoint t) {
    double log_p = 0;
    for (const auto& [d, n] : dists) {
      const double p = d.cdf(t);
      if (p <= 0) return 0.0;
      log_p += n * std::log(p);
    }
    return std::exp(log_p);
  };
  auto quantile = [&](double q) {
    TimePoint lo = now, h = hi;
    while ((h - lo) > Millis(1)) {
      const TimePoint mid = lo + (h - lo) / 2;
      if (all_done_by(mid) >= q) h = mid;
      else lo = mid;
    }
    return h;
  };
  out.p50 = quantile(0.5);
  out.p90 = quantile(0.9);
  return out;
}

}  // namespace personad
