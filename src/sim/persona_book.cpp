// The simulator's in-memory personas and their time-scaled lifecycle.
// Outcomes and stage lengths are drawn once, at creation, from a seeded generator.
#include "persona_book.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

namespace creatify_sim {

namespace {

constexpr std::array<std::string_view, 3> kFailedReasons = {
    "video quality too low",
    "no face detected in the lipsync video",
    "lipsync video has no audible speech",
};
constexpr std::array<std::string_view, 2> kRejectedReasons = {
    "consent video does not match the lipsync video",
    "consent statement missing from the consent video",
};
constexpr std::string_view kClientRefPrefix = "personad:";
constexpr std::string_view kNoConsentReason = "consent video is required for approval";

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::done:
      return "done";
    case Outcome::failed:
      return "failed";
    case Outcome::rejected:
      return "rejected";
  }
  return "done";
}

bool is_final_status(std::string_view s) { return s == "done" || s == "failed" || s == "rejected"; }

SimTime Persona::final_at() const {
  const std::size_t last = outcome == Outcome::failed ? kFailAfterStage : kStages.size() - 1;
  return created_at + stage_end[last];
}

PersonaBook::PersonaBook(const Clock& clock, BookSettings settings)
    : clock_(clock),
      settings_(settings),
      lifecycle_rng_(settings.seed),
      id_rng_(std::random_device{}()) {}

