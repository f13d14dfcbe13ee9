// [metrics] listen: Prometheus text over TCP (Prometheus cannot scrape a Unix socket). Small on
// purpose: GET /metrics only (404 elsewhere, 405 for other methods), a cap on connections served
// at once, a deadline for each request, no request body. The page comes from the one metrics
// writer (metrics.hpp) through `render`.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "personad/clock.hpp"
#include "personad/listen_address.hpp"
#include "personad/result.hpp"

namespace spdlog { class logger; }

namespace personad {

struct MetricsServerLimits {
  std::size_t max_connections = 16;  // more are closed at once
  Millis request_timeout{10'000};    // to send a request (and to take the answer)
  std::size_t max_header_bytes = 8 * 1024;
  // A failing accept (out of descriptors) waits, doubling from initial to max (accept_backoff.hpp).
  Millis accept_backoff_initial{100};
  Millis accept_backoff_max{1'000};
};

class MetricsServer {
 public:
  using Render = std::function<boost::asio::awaitable<std::string>()>;
  static Result<std::unique_ptr<MetricsServer>> listen(boost::asio::any_io_executor ex,
                                                       const ListenAddress& address, Render render,
                                                       std::shared_ptr<spdlog::logger> log,
                                                       MetricsServerLimits limits = {});
  ~MetricsServer();
  std::uint16_t port() const;  // the bound port (the one asked for, or the kernel's for 0)
  std::uint64_t refused_busy() const;
  std::uint64_t accept_errors() const;  // accepts that failed (out of descriptors, …)
  void stop();
  struct Impl;

 private:
  explicit MetricsServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace personad
