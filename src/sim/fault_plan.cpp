// Fault selection for creatify-sim. Every decision consumes the same number of draws, so the
// sequence of faults for a given seed does not depend on which faults were enabled earlier.
#include "fault_plan.hpp"

#include <array>

namespace creatify_sim {

bool FaultPlan::draw(double p) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p;
}

FaultDecision FaultPlan::decide(bool is_create) {
  using D = FaultDecision;
  static constexpr std::array<unsigned, 3> kStatuses = {500, 502, 503};
  const bool server_error = draw(rates_.server_error);
  const bool rate_limited = draw(rates_.rate_limited);
  const bool reset = draw(rates_.reset);
  const bool slow = draw(rates_.slow);
  const bool malformed = draw(rates_.malformed);
  const bool lost = draw(rates_.lost_create);
  const bool lost_by_reset = draw(0.5);
  const unsigned status = kStatuses[rng_() % kStatuses.size()];
  const double truncate_at = std::uniform_real_distribution<double>(0.1, 0.9)(rng_);

  D d;
  d.slow = slow;
  d.error_status = status;
  d.truncate_at = truncate_at;
  if (reset)
    d.preempt = D::Preempt::reset;
  else if (server_error)
    d.preempt = D::Preempt::server_error;
  else if (rate_limited)
    d.preempt = D::Preempt::rate_limited;
  else if (is_create && lost)
    d.lost_create = lost_by_reset ? D::LostCreate::reset : D::LostCreate::server_error;
  else if (malformed)
    d.malformed = true;
  return d;
}

}  // namespace creatify_sim
