// The simulator's own admin endpoints under /_sim/ (no auth, never faulted): inspect every
// persona, counters, force a persona's status, change fault rates, skip time, reset.
#pragma once

#include <cstdint>

#include "fault_plan.hpp"
#include "persona_book.hpp"
#include "sim_http.hpp"

namespace creatify_sim {

inline constexpr std::string_view kAdminPrefix = "/_sim/";

class AdminApi {
 public:
  AdminApi(PersonaBook& book, Clock& clock, FaultPlan& faults, SimStats& stats, std::uint64_t seed)
      : book_(book), clock_(clock), faults_(faults), stats_(stats), seed_(seed) {}

  Response handle(const Request& req);

 private:
  Response personas(const Request& req);
  Response stats(const Request& req);
  Response pin(const Request& req, std::string_view id);
  Response set_faults(const Request& req);
  Response advance(const Request& req);
  Response reset(const Request& req);

  PersonaBook& book_;
  Clock& clock_;
  FaultPlan& faults_;
  SimStats& stats_;
  std::uint64_t seed_;
};

}  // namespace creatify_sim
