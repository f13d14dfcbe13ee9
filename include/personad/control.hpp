// The control API behind `personactl`: HTTP+JSON routes over a Unix socket (server and client)
// and the Prometheus /metrics page. Routing is plain code, testable without a socket.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/eta.hpp"
#include "personad/result.hpp"
#include "personad/selection.hpp"

namespace spdlog { class logger; }

namespace personad {

class Tracker;
class EtaModel;
class EventFeed;
class Store;
struct QueryContext;
class StoreRunner;
struct MetricsSnapshot;

// Who is at the other end of a control connection, as the kernel says (SO_PEERCRED at connect
// time; supplementary groups from SO_PEERGROUPS, else /proc/PID/status).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups (may repeat gid)
};

struct ControlRequest {
  std::string method;  // GET, POST
  std::string target;  // origin form: /v1/jobs?state=pending
  std::string body;
  // Set by ControlServer for every request it reads (a connection whose credentials cannot be
  // read is closed unserved); absent only for callers inside the daemon's own process.
  std::optional<PeerCredentials> peer;
};

// The kernel's word on the peer of a connected Unix socket; nullopt if SO_PEERCRED fails.
std::optional<PeerCredentials> read_peer_credentials(int fd);

// Empty when `peer` may read the local file `path` itself: search permission on every directory
// the lookup goes through (symbolic links followed as the kernel follows them, each link's own
// directory included) and read permission on the regular file it ends at, by the mode bits or the
// POSIX ACL. Otherwise why not, naming the path where it stops. uid 0 may read anything. Inside
// a user namespace (systemd's PrivateUsers=) unmapped ids all look like the overflow id, so a
// match on it counts only when the answer would be the same without it. A path that is not
// absolute is left to validate_spec (empty).
std::string peer_read_problem(const PeerCredentials& peer, const std::string& path);

struct ControlResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

// GET /v1/stats' campaign estimate as ControlApi keeps it, shared with its background refresh.
struct KeptCampaignEta {
  std::optional<SelectionEta> eta;
  std::optional<TimePoint> at;  // the clock's time it was worked out for
  bool refreshing = false;  // one refresh at a time
};

// Routes. The query side, answered from the store alone by job_query.hpp (personactl runs the
// same code on the database when the daemon is down):
//   GET  /v1/jobs[?SELECTION]        → [job…]        (filters and paging: selection.hpp)
//   GET  /v1/select[?SELECTION]      → {jobs, next_after, more}: one page
//   GET  /v1/jobs/KEY                → job           (404 unknown key)
//   GET  /v1/jobs/KEY/history        → [transition…] (404)
//   GET  /v1/stats                   → stats
// The action side, through the tracker:
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
//   POST /v1/bulk/cancel[?SELECTION]                 → {results: [{key, result, state, why}]}
//   POST /v1/bulk/retry[?SELECTION] {resubmit: bool}   (result: cancelled|retried|skipped; one
//                     request for the whole selection, one transaction per chunk: Tracker::
//                     act_on_selection; 400 a bad selection)
//   GET  /v1/events?after=SEQ&epoch=E&wait_ms=N&max=N → {epoch, last_seq, gap, events: […]}:
//                     the committed transitions after SEQ, waiting up to N ms (at most 30,000)
//                     for one (event_feed.hpp); 404 without a feed
//   GET  /metrics                    → Prometheus text
//   GET  /v1/health                  → {status, version, pid}
// A submit (and its check) over the socket may name only local video files the requesting user
// could read itself (peer_read_problem): else 400 naming the field and the path, before personad
// opens anything for it. Keys longer than 128 characters are refused with 400.
class ControlApi {
 public:
  // Reads go through `store` (the store's thread in the daemon), actions through the tracker:
  // the event loop never waits on the disk for a request.
  ControlApi(Tracker& tracker, StoreRunner& store, const Clock& clock);
  // A standby host (PostgreSQL store, another host active): no tracker. Reads are answered
  // from the shared store; every action goes to `forward` (set_forward), which carries it to
  // the active host; a submit is first checked here as ever (fields, the requester's access to
  // local files), then forwarded.
  ControlApi(StoreRunner& store, const Clock& clock);
  using Forward = std::function<boost::asio::awaitable<ControlResponse>(ControlRequest)>;
  void set_forward(Forward f) { forward_ = std::move(f); }
  // "active" or "standby": added to GET /v1/stats and /v1/health answers as "role" (a
  // PostgreSQL store; unset: no role field).
  void set_role(std::function<std::string()> f) { role_ = std::move(f); }
  boost::asio::awaitable<ControlResponse> handle(ControlRequest request);
  // What the daemon adds to the metrics snapshot (hooks, API requests, capacity).
  void set_metrics_extras(std::function<void(MetricsSnapshot&)> f) { metrics_extras_ = std::move(f); }
  // The Prometheus text of GET /metrics (metrics.hpp), also served by the TCP listener.
  boost::asio::awaitable<std::string> metrics_text();
  // What `--stuck` means ([alerts] stuck_after; kDefaultStuckAfter until set).
  void set_stuck_after(Millis d) { stuck_after_ = d; }
  // Where the query side's estimates come from (the daemon's model, refreshed now and then);
  // unset or null: learnt from the store for each answer.
  void set_eta_model(std::function<std::shared_ptr<const EtaModel>()> f) { eta_model_ = std::move(f); }
  // The stream behind GET /v1/events (personactl watch and wait).
  void set_event_feed(EventFeed* feed) { feed_ = feed; }
  // Works GET /v1/stats' campaign estimate out ahead of any call (the daemon awaits it once its
  // estimates' model is first learnt, off the loop on the store's reader), so that the first
  // stats call after a start answers from it too. Does nothing without a model or once one is
  // kept or being worked out.
  boost::asio::awaitable<void> warm_stats_eta();

