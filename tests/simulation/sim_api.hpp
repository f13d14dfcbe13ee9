// The Creatify API as the deterministic simulation sees it: personas stored by the "server" at
// virtual times of its choosing, answers delayed, lost, throttled or refused by a seeded plan.
// Its state is the remote truth and survives the simulated crashes of personad; requests in
// flight simply die with the event loop, as they would with the process.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/creatify_api.hpp"

namespace personad::simulation {

// What the server does with one create request.
struct CreatePlan {
  enum class Kind {
    ok,                  // stored, answered 201
    lost_after_store,    // stored, the answer is lost (reset, 502 from a proxy)
    malformed_after_store,  // stored, the answer is not JSON
    not_sent,            // connection refused: never reached the server
    rejected,            // 400 with field errors: nothing stored
    early_413,           // an upload answered 413 before its body was read: nothing stored
    unauthorized,        // 401: nothing stored
    throttled,           // 429 with Retry-After: nothing stored
    server_error,        // 503 before storing: nothing stored
  };
  Kind kind = Kind::ok;
  Millis store_after{0};   // after the request arrives, the persona is stored (and gettable)
  Millis answer_after{0};  // after the request arrives, the answer (or failure) comes back
  std::optional<Millis> retry_after;
};

struct SimFaults {
  // Creates (per request, in order of the Kind list above, the rest is ok).
  double create_lost = 0.1, create_malformed = 0.02, create_not_sent = 0.05,
         create_rejected = 0.01, create_early_413 = 0.01, create_unauthorized = 0.02,
         create_throttled = 0.05, create_server_error = 0.05;
  double create_slow = 0.1;       // stored 5–90 s late ("slow creates")
  double list_page_fails = 0.1;   // one page answers 502 / 429
  bool list_broken = false;       // every list answers 404 (a wrong list_path)
  bool list_has_labels = true;    // false: reconcile matches by fields and time
  Millis list_lag{0};             // a stored persona is listed this much later (≤ reconcile_after)
  std::size_t page_size = 3;
  double get_fails = 0.1;         // 503 / 429 / timeout
  double absurd_retry_after = 0.2;  // share of 429s with Retry-After 4294967295 s
  double never_finishes = 0.1;    // personas stuck in review (their jobs expire)
  double remote_failure = 0.1;    // personas that end failed/rejected
};

class SimApi final : public CreatifyApi {
 public:
  struct Remote {
    RemotePersona persona;
    TimePoint stored_at{};
    TimePoint final_at{};   // done/failed from then on (unless never_final)
    bool never_final = false;
    std::string final_status = "done";
  };

  SimApi(const Clock& clock, std::uint64_t seed, SimFaults faults, Millis client_timeout);

  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                          std::string client_ref) override;
  boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) override;
  boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string target) override;

  // Scripted plans for the next creates (tests); random ones follow.
  std::deque<CreatePlan> scripted_creates;
  // A buggy API for tests: the next successful create answers with this id instead of its own.
  std::optional<std::string> answer_next_create_with_id;
  // Pages (by target: "" is the first) that answer 502 the next time they are asked for.
  std::multiset<std::string> fail_page_once;
  // How often each page was asked for.
  std::map<std::string, int> page_requests;
  // Personas that answer 404 to a get while listed here (a proxy or a replica that lags).
  std::set<std::string> hidden;

  // The truth, for the checks.
  const std::map<std::string, Remote>& remotes() const { return remotes_; }
  // Remote ids of personas carrying `label`, stored or to be stored.
  std::vector<std::string> with_label(const std::string& label) const;
  std::size_t creates_received() const { return creates_received_; }
  std::size_t requests() const { return requests_; }
  SimFaults& faults() { return faults_; }

 private:
  CreatePlan draw_create_plan();
  ApiResult<RemotePersona> view(const Remote& r, TimePoint now) const;
  bool chance(double p);
  Millis latency();

  const Clock& clock_;
  std::mt19937_64 rng_;
  SimFaults faults_;
  Millis client_timeout_;
  std::map<std::string, Remote> remotes_;  // by id
  std::vector<std::string> order_;         // creation order (the list's order)
  std::size_t creates_received_ = 0;
  std::size_t requests_ = 0;
};

}  // namespace personad::simulation
