// The control API behind `personactl`: HTTP+JSON routes over a Unix socket (server and client)
// and the Prometheus /metrics page. Routing is plain code, testable without a socket.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <string>

#include "personad/clock.hpp"
#include "personad/result.hpp"

namespace spdlog { class logger; }

namespace personad {

class Tracker;
class Store;
class StoreRunner;

struct ControlRequest {
  std::string method;  // GET, POST
  std::string target;  // origin form: /v1/jobs?state=pending
  std::string body;
};

struct ControlResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// Routes:
//   GET  /v1/jobs[?state=S]          → [job…]
//   GET  /v1/jobs/KEY                → job           (404 unknown key)
//   GET  /v1/jobs/KEY/history        → [transition…] (404)
//   GET  /v1/stats                   → stats
//   POST /v1/submit   {source, personas: [spec…]} → {results: [{key, result, state}]}
//                     (400 with {error, errors: [{key, field, message}]}: nothing enqueued;
//                     all of one request in one transaction; personactl sends large files in
//                     several requests of at most 1,000 entries)
//   POST /v1/submit/check  {source, personas: [spec…]} → {valid: N} (400 as above); enqueues
//                     nothing: personactl checks every chunk of a file before sending the first
//   POST /v1/adopt-queued          → {adopted: N}  schedules queued rows written to the database
//                     directly (personactl while the socket was not listening yet)
//   POST /v1/jobs/KEY/cancel                        → {job, message} (404, 409)
//   POST /v1/jobs/KEY/retry   {resubmit: bool}      → {job, message} (404, 409)
//   POST /v1/jobs/KEY/resolve {adopt: ID} | {resubmit: true} → {job, message} (404, 409)
//   GET  /metrics                    → Prometheus text
//   GET  /v1/health                  → {status, version, pid}
class ControlApi {
 public:
  // Reads go through `store` (the store's thread in the daemon), actions through the tracker:
  // the event loop never waits on the disk for a request.
  ControlApi(Tracker& tracker, StoreRunner& store, const Clock& clock);
  boost::asio::awaitable<ControlResponse> handle(ControlRequest request);
  // More Prometheus text appended to /metrics (hooks, …).
  void set_extra_metrics(std::function<std::string()> f) { extra_metrics_ = std::move(f); }

 private:
  boost::asio::awaitable<ControlResponse> submit(std::string body, bool check_only);
  boost::asio::awaitable<ControlResponse> metrics();
  Tracker& tracker_;
  StoreRunner& store_;
  const Clock& clock_;
  std::function<std::string()> extra_metrics_;
};

using ControlHandler = std::function<boost::asio::awaitable<ControlResponse>(ControlRequest)>;

// Listens on a Unix socket (mode 0660; a stale socket file is replaced). Requests over
// max_body_bytes are refused with 413; idle connections close after a timeout.
class ControlServer {
 public:
  static Result<std::unique_ptr<ControlServer>> listen(boost::asio::any_io_executor ex,
                                                       const std::string& socket_path,
                                                       ControlHandler handler,
                                                       std::shared_ptr<spdlog::logger> log,
                                                       std::size_t max_body_bytes = 1 << 20);
  ~ControlServer();
  void stop();  // closes the listener and removes the socket file
  struct Impl;

 private:
  explicit ControlServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

struct ControlReply {
  int status = 0;
  std::string body;
};

// One synchronous request to the daemon's control socket. Fails with ErrorKind::unavailable
// when no daemon listens there (no socket file, connection refused), so the CLI can fall back to
// the database; any other failure is ErrorKind::io. An answer the daemon gives before it has
// read the whole request (413 over its body limit) is returned as the reply, not as the broken
// pipe the rest of the write runs into.
Result<ControlReply> control_call(const std::string& socket_path, const std::string& method,
                                  const std::string& target, const std::string& body,
                                  Millis timeout);

}  // namespace personad
