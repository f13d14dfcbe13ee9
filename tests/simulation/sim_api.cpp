// The simulated Creatify API (see sim_api.hpp).
#include "sim_api.hpp"

#include <algorithm>

#include "personad/remote_list.hpp"

namespace personad::simulation {

namespace asio = boost::asio;

namespace {

constexpr std::string_view kStages[] = {"pending", "processing", "voice_creating",
                                        "video_validating", "crop_and_matte", "reviewing"};

template <class T>
ApiResult<T> failure(Outcome o, int status, std::string message, bool sent = true,
                     std::optional<Millis> retry_after = std::nullopt) {
  ApiResult<T> r;
  r.outcome = o;
  r.http_status = status;
  r.message = std::move(message);
  r.sent = sent;
  r.retry_after = retry_after;
  return r;
}

}  // namespace

SimApi::SimApi(const Clock& clock, std::uint64_t seed, SimFaults faults, Millis client_timeout)
    : clock_(clock), rng_(seed), faults_(faults), client_timeout_(client_timeout) {}

bool SimApi::chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

Millis SimApi::latency() { return Millis(std::uniform_int_distribution<int>(5, 400)(rng_)); }

CreatePlan SimApi::draw_create_plan() {
  if (!scripted_creates.empty()) {
    CreatePlan p = scripted_creates.front();
    scripted_creates.pop_front();
    return p;
  }
  using K = CreatePlan::Kind;
  CreatePlan p;
  double x = std::uniform_real_distribution<double>(0, 1)(rng_);
  const std::pair<double, K> table[] = {
      {faults_.create_lost, K::lost_after_store},
      {faults_.create_malformed, K::malformed_after_store},
      {faults_.create_not_sent, K::not_sent},
      {faults_.create_rejected, K::rejected},
      {faults_.create_early_413, K::early_413},
      {faults_.create_unauthorized, K::unauthorized},
      {faults_.create_throttled, K::throttled},
      {faults_.create_server_error, K::server_error},
  };
  p.kind = K::ok;
  for (const auto& [share, kind] : table) {
    if (x < share) {
      p.kind = kind;
      break;
    }
    x -= share;
  }
  p.store_after = Millis(std::uniform_int_distribution<int>(10, 2'000)(rng_));
  if (chance(faults_.create_slow))
    // Within the documented window: api.timeout + api.reconcile_after - the list's lag.
    p.store_after = Millis(std::uniform_int_distribution<int>(5'000, 70'000)(rng_));
  p.answer_after = p.store_after + latency();
  if (p.kind == K::throttled)
    p.retry_after = chance(faults_.absurd_retry_after)
                        ? Millis(std::chrono::seconds(4'294'967'295LL))
                        : Millis(std::uniform_int_distribution<int>(1'000, 120'000)(rng_));
  return p;
}

asio::awaitable<ApiResult<RemotePersona>> SimApi::create(const PersonaSpec& spec,
                                                         std::string client_ref) {
  using K = CreatePlan::Kind;
  ++requests_;
  const TimePoint sent = clock_.now();
  CreatePlan plan = draw_create_plan();
  if (plan.kind == K::not_sent) {
    co_await sleep_until(clock_, sent + Millis(3));
    co_return failure<RemotePersona>(Outcome::transient, 0,
                                     "POST /api/personas_v2/: connection refused (request not sent)",
                                     false);
  }
  ++creates_received_;
  const TimePoint arrives = sent + latency();
  const bool stores = plan.kind == K::ok || plan.kind == K::lost_after_store ||
                      plan.kind == K::malformed_after_store;
  std::string created_id;
  if (stores) {
    Remote r;
    r.persona.id = "p-" + std::to_string(order_.size() + 1);
    r.persona.process_status = "pending";
    r.persona.labels = labels_as_sent(spec, client_ref);
    r.persona.has_labels = true;
    r.persona.creator_name = spec.creator_name;
    r.persona.gender = spec.gender;
    r.persona.video_scene = spec.video_scene;
    r.persona.keywords = spec.keywords;
    r.stored_at = arrives + plan.store_after;
    r.persona.created_at = r.stored_at;
    r.final_at = r.stored_at + Millis(std::uniform_int_distribution<std::int64_t>(
                                   86'400'000LL, 5 * 86'400'000LL)(rng_));
    r.never_final = chance(faults_.never_finishes);
    if (chance(faults_.remote_failure)) r.final_status = chance(0.5) ? "failed" : "rejected";
    created_id = r.persona.id;
    order_.push_back(r.persona.id);
    remotes_[r.persona.id] = r;
  }
  const TimePoint answer = arrives + (stores ? std::max(plan.answer_after, plan.store_after)
                                             : Millis(std::uniform_int_distribution<int>(5, 300)(rng_)));
  if (answer - sent > client_timeout_) {
    co_await sleep_until(clock_, sent + client_timeout_);
    co_return failure<RemotePersona>(
        Outcome::transient, 0,
        "POST /api/personas_v2/: timeout after " + std::to_string(client_timeout_.count()) +
            "ms (request sent; outcome unknown)");
  }
  co_await sleep_until(clock_, answer);
  switch (plan.kind) {
    case K::ok: {
      ApiResult<RemotePersona> r;
      r.outcome = Outcome::ok;
      r.http_status = 201;
      r.value = remotes_.at(created_id).persona;
      if (answer_next_create_with_id) {
        r.value.id = *answer_next_create_with_id;
        answer_next_create_with_id.reset();
      }
      co_return r;
    }
    case K::lost_after_store:
      co_return failure<RemotePersona>(Outcome::transient, 502,
                                       "POST /api/personas_v2/: HTTP 502: Bad Gateway (request "
                                       "sent; outcome unknown)");
    case K::malformed_after_store:
      co_return failure<RemotePersona>(Outcome::transient, 201,
                                       "POST /api/personas_v2/: malformed response (request sent; "
                                       "outcome unknown)");
    case K::rejected:
      co_return failure<RemotePersona>(Outcome::permanent, 400,
                                       "POST /api/personas_v2/: HTTP 400: creator_name: Ensure "
                                       "this field has no more than 255 characters.");
    case K::early_413:
      co_return failure<RemotePersona>(Outcome::permanent, 413,
                                       "POST /api/personas_v2/: HTTP 413: file too large");
    case K::unauthorized:
      co_return failure<RemotePersona>(Outcome::unauthorized, 401,
                                       "POST /api/personas_v2/: HTTP 401: Invalid API key");
    case K::throttled:
      co_return failure<RemotePersona>(Outcome::transient, 429,
                                       "POST /api/personas_v2/: HTTP 429: throttled", true,
                                       plan.retry_after);
    case K::server_error:
      co_return failure<RemotePersona>(Outcome::transient, 503,
                                       "POST /api/personas_v2/: HTTP 503: maintenance");
    case K::not_sent:
      break;
  }
  co_return failure<RemotePersona>(Outcome::transient, 0, "unreachable");
}

ApiResult<RemotePersona> SimApi::view(const Remote& r, TimePoint now) const {
  ApiResult<RemotePersona> out;
  out.outcome = Outcome::ok;
  out.http_status = 200;
  out.value = r.persona;
  if (!r.never_final && now >= r.final_at) {
    out.value.process_status = r.final_status;
    out.value.is_active = r.final_status == "done";
    if (r.final_status != "done") out.value.failed_reason = "consent video does not match";
    return out;
  }
  const auto span = (r.final_at - r.stored_at) / std::size(kStages);
  auto stage = span.count() > 0 ? static_cast<std::size_t>((now - r.stored_at) / span) : 0;
  out.value.process_status = std::string(kStages[std::min(stage, std::size(kStages) - 1)]);
  return out;
}

asio::awaitable<ApiResult<RemotePersona>> SimApi::get(std::string id) {
  ++requests_;
  const TimePoint sent = clock_.now();
  const std::string target = "GET /api/personas/" + id + "/";
  if (chance(faults_.get_fails)) {
    int which = std::uniform_int_distribution<int>(0, 2)(rng_);
    if (which == 0) {
      co_await sleep_until(clock_, sent + client_timeout_);
      co_return failure<RemotePersona>(Outcome::transient, 0, target + ": timeout");
    }
    co_await sleep_until(clock_, sent + latency());
    if (which == 1)
      co_return failure<RemotePersona>(Outcome::transient, 503, target + ": HTTP 503");
    co_return failure<RemotePersona>(
        Outcome::transient, 429, target + ": HTTP 429", true,
        chance(faults_.absurd_retry_after) ? Millis(std::chrono::seconds(4'294'967'295LL))
                                           : Millis(30'000));
  }
  co_await sleep_until(clock_, sent + latency());
  const TimePoint now = clock_.now();
  auto it = remotes_.find(id);
  if (it == remotes_.end() || now < it->second.stored_at || hidden.count(id))
    co_return failure<RemotePersona>(Outcome::permanent, 404, target + ": HTTP 404: Not found.");
  co_return view(it->second, now);
}

asio::awaitable<ApiResult<ListPage>> SimApi::list_page(std::string target) {
  ++requests_;
  const TimePoint sent = clock_.now();
  co_await sleep_until(clock_, sent + latency());
  const std::string what = "GET /api/personas_v2/" + target;
  ++page_requests[target];
  if (auto it = fail_page_once.find(target); it != fail_page_once.end()) {
    fail_page_once.erase(it);
    co_return failure<ListPage>(Outcome::transient, 502, what + ": HTTP 502");
  }
  if (faults_.list_broken)
    co_return failure<ListPage>(Outcome::permanent, 404, what + ": HTTP 404: Not found.");
  if (chance(faults_.list_page_fails)) {
    if (chance(0.5)) co_return failure<ListPage>(Outcome::transient, 502, what + ": HTTP 502");
    co_return failure<ListPage>(
        Outcome::transient, 429, what + ": HTTP 429", true,
        chance(faults_.absurd_retry_after) ? Millis(std::chrono::seconds(4'294'967'295LL))
                                           : Millis(5'000));
  }
  const TimePoint now = clock_.now();
  // Newest first, as listed at this moment.
  std::vector<const Remote*> visible;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    const Remote& r = remotes_.at(*it);
    if (now >= r.stored_at + faults_.list_lag) visible.push_back(&r);
  }
  std::size_t page = target.empty() ? 0 : std::stoul(target.substr(target.find('=') + 1));
  ApiResult<ListPage> out;
  out.outcome = Outcome::ok;
  out.http_status = 200;
  for (std::size_t i = page * faults_.page_size;
       i < visible.size() && i < (page + 1) * faults_.page_size; ++i) {
    RemotePersona p = view(*visible[i], now).value;
    if (!faults_.list_has_labels) {
      p.labels.clear();
      p.has_labels = false;
    }
    out.value.items.push_back(std::move(p));
  }
  if ((page + 1) * faults_.page_size < visible.size())
    out.value.next = "?page=" + std::to_string(page + 1);
  co_return out;
}

std::vector<std::string> SimApi::with_label(const std::string& label) const {
  std::vector<std::string> ids;
  for (const auto& id : order_) {
    const auto& labels = remotes_.at(id).persona.labels;
    if (std::find(labels.begin(), labels.end(), label) != labels.end()) ids.push_back(id);
  }
  return ids;
}

}  // namespace personad::simulation
