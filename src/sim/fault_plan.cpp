// Fault selection for creatify-sim. Every decision consumes the same number of draws, so the
// sequence of faults for a given seed does not depend on which faults were enabled earlier.
#include "fault_plan.hpp"

#include <array>

namespace creatify_sim {

bool FaultPlan::draw(std::mt19937_64& rng, double p) {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng) < p;
}

FaultDecision FaultPlan::decide(FaultTarget target) {
  using D = FaultDecision;
  static constexpr std::array<unsigned, 3> kStatuses = {500, 502, 503};
  const bool is_create = target == FaultTarget::create;
  const bool server_error = draw(rng_, rates_.server_error);
  const bool rate_limited = draw(rng_, rates_.rate_limited);
  const bool reset = draw(rng_, rates_.reset);
  const bool slow = draw(rng_, rates_.slow);
  const bool malformed = draw(rng_, rates_.malformed);
  const bool lost = draw(rng_, rates_.lost_create);
  const bool lost_by_reset = draw(rng_, 0.5);
  const unsigned status = kStatuses[rng_() % kStatuses.size()];
  const double truncate_at = std::uniform_real_distribution<double>(0.1, 0.9)(rng_);
  const bool slow_create = draw(extra_rng_, rates_.slow_create);
  const bool list_page = draw(extra_rng_, rates_.list_page);
  const bool absurd = draw(extra_rng_, rates_.retry_after_absurd);

  D d;
  d.slow = slow;
  d.error_status = status;
  d.truncate_at = truncate_at;
  if (reset) {
    d.preempt = D::Preempt::reset;
  } else if (server_error) {
    d.preempt = D::Preempt::server_error;
  } else if (target == FaultTarget::list && list_page) {
    d.preempt = D::Preempt::list_page;
    d.error_status = 502;
  } else if (rate_limited) {
    d.preempt = D::Preempt::rate_limited;
    d.retry_after_absurd = absurd;
  } else {
    d.slow_create = is_create && slow_create;
    if (is_create && lost)
      d.lost_create = lost_by_reset ? D::LostCreate::reset : D::LostCreate::server_error;
    else if (malformed)
      d.malformed = true;
  }
  return d;
}

}  // namespace creatify_sim
