// The metrics listener over TCP (see metrics_server.hpp): one coroutine per connection; a
// failing accept backs off instead of spinning (accept_backoff.hpp), and says so once a minute.
#include "personad/metrics_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/logger.h>

#include "personad/accept_pacer.hpp"
#include "personad/http_answer.hpp"
#include "personad/logging.hpp"

namespace personad {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct MetricsServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, Render r, std::shared_ptr<spdlog::logger> l,
       MetricsServerLimits lim)
      : acceptor(ex),
        pacer(ex, "metrics listener", l, lim.accept_backoff_initial, lim.accept_backoff_max),
        render(std::move(r)), log(std::move(l)), limits(lim) {}

  tcp::acceptor acceptor;
  AcceptPacer pacer;  // after each accept (accept_pacer.hpp)
  Render render;
  std::shared_ptr<spdlog::logger> log;
  MetricsServerLimits limits;
  std::size_t open = 0;
  std::uint64_t refused = 0;
  std::uint64_t accept_errors = 0;
  bool stopped = false;

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (stopped || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of descriptors or memory: wait (accept_backoff.hpp); scrapes that end give
        // descriptors back.
        ++accept_errors;
        co_await pacer.after_error(ec);
        continue;
      }
      pacer.after_success();
      if (open >= limits.max_connections) {
        ++refused;
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      ++open;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::empty_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      parser.body_limit(0);
      stream.expires_after(limits.request_timeout);
      auto [rec, n] = co_await http::async_read(stream, buffer, parser,
                                                asio::as_tuple(asio::use_awaitable));
      if (rec) break;
      const auto& req = parser.get();
      http::response<http::string_body> res;
      res.version(req.version());
      res.keep_alive(req.keep_alive());
      res.set(http::field::server, "personad");
      const std::string_view target(req.target().data(), req.target().size());
      const std::string_view path = target.substr(0, target.find('?'));
      if (path != "/metrics") {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain");
        res.body() = "not found: only GET /metrics is served here\n";
      } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain");
        res.body() = "method not allowed\n";
      } else {
        res.result(http::status::ok);
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        std::string page = co_await render();
        if (req.method() == http::verb::get) res.body() = std::move(page);
      }
      res.prepare_payload();
      const bool keep = res.keep_alive();
      if (!co_await write_http_answer(stream, std::move(res), limits.request_timeout) || !keep ||
          stopped)
        break;
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
    --open;
  }
};

MetricsServer::MetricsServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() { stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::listen(asio::any_io_executor ex,
                                                             const ListenAddress& address,
                                                             Render render,
                                                             std::shared_ptr<spdlog::logger> log,
                                                             MetricsServerLimits limits) {
  auto impl = std::make_shared<Impl>(ex, std::move(render), std::move(log), limits);
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) return make_error(ErrorKind::invalid, "metrics.listen: bad address " + address.host);
  tcp::endpoint ep(ip, address.port);
  const std::string where = (ip.is_v6() ? "[" + address.host + "]" : address.host) + ":" +
                            std::to_string(address.port);
  if (impl->acceptor.open(ep.protocol(), ec); ec)
    return make_error(ErrorKind::io, "metrics.listen " + where + ": " + ec.message());
  impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (impl->acceptor.bind(ep, ec); ec)
    return make_error(ErrorKind::io, "metrics.listen " + where + ": cannot bind: " + ec.message());
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec); ec)
    return make_error(ErrorKind::io, "metrics.listen " + where + ": " + ec.message());
  asio::co_spawn(ex, impl->accept_loop(), asio::detached);
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

std::uint16_t MetricsServer::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

std::uint64_t MetricsServer::refused_busy() const { return impl_->refused; }

std::uint64_t MetricsServer::accept_errors() const { return impl_->accept_errors; }

void MetricsServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->pacer.cancel();
}

}  // namespace personad
