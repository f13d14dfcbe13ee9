// [webhook] listen: the HTTP listener for the API's callbacks. POST {prefix}/hooks/<client_ref>/
// <token> with a valid token for a known job is answered 204 at once and handed to `on_hook`
// (which polls the job, debounced: webhook_debounce.hpp); anything else is 404 (or 405/413/431).
// The body is read and dropped: only the poll decides a job's state.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/listen_address.hpp"
#include "personad/result.hpp"

namespace spdlog { class logger; }

namespace personad {

// How one request ended: the `result` label of personad_webhook_requests_total.
enum class HookResult {
  accepted,     // 204: valid token, known job
  bad_token,    // 404: a hook route whose token is wrong
  unknown_job,  // 404: a valid token, but no job holds that client_ref
  bad_path,     // 404: not a hook route
  bad_method,   // 405: not POST
  too_large,    // 413/431: body or header over its limit
  unavailable,  // 503: the job could not be looked up (store error); the sender may retry
};
inline constexpr std::size_t kHookResults = 7;
const char* to_string(HookResult r);

// A job a callback names.
struct HookJob {
  std::int64_t id = 0;
  std::string key;
  State state = State::queued;
};

struct WebhookListenerLimits {
  // Connections open at once. At the cap, a new connection evicts the oldest one still waiting
  // for (the rest of) a request header; when none is, the new one is answered 503 and closed.
  // So idle or slow clients can never lock out a real callback, nor hold more descriptors.
  std::size_t max_connections = 128;
  std::size_t max_header_bytes = 8 * 1024;  // 431 beyond
  std::size_t max_body_bytes = 64 * 1024;   // 413 beyond
  Millis header_timeout{10'000};  // to send a whole header (after connect or the last answer)
  Millis body_timeout{10'000};    // to send the body; and to take the answer
  Millis accept_backoff_initial{100};
  Millis accept_backoff_max{1'000};
};

struct WebhookListenerStats {
  std::size_t open = 0;
  std::uint64_t accepted = 0;       // connections taken
  std::uint64_t evicted = 0;        // closed to make room (were waiting for a header)
  std::uint64_t refused_busy = 0;   // answered 503 at accept: every open one was mid-request
  std::uint64_t accept_errors = 0;
  std::uint64_t timed_out = 0;
  std::array<std::uint64_t, kHookResults> results{};  // by HookResult
};

struct WebhookListenerOptions {
  std::string secret;       // the HMAC key of the tokens (webhook_token.hpp)
  std::string path_prefix;  // webhook_path_prefix(public_url)
  WebhookListenerLimits limits;
};

class WebhookListener {
 public:
  // The job holding a client_ref, from the store (nullopt: none).
  using FindJob =
      std::function<boost::asio::awaitable<Result<std::optional<HookJob>>>(std::string client_ref)>;
  // A valid callback of a known job (after its 204 is on its way).
  using OnHook = std::function<void(const HookJob&)>;

  static Result<std::unique_ptr<WebhookListener>> listen(boost::asio::any_io_executor ex,
                                                         const ListenAddress& address,
                                                         WebhookListenerOptions options,
                                                         FindJob find, OnHook on_hook,
                                                         std::shared_ptr<spdlog::logger> log);
  ~WebhookListener();
  std::uint16_t port() const;
  // Counters for the metrics page (metrics.hpp renders them: personad_webhook_*).
  const WebhookListenerStats& stats() const;
  void stop();  // closes the listener and the connections waiting for a request
  struct Impl;

 private:
  explicit WebhookListener(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace personad
