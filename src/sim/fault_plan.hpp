// Decides which fault, if any, the simulator injects into one API request: independent
// probabilities per fault kind, drawn from a seeded generator so a run can be replayed.
#pragma once

#include <cstdint>
#include <random>

namespace creatify_sim {

struct FaultRates {
  double server_error = 0;  // --fault-5xx: 500/502/503 instead of handling the request
  double rate_limited = 0;  // --fault-429: 429 with Retry-After instead of handling it
  double reset = 0;         // --fault-reset: close the connection without answering
  double slow = 0;          // --fault-slow: answer after a delay
  double malformed = 0;     // --fault-malformed: a 2xx answer with truncated JSON
  double lost_create = 0;   // --lost-create: create performed, client sees 500 or a reset
  double slow_create = 0;   // --slow-create: a create is stored (and answered) late
  double list_page = 0;     // --fault-list-page: a list page answers 502
  double retry_after_absurd = 0;  // --retry-after-absurd: share of 429s with an absurd Retry-After
};

// What happens to one request. Handling is skipped when `preempt` is not none.
struct FaultDecision {
  enum class Preempt { none, server_error, list_page, rate_limited, reset };
  enum class LostCreate { none, server_error, reset };

  Preempt preempt = Preempt::none;
  unsigned error_status = 500;                // for Preempt::server_error: 500, 502 or 503
  bool slow = false;                          // delay the answer (or the reset)
  bool malformed = false;                     // cut the body of a 2xx answer
  double truncate_at = 0.5;                   // keep this fraction of the body, in (0, 1)
  LostCreate lost_create = LostCreate::none;  // only ever set for creates
  bool slow_create = false;         // only for creates that are handled: store them late
  bool retry_after_absurd = false;  // only with Preempt::rate_limited

  bool any() const {
    return preempt != Preempt::none || slow || malformed || lost_create != LostCreate::none ||
           slow_create;
  }
};

// The kind of request a decision is for (sim_api's RouteKind, without depending on it).
enum class FaultTarget { create, list, other };

class FaultPlan {
 public:
  FaultPlan(FaultRates rates, std::uint64_t seed)
      : rates_(rates), rng_(seed), extra_rng_(seed ^ 0x5851f42d4c957f2dULL) {}

  // When several faults are drawn, the one the client would notice first wins:
  // reset, then 5xx, then a failed list page, then 429 (all before handling); then lost
  // create, then malformed. A slow create combines with a lost create or a malformed answer.
  FaultDecision decide(FaultTarget target);
  FaultDecision decide(bool is_create) {
    return decide(is_create ? FaultTarget::create : FaultTarget::other);
  }

  const FaultRates& rates() const { return rates_; }
  void set_rates(const FaultRates& rates) { rates_ = rates; }

 private:
  static bool draw(std::mt19937_64& rng, double p);

  FaultRates rates_;
  std::mt19937_64 rng_;
  // The faults added later draw from their own stream, so a seed's sequence of the original
  // faults is the same whether or not the newer ones are enabled.
  std::mt19937_64 extra_rng_;
};

}  // namespace creatify_sim
