// The control socket server: Beast HTTP over a Unix stream socket, one coroutine per
// connection, explicit limits on header and body size, on idle time and on the number of
// connections; a failing accept backs off instead of spinning, and says so once a minute.
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <spdlog/logger.h>

#include "personad/accept_pacer.hpp"
#include "personad/control.hpp"
#include "personad/http_answer.hpp"
#include "personad/logging.hpp"

namespace personad {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Stream = beast::basic_stream<local>;

namespace {

// A quarter of the descriptors the process may open, so that clients of the control socket
// alone can never take the ones the database, the API connections and hooks need.
std::size_t default_max_connections() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 64;
  return std::clamp<std::size_t>(static_cast<std::size_t>(rl.rlim_cur) / 4, 4, 64);
}

std::string json_error(const std::string& message, bool busy = false) {
  boost::json::object o{{"error", message}};
  if (busy) o["busy"] = true;
  return boost::json::serialize(o);
}

// Supplementary groups from /proc when SO_PEERGROUPS is not there (Linux < 4.13).
std::vector<gid_t> groups_from_proc(pid_t pid, uid_t uid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::vector<gid_t> out;
  bool same_user = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Uid:", 0) == 0) {
      std::istringstream f(line.substr(4));
      uid_t real = 0;
      same_user = static_cast<bool>(f >> real) && real == uid;
    } else if (line.rfind("Groups:", 0) == 0) {
      std::istringstream f(line.substr(7));
      for (gid_t g; f >> g;) out.push_back(g);
    }
  }
  // The pid may have been reused by someone else since the connect: then trust none of it.
  return same_user ? out : std::vector<gid_t>{};
}

}  // namespace

std::optional<PeerCredentials> read_peer_credentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
    return std::nullopt;
  PeerCredentials peer{cred.pid, cred.uid, cred.gid, {}};
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 3; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      peer.groups = std::move(groups);
      return peer;
    }
    if (errno != ERANGE) break;
    groups.resize(glen / sizeof(gid_t) + 16);
  }
  peer.groups = groups_from_proc(cred.pid, cred.uid);
  return peer;
}

struct ControlServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, std::string p, ControlHandler h,
       std::shared_ptr<spdlog::logger> l, ControlServerLimits lim)
      : acceptor(ex),
        pacer(ex, "control socket", l, lim.accept_backoff_initial, lim.accept_backoff_max),
        path(std::move(p)), handler(std::move(h)),
        log(std::move(l)), limits(lim) {
    if (limits.max_connections == 0) limits.max_connections = default_max_connections();
  }

  local::acceptor acceptor;
  AcceptPacer pacer;  // after each accept (accept_pacer.hpp)
  std::string path;
  ControlHandler handler;
  std::shared_ptr<spdlog::logger> log;
  ControlServerLimits limits;
  ControlServerStats stats;
  LogThrottle busy_log;
  bool stopped = false;

  // Counts a connection as open for the life of its session.
  struct OpenGuard {
    explicit OpenGuard(Impl& i) : impl(i) { ++impl.stats.open; }
    ~OpenGuard() { --impl.stats.open; }
    OpenGuard(const OpenGuard&) = delete;
    OpenGuard& operator=(const OpenGuard&) = delete;
    Impl& impl;
  };

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (stopped || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors or memory: wait (accept_backoff.hpp); sessions that end (idle ones
        // time out) give descriptors back.
        ++stats.accept_errors;
        co_await pacer.after_error(ec);
        continue;
      }
      pacer.after_success();
      auto peer = read_peer_credentials(socket.native_handle());
      if (!peer) {
        // Without the peer's identity a submit could not be checked: serve nothing.
        ++stats.no_credentials;
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      if (stats.open >= limits.max_connections) {
        refuse_busy(std::move(socket));
        continue;
      }
      ++stats.accepted;
      asio::co_spawn(acceptor.get_executor(),
                     session(Stream(std::move(socket)), std::move(*peer)), asio::detached);
    }
  }

  // Over the cap: answer at once and close, rather than leave the connection in the backlog. A
  // flood of idle clients then costs one accept and one close each, the backlog keeps moving,
  // and personactl gets a clear "busy" (and tries again) instead of hanging behind the flood.
  void refuse_busy(local::socket socket) {
    ++stats.refused_busy;
    const std::string message = "personad is busy: " + std::to_string(limits.max_connections) +
                                " control connections are open, the most it serves at once; "
                                "try again";
    http::response<http::string_body> out{http::status::service_unavailable, 11};
    out.set(http::field::server, "personad");
    out.set(http::field::content_type, "application/json");
    out.set(http::field::retry_after, "1");
    out.keep_alive(false);
    out.body() = json_error(message, true);
    out.prepare_payload();
    std::ostringstream text;
    text << out;
    const std::string bytes = text.str();
    // A fresh socket's send buffer takes a few hundred bytes at once: never waits.
    [[maybe_unused]] auto sent = ::send(socket.native_handle(), bytes.data(), bytes.size(),
                                        MSG_DONTWAIT | MSG_NOSIGNAL);
    boost::system::error_code ignored;
    socket.shutdown(local::socket::shutdown_send, ignored);
    socket.close(ignored);
    if (log) log_throttled(*log, busy_log, spdlog::level::warn, "control socket: " + message);
  }

  asio::awaitable<void> session(Stream stream, PeerCredentials peer) {
    auto self = shared_from_this();
    OpenGuard guard(*this);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      parser.body_limit(limits.max_body_bytes);
      // A client that connects and sends nothing holds a descriptor: it gets a few seconds.
      stream.expires_after(limits.idle_timeout);
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser,
                                                       asio::as_tuple(asio::use_awaitable));
      if (!hec && !parser.is_done()) {
        stream.expires_after(limits.request_timeout);
        auto [bec, bn] = co_await http::async_read(stream, buffer, parser,
                                                  asio::as_tuple(asio::use_awaitable));
        hec = bec;
      }
      // The refusals are built before the co_await (named locals: see "GCC 12 and coroutines"
      // in docs/design.md).
      if (hec == http::error::body_limit) {
        auto refusal = error_response(
            413, "request body larger than " + std::to_string(limits.max_body_bytes) + " bytes");
        co_await write_http_answer(stream, std::move(refusal), limits.request_timeout);
        co_return;
      }
      if (hec == http::error::header_limit) {
        // A 20,000-character key in the target: say so, instead of a reset connection.
        auto refusal = error_response(
            431, "request header larger than " + std::to_string(limits.max_header_bytes) +
                     " bytes: key too long? (keys are at most 128 characters)");
        co_await write_http_answer(stream, std::move(refusal), limits.request_timeout);
        co_return;
      }
      if (hec == beast::error::timeout) ++stats.timed_out;
      if (hec) co_return;  // closed, timed out or malformed: nothing more to say
      auto request = parser.release();
      ControlRequest req{std::string(request.method_string()), std::string(request.target()),
                         std::move(request.body()), peer};
      ControlResponse res = co_await handler(std::move(req));
      http::response<http::string_body> out{static_cast<http::status>(res.status),
                                            request.version()};
      out.set(http::field::server, "personad");
      out.set(http::field::content_type, res.content_type);
      out.body() = std::move(res.body);
      out.prepare_payload();
      bool keep = request.keep_alive() && !stopped;
      out.keep_alive(keep);
      if (!co_await write_http_answer(stream, std::move(out), limits.request_timeout) || !keep)
        co_return;
    }
  }

  static http::response<http::string_body> error_response(int status, const std::string& msg) {
    http::response<http::string_body> out{static_cast<http::status>(status), 11};
    out.set(http::field::server, "personad");
    out.set(http::field::content_type, "application/json");
    out.body() = json_error(msg);
    out.keep_alive(false);
    out.prepare_payload();
    return out;
  }
};

