// The control socket server: Beast HTTP over a Unix stream socket, one coroutine per
// connection, explicit limits on header and body size and on idle time.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <spdlog/logger.h>

#include "personad/control.hpp"

namespace personad {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using Stream = beast::basic_stream<local>;

struct ControlServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, std::string p, ControlHandler h,
       std::shared_ptr<spdlog::logger> l, std::size_t max_body)
      : acceptor(ex), path(std::move(p)), handler(std::move(h)), log(std::move(l)),
        max_body_bytes(max_body) {}

  local::acceptor acceptor;
  std::string path;
  ControlHandler handler;
  std::shared_ptr<spdlog::logger> log;
  std::size_t max_body_bytes;
  bool stopped = false;

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (stopped || ec == asio::error::operation_aborted) co_return;
        if (log) log->warn("control socket: accept failed: {}", ec.message());
        continue;
      }
      asio::co_spawn(acceptor.get_executor(), session(Stream(std::move(socket))), asio::detached);
    }
  }

  asio::awaitable<void> session(Stream stream) {
    auto self = shared_from_this();
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(max_body_bytes);
      stream.expires_after(std::chrono::seconds(30));
      auto [ec, n] = co_await http::async_read(stream, buffer, parser,
                                               asio::as_tuple(asio::use_awaitable));
      if (ec == http::error::body_limit) {
        co_await write(stream, error_response(413, "request body larger than " +
                                                       std::to_string(max_body_bytes) + " bytes"),
                       false);
        co_return;
      }
      if (ec) co_return;  // closed, timed out or malformed: nothing more to say
      auto request = parser.release();
      ControlRequest req{std::string(request.method_string()), std::string(request.target()),
                         std::move(request.body())};
      ControlResponse res = co_await handler(std::move(req));
      http::response<http::string_body> out{static_cast<http::status>(res.status),
                                            request.version()};
      out.set(http::field::server, "personad");
      out.set(http::field::content_type, res.content_type);
      out.body() = std::move(res.body);
      out.prepare_payload();
      bool keep = request.keep_alive() && !stopped;
      if (!co_await write(stream, std::move(out), keep) || !keep) co_return;
    }
  }

  static http::response<http::string_body> error_response(int status, const std::string& msg) {
    http::response<http::string_body> out{static_cast<http::status>(status), 11};
    out.set(http::field::content_type, "application/json");
    out.body() = "{\"error\":\"" + msg + "\"}";
    out.prepare_payload();
    return out;
  }

  static asio::awaitable<bool> write(Stream& stream, http::response<http::string_body> out,
                                     bool keep_alive) {
    out.keep_alive(keep_alive);
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await http::async_write(stream, out, asio::as_tuple(asio::use_awaitable));
    if (!keep_alive) {
      beast::error_code ignored;
      stream.socket().shutdown(local::socket::shutdown_send, ignored);
    }
    co_return !ec;
  }
};

ControlServer::ControlServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() { stop(); }

Result<std::unique_ptr<ControlServer>> ControlServer::listen(asio::any_io_executor ex,
                                                             const std::string& path,
                                                             ControlHandler handler,
                                                             std::shared_ptr<spdlog::logger> log,
                                                             std::size_t max_body_bytes) {
  auto impl = std::make_shared<Impl>(ex, path, std::move(handler), std::move(log), max_body_bytes);
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
  std::error_code fec;
  std::filesystem::remove(impl_->path, fec);
}

}  // namespace personad
