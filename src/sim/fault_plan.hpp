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
};

// What happens to one request. Handling is skipped when `preempt` is not none.
struct FaultDecision {
  enum class Preempt { none, server_error, rate_limited, reset };
  enum class LostCreate { none, server_error, reset };

  Preempt preempt = Preempt::none;
  unsigned error_status = 500;                // for Preempt::server_error: 500, 502 or 503
  bool slow = false;                          // delay the answer (or the reset)
  bool malformed = false;                     // cut the body of a 2xx answer
  double truncate_at = 0.5;                   // keep this fraction of the body, in (0, 1)
  LostCreate lost_create = LostCreate::none;  // only ever set for creates

  bool any() const {
    return preempt != Preempt::none || slow || malformed || lost_create != LostCreate::none;
  }
};

class FaultPlan {
 public:
  FaultPlan(FaultRates rates, std::uint64_t seed) : rates_(rates), rng_(seed) {}

  // When several faults are drawn, the one the client would notice first wins:
  // reset, then 5xx, then 429 (all before handling); then lost create, then malformed.
  FaultDecision decide(bool is_create);

  const FaultRates& rates() const { return rates_; }
  void set_rates(const FaultRates& rates) { rates_ = rates; }

 private:
  bool draw(double p);

  FaultRates rates_;
  std::mt19937_64 rng_;
};

}  // namespace creatify_sim