 private:
  boost::asio::awaitable<ControlResponse> submit(std::string body, bool check_only,
                                                 std::optional<PeerCredentials> peer);
  boost::asio::awaitable<ControlResponse> metrics();
  boost::asio::awaitable<ControlResponse> bulk(std::string action, std::string target,
                                               std::string body);
  boost::asio::awaitable<ControlResponse> events(std::string target);
  boost::asio::awaitable<ControlResponse> forward(ControlRequest request);
  ControlResponse with_role(ControlResponse r) const;
  // What a query answer is worked out with: now, `--stuck`'s meaning and the daemon's model.
  QueryContext query_context() const;
  Tracker* tracker_ = nullptr;  // null on a standby host
  StoreRunner& store_;
  Forward forward_;
  std::function<std::string()> role_;
  const Clock& clock_;
  std::function<void(MetricsSnapshot&)> metrics_extras_;
  Millis stuck_after_ = kDefaultStuckAfter;
  std::function<std::shared_ptr<const EtaModel>()> eta_model_;
  EventFeed* feed_ = nullptr;
  // GET /v1/stats' campaign estimate, kept (KeptCampaignEta): it groups every active job (one
  // index scan, Store::active_cohorts: 20-30 ms at 100,000 jobs, 0.2-0.3 s at 1,000,000). The
  // daemon works it out at start (warm_stats_eta); otherwise the first stats call does. A call
  // that finds it older than kStatsEtaMaxAge answers with it and starts one refresh in the
  // background (no timer: an idle daemon does not wake for it).
  static constexpr Millis kStatsEtaMaxAge{60'000};
  std::shared_ptr<KeptCampaignEta> stats_eta_ = std::make_shared<KeptCampaignEta>();
};

// The longest wait GET /v1/events takes (below the client's request timeout).
constexpr Millis kMaxEventWait{30'000};

using ControlHandler = std::function<boost::asio::awaitable<ControlResponse>(ControlRequest)>;

// What one local client may cost the daemon.
struct ControlServerLimits {
  std::size_t max_body_bytes = std::size_t{1} << 20;  // 413 beyond
  std::size_t max_header_bytes = 16 * 1024;            // 431 beyond (a 20,000-character key)
  // Connections served at once; one more is answered 503 {"busy": true} and closed at once.
  // 0: a quarter of RLIMIT_NOFILE's soft limit, between 4 and 64.
  std::size_t max_connections = 0;
  Millis idle_timeout{5'000};      // to send a request's header (after connect, or the last answer)
  Millis request_timeout{30'000};  // to send its body; and for the client to take the answer
  // A failing accept (EMFILE, ENFILE, ENOBUFS, ENOMEM, …) is tried again after this, doubling
  // up to backoff_max, back to the start after an accept that works.
  Millis accept_backoff_initial{100};
  Millis accept_backoff_max{1'000};
};

// Counters since listen (for tests and metrics).
struct ControlServerStats {
  std::size_t open = 0;              // connections being served now
  std::uint64_t accepted = 0;        // connections served
  std::uint64_t refused_busy = 0;    // answered 503 and closed: max_connections were open
  std::uint64_t accept_errors = 0;   // accepts that failed
  std::uint64_t timed_out = 0;       // closed for sending nothing (or too little) in time
  std::uint64_t no_credentials = 0;  // closed unserved: SO_PEERCRED failed
};

// Listens on a Unix socket (mode 0660; a stale socket file is replaced). Requests over
// max_body_bytes are refused with 413 and headers over max_header_bytes with 431; a connection
// that sends nothing closes after idle_timeout; at most max_connections are served at once; a
// failing accept backs off instead of spinning; repeated failures are logged once a minute.
class ControlServer {
 public:
  static Result<std::unique_ptr<ControlServer>> listen(boost::asio::any_io_executor ex,
                                                       const std::string& socket_path,
                                                       ControlHandler handler,
                                                       std::shared_ptr<spdlog::logger> log,
                                                       std::size_t max_body_bytes = 1 << 20);
  static Result<std::unique_ptr<ControlServer>> listen(boost::asio::any_io_executor ex,
                                                       const std::string& socket_path,
                                                       ControlHandler handler,
                                                       std::shared_ptr<spdlog::logger> log,
                                                       ControlServerLimits limits);
  ~ControlServer();
  void stop();  // closes the listener and removes the socket file
  const ControlServerStats& stats() const;
  std::size_t max_connections() const;
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