ControlServer::ControlServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() { stop(); }

Result<std::unique_ptr<ControlServer>> ControlServer::listen(asio::any_io_executor ex,
                                                             const std::string& path,
                                                             ControlHandler handler,
                                                             std::shared_ptr<spdlog::logger> log,
                                                             std::size_t max_body_bytes) {
  ControlServerLimits limits;
  limits.max_body_bytes = max_body_bytes;
  return listen(std::move(ex), path, std::move(handler), std::move(log), limits);
}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(asio::any_io_executor ex,
                                                             const std::string& path,
                                                             ControlHandler handler,
                                                             std::shared_ptr<spdlog::logger> log,
                                                             ControlServerLimits limits) {
  auto impl = std::make_shared<Impl>(ex, path, std::move(handler), std::move(log), limits);
  namespace fs = std::filesystem;
  std::error_code fec;
  auto parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, fec))
    return make_error("control socket " + path + ": directory " + parent.string() +
                      " does not exist");
  // A socket file left by a previous run (we hold the single-instance lock, so no one else
  // serves it). Anything that is not a socket is not ours to delete.
  if (fs::exists(fs::symlink_status(path, fec))) {
    if (!fs::is_socket(fs::symlink_status(path, fec)))
      return make_error("control socket " + path + ": exists and is not a socket");
    fs::remove(path, fec);
  }
  boost::system::error_code ec;
  impl->acceptor.open(local(), ec);
  if (!ec) {
    // Created 0660 from the start, so there is no window in which others may connect.
    mode_t old = ::umask(0117);
    impl->acceptor.bind(local::endpoint(path), ec);
    ::umask(old);
  }
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error("control socket " + path + ": " + ec.message());
  ::chmod(path.c_str(), 0660);
  asio::co_spawn(ex, impl->accept_loop(), asio::detached);
  return std::unique_ptr<ControlServer>(new ControlServer(impl));
}

void ControlServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  impl_->pacer.cancel();
  std::error_code fec;
  std::filesystem::remove(impl_->path, fec);
}

const ControlServerStats& ControlServer::stats() const { return impl_->stats; }

std::size_t ControlServer::max_connections() const { return impl_->limits.max_connections; }

}  // namespace personad
