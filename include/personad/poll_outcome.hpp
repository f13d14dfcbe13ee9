// What a status poll's answer means for a pending job, and when it is looked at next: a pure
// decision, no I/O. Expiry is checked on every answer and every error, and no retry is ever
// scheduled past the moment the job must expire, so no answer (or lack of one) can keep a job
// pending beyond expires_at + retry_max.
//
// A 404/410 fails the job only when the persona stays missing: kMissingAnswers answers in a
// row over at least kMissingFor (an eventually consistent API, a proxy in a bad minute). A
// resubmission would cost a new avatar; a wait costs minutes.
#pragma once

#include <optional>
#include <string>

#include "personad/config.hpp"
#include "personad/creatify_api.hpp"
#include "personad/job.hpp"

namespace personad {

enum class PollVerdict {
  done,
  failed,
  expired,
  pending,  // answered, not final: next poll at `next_at`
  retry,    // no usable answer: try again at `next_at`
};

inline constexpr std::int64_t kMissingAnswers = 3;
inline constexpr Millis kMissingFor{10 * 60'000};

struct PollDecision {
  PollVerdict verdict = PollVerdict::retry;
  std::string reason;
  std::optional<std::string> failed_reason;  // failed
  std::optional<std::string> remote_status;  // the answer's process_status, when answered
  bool status_changed = false;               // pending with a new remote status
  bool answered = false;                     // counts as a poll
  std::int64_t errors = 0;                   // consecutive errors after this answer
  TimePoint next_at{};                       // pending and retry
  // The missing-persona count after this answer (404/410 in a row), and since when.
  std::optional<TimePoint> missing_since;
  std::int64_t missing_count = 0;
};

// When a pending job expires (its stored expires_at, or one computed from the policy).
TimePoint expiry_of(const Job& job, const PollConfig& poll);
// The last moment a pending job may stay pending when the API does not answer.
TimePoint expiry_grace_end(const Job& job, const PollConfig& poll, const ApiConfig& api);

PollDecision decide_poll(const Job& job, const ApiResult<RemotePersona>& answer, TimePoint now,
                         const ApiConfig& api, const PollConfig& poll, double unit_random);

}  // namespace personad
