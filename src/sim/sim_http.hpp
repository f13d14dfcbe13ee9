// HTTP message types and response helpers shared by the simulator's API and admin handlers,
// which turn a complete request into a complete response without touching sockets.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>
#include <cstdint>
#include <string_view>

namespace creatify_sim {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// A JSON response mirroring the request's HTTP version and keep-alive wish.
Response json_response(const Request& req, http::status status, const boost::json::value& body);
// DRF's error shape: {"detail": "..."}.
Response detail_response(const Request& req, http::status status, std::string_view detail);
// 405 with DRF's message and an Allow header.
Response method_not_allowed(const Request& req, std::string_view allow);

// Request counters for /_sim/stats; faults count only those actually injected.
struct SimStats {
  std::uint64_t requests = 0;  // every API request (not /_sim), faulted ones included
  std::uint64_t creates = 0;
  std::uint64_t gets = 0;
  std::uint64_t lists = 0;
  struct {
    std::uint64_t server_error = 0, rate_limited = 0, reset = 0, slow = 0, malformed = 0,
                  lost_create = 0;
    std::uint64_t slow_create = 0;         // creates stored late (--slow-create)
    std::uint64_t list_page = 0;           // list pages answered 502 (--fault-list-page)
    std::uint64_t list_slow = 0;           // list pages answered late (--list-slow-ms)
    std::uint64_t retry_after_absurd = 0;  // 429s with an absurd Retry-After
    std::uint64_t upload_too_large = 0;    // early 413s (--upload-limit-bytes)
  } faults;
  // Slow creates received and not stored yet: a duplicate may still appear while this is not
  // zero. Kept across POST /_sim/reset (those creates are still in the server's hands).
  std::uint64_t slow_creates_pending = 0;
  std::uint64_t webhooks_queued = 0;   // callbacks due and sent (or being sent)
  std::uint64_t webhooks_dropped = 0;  // callbacks due and never sent (--webhook-drop)
};

}  // namespace creatify_sim
