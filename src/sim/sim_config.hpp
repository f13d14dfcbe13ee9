// Everything that configures one simulator instance, filled by main.cpp from the command line
// and by tests directly. Defaults match the documented command-line defaults.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "fault_plan.hpp"
#include "persona_book.hpp"
#include "sim_api.hpp"

namespace creatify_sim {

struct ServerLimits {
  std::size_t body_limit = 64 * 1024 * 1024;  // request bodies (uploaded videos)
  std::size_t header_limit = 64 * 1024;
  std::chrono::seconds header_timeout{30};  // also the keep-alive idle timeout
  std::chrono::seconds body_timeout{300};   // a large upload over a slow link
  std::chrono::seconds write_timeout{60};
  std::chrono::seconds webhook_timeout{5};  // whole webhook delivery attempt
  // --upload-limit-bytes: a multipart create whose Content-Length exceeds this is answered 413
  // from its headers alone (0: off). The connection is then closed the way a web server does
  // it: write side shut down, at most linger_bytes / linger_time of the upload drained, close.
  std::uint64_t upload_limit = 0;
  std::size_t linger_bytes = 1024 * 1024;
  std::chrono::milliseconds linger_time{1000};
};

struct SimConfig {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: ephemeral
  std::uint64_t seed = 0;  // outcomes, stage lengths and faults
  BookSettings book;       // book.seed is derived from `seed` by the server
  ApiSettings api;
  FaultRates faults;
  unsigned retry_after_s = 1;  // Retry-After of injected 429s
  std::chrono::milliseconds slow_delay{3000};
  std::chrono::milliseconds slow_create_delay{5000};  // --slow-create-ms: store (and answer) then
  std::chrono::milliseconds list_delay{0};            // --list-slow-ms: every list page
  double webhook_drop = 0;  // --webhook-drop: P(a due callback is never sent), seeded
  ServerLimits limits;
  std::ostream* log = nullptr;  // --verbose: one line per request
};

struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
// "127.0.0.1:8080", "localhost:0", "[::1]:0" → host and port; nullopt when malformed.
std::optional<HostPort> parse_host_port(std::string_view text);

}  // namespace creatify_sim