std::string PersonaBook::new_id() {
  // UUID version 4: 122 random bits, version nibble 4, variant bits 10.
  std::uint64_t hi = id_rng_();
  std::uint64_t lo = id_rng_();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

Outcome PersonaBook::draw_outcome(const PersonaInput& input, std::string& reason) {
  // Always consume the same draws so one persona's markers never shift later outcomes.
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double roll = unit(lifecycle_rng_);
  const bool coin = unit(lifecycle_rng_) < 0.5;
  const std::size_t pick = static_cast<std::size_t>(lifecycle_rng_() >> 1);

  const auto fail = [&] {
    reason = kFailedReasons[pick % kFailedReasons.size()];
    return Outcome::failed;
  };
  const auto reject = [&] {
    reason = kRejectedReasons[pick % kRejectedReasons.size()];
    return Outcome::rejected;
  };
  const std::string_view name = input.creator_name;
  if (contains(name, "[fail]")) return fail();
  if (contains(name, "[reject]")) return reject();
  if (contains(name, "[done]")) return Outcome::done;
  if (!input.consent_video || input.consent_video->empty()) {
    reason = kNoConsentReason;
    return Outcome::rejected;
  }
  if (roll < settings_.fail_rate) return coin ? fail() : reject();
  return Outcome::done;
}

void PersonaBook::count_labels(const std::vector<std::string>& labels) {
  // A label repeated within one persona is not a duplicate create: count each once.
  const std::set<std::string_view> distinct(labels.begin(), labels.end());
  for (const std::string_view label : distinct) {
    auto [it, inserted] = label_counts_.try_emplace(std::string(label), 0);
    if (++it->second != 2) continue;
    ++label_duplicates_;
    if (label.starts_with(kClientRefPrefix)) ++client_ref_duplicates_;
  }
}

const Persona& PersonaBook::create(PersonaInput input) {
  Persona p;
  p.id = new_id();
  p.created_at = clock_.now();
  p.listed_at = p.created_at + clock_.sim_span(settings_.list_lag);
  p.outcome = draw_outcome(input, p.outcome_reason);
  std::uniform_real_distribution<double> spread(0.5, 1.5);
  SimDuration total{};
  for (auto& end : p.stage_end) {
    const auto length =
        std::chrono::duration_cast<SimDuration>(settings_.stage_duration * spread(lifecycle_rng_));
    // At least one tick per stage keeps the offsets strictly increasing.
    total += std::max(length, SimDuration(1));
    end = total;
  }
  p.input = std::move(input);
  count_labels(p.input.labels);

  const std::size_t index = personas_.size();
  by_id_.emplace(p.id, index);
  if (p.input.webhook_url && !p.input.webhook_url->empty())
    webhooks_.push(Due{p.final_at(), index});
  personas_.push_back(std::move(p));
  return personas_.back();
}

const Persona* PersonaBook::find(std::string_view id) const {
  const auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &personas_[it->second];
}

const Persona& PersonaBook::newest(std::size_t index) const {
  return personas_[personas_.size() - 1 - index];
}

std::vector<const Persona*> PersonaBook::listed() const {
  const SimTime now = clock_.now();
  std::vector<const Persona*> out;
  out.reserve(personas_.size());
  for (auto it = personas_.rbegin(); it != personas_.rend(); ++it)
    if (it->listed_at <= now) out.push_back(&*it);
  return out;
}

PersonaStatus PersonaBook::status_of(const Persona& p) const {
  PersonaStatus s;
  if (p.pinned) {
    s.process_status = p.pinned->process_status;
    s.is_active = p.pinned->is_active;
    if (p.pinned->failed_reason) s.failed_reason = *p.pinned->failed_reason;
    s.voice_ready = s.process_status == "done";
    s.updated_at = p.pinned->at;
    return s;
  }
  const SimTime now = clock_.now();
  const SimDuration elapsed = now - p.created_at;
  s.voice_ready = elapsed >= p.stage_end[2];  // voice_creating is over
  if (now >= p.final_at()) {
    s.process_status = to_string(p.outcome);
    s.is_active = p.outcome == Outcome::done;
    if (p.outcome != Outcome::done) s.failed_reason = p.outcome_reason;
    s.updated_at = p.final_at();
    return s;
  }
  std::size_t stage = 0;
  while (elapsed >= p.stage_end[stage]) ++stage;  // final_at() bounds this below kStages.size()
  s.process_status = kStages[stage];
  s.updated_at = p.created_at + (stage == 0 ? SimDuration{} : p.stage_end[stage - 1]);
  return s;
}

const Persona* PersonaBook::pin(std::string_view id, std::string process_status, bool is_active,
                                std::optional<std::string> failed_reason) {
  const auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  Persona& p = personas_[it->second];
  p.pinned =
      PinnedStatus{std::move(process_status), is_active, std::move(failed_reason), clock_.now()};
  if (is_final_status(p.pinned->process_status) && p.input.webhook_url &&
      !p.input.webhook_url->empty())
    webhooks_.push(Due{p.pinned->at, it->second, true});
  return &p;
}

void PersonaBook::clear() {
  personas_.clear();
  by_id_.clear();
  label_counts_.clear();
  label_duplicates_ = 0;
  client_ref_duplicates_ = 0;
  webhooks_ = {};
}

std::optional<SimTime> PersonaBook::next_webhook_due() const {
  if (webhooks_.empty()) return std::nullopt;
  return webhooks_.top().at;
}

WebhookCall PersonaBook::webhook_for(const Persona& p, const PersonaStatus& s) {
  WebhookCall call;
  call.url = p.input.webhook_url.value_or("");
  call.persona_id = p.id;
  call.process_status = std::string(s.process_status);
  if (s.failed_reason) call.failed_reason = std::string(*s.failed_reason);
  return call;
}

std::vector<WebhookCall> PersonaBook::take_due_webhooks() {
  std::vector<WebhookCall> due;
  const SimTime now = clock_.now();
  while (!webhooks_.empty() && webhooks_.top().at <= now) {
    const Due due_entry = webhooks_.top();
    webhooks_.pop();
    const Persona& p = personas_[due_entry.index];
    // A pinned persona no longer follows its lifecycle: only its pin is announced.
    if (p.pinned && !due_entry.from_pin) continue;
    due.push_back(webhook_for(p, status_of(p)));
  }
  return due;
}

}  // namespace creatify_sim
