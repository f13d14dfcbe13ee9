// The simulator's in-memory personas and their time-scaled lifecycle. Pure logic: status is
// computed lazily from creation time and an injected clock, so there is no timer per persona.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sim_clock.hpp"

namespace creatify_sim {

// Non-final stages in the order the API reports them.
inline constexpr std::array<std::string_view, 6> kStages = {
    "pending", "processing", "voice_creating", "video_validating", "crop_and_matte", "reviewing"};
// A `failed` persona stops after this stage (processing problems surface before review);
// `done` and `rejected` go through review.
inline constexpr std::size_t kFailAfterStage = 3;  // video_validating

enum class Outcome { done, failed, rejected };
std::string_view to_string(Outcome o);
bool is_final_status(std::string_view process_status);

// A validated create request.
struct PersonaInput {
  std::string gender;
  std::string creator_name;
  std::string video_scene;
  std::string lipsync_input;  // URL, or "uploaded:<file> (<n> bytes)" for a file part
  std::optional<std::string> lipsync_upload;  // file name when lipsync_input was uploaded
  std::optional<std::string> keywords;
  std::optional<std::string> consent_video;
  std::optional<std::string> webhook_url;
  std::optional<std::string> gdown_url;
  std::vector<std::string> labels;
};

// Set by POST /_sim/personas/{id}: freezes the persona in this state.
struct PinnedStatus {
  std::string process_status;
  bool is_active = false;
  std::optional<std::string> failed_reason;
  SimTime at;
};

struct Persona {
  std::string id;
  PersonaInput input;
  SimTime created_at;
  // From then on the persona shows in list endpoints (created_at + --list-lag-ms); get by id
  // sees it from created_at.
  SimTime listed_at;
  // Offset from created_at at which kStages[i] ends (cumulative, strictly increasing).
  std::array<SimDuration, kStages.size()> stage_end{};
  Outcome outcome = Outcome::done;
  std::string outcome_reason;  // the failed_reason shown once failed/rejected
  std::optional<PinnedStatus> pinned;

  SimTime final_at() const;
};

// What a persona looks like at a given instant.
struct PersonaStatus {
  std::string_view process_status;
  bool is_active = false;
  std::optional<std::string_view> failed_reason;
  bool voice_ready = false;  // matching voice exists (after voice_creating)
  SimTime updated_at;
};

struct WebhookCall {
  std::string url;
  std::string persona_id;
  std::string process_status;
  std::optional<std::string> failed_reason;
};

struct BookSettings {
  SimDuration stage_duration = std::chrono::hours(4);  // mean; each stage is ±50%
  double fail_rate = 0.0;                              // P(failed or rejected), half each
  std::uint64_t seed = 0;                              // outcomes and stage lengths
  RealDuration list_lag{0};  // --list-lag-ms: a new persona shows in lists this much later
};

class PersonaBook {
 public:
  PersonaBook(const Clock& clock, BookSettings settings);

  // References into the book stay valid until the next create() or clear().
  const Persona& create(PersonaInput input);
  const Persona* find(std::string_view id) const;
  std::size_t size() const { return personas_.size(); }
  // 0 is the newest persona; listings are newest first.
  const Persona& newest(std::size_t index) const;
  // Every persona, oldest first.
  const std::vector<Persona>& all() const { return personas_; }
  // The personas list endpoints show now (listed_at reached), newest first. Pointers stay
  // valid until the next create() or clear().
  std::vector<const Persona*> listed() const;

  PersonaStatus status_of(const Persona& p) const;

  // Pins the persona's status; returns nullptr for an unknown id. Pinning a final status
  // on a persona with a webhook makes that webhook due at once.
  const Persona* pin(std::string_view id, std::string process_status, bool is_active,
                     std::optional<std::string> failed_reason);
  void clear();

  // Number of distinct labels carried by more than one persona (duplicate creates).
  std::size_t label_duplicates() const { return label_duplicates_; }
  // The same, for personad's own client-reference labels ("personad:<uuid>") only: any such
  // duplicate means a persona was created twice.
  std::size_t client_ref_duplicates() const { return client_ref_duplicates_; }

  // Webhooks: the earliest final transition still to be announced, and the calls due now.
  std::optional<SimTime> next_webhook_due() const;
  std::vector<WebhookCall> take_due_webhooks();
  static WebhookCall webhook_for(const Persona& p, const PersonaStatus& s);

 private:
  struct Due {
    SimTime at;
    std::size_t index;
    bool from_pin = false;  // announces a pinned final status rather than the lifecycle's
    bool operator>(const Due& o) const { return at > o.at; }
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  std::string new_id();
  Outcome draw_outcome(const PersonaInput& input, std::string& reason);
  void count_labels(const std::vector<std::string>& labels);

  const Clock& clock_;
  BookSettings settings_;
  std::mt19937_64 lifecycle_rng_;  // seeded: reproducible outcomes and stage lengths
  std::mt19937_64 id_rng_;         // never seeded: ids must differ between sim runs
  std::vector<Persona> personas_;  // insertion order
  std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>> by_id_;
  std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>> label_counts_;
  std::size_t label_duplicates_ = 0;
  std::size_t client_ref_duplicates_ = 0;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> webhooks_;
};

}  // namespace creatify_sim
