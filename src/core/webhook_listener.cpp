// The webhook listener (see webhook_listener.hpp): Beast HTTP over TCP, one coroutine per
// connection, limits on header and body size and time, a connection cap that evicts the
// oldest connection still waiting for a header, accept errors backed off.
#include "personad/webhook_listener.hpp"


#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <map>
#include <sstream>
#include <spdlog/logger.h>

#include "personad/accept_pacer.hpp"
#include "personad/http_answer.hpp"
#include "personad/logging.hpp"
#include "personad/webhook_token.hpp"

namespace personad {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

const char* to_string(HookResult r) {
  switch (r) {
    case HookResult::accepted: return "accepted";
    case HookResult::bad_token: return "bad_token";
    case HookResult::unknown_job: return "unknown_job";
    case HookResult::bad_path: return "bad_path";
    case HookResult::bad_method: return "bad_method";
    case HookResult::too_large: return "too_large";
    case HookResult::unavailable: return "unavailable";
  }
  return "?";
}

namespace {

using Response = http::response<http::string_body>;

Response make_response(http::status status, unsigned version, bool keep_alive,
                       std::string body = {}) {
  Response out{status, version};
  out.set(http::field::server, "personad");
  if (!body.empty()) {
    out.set(http::field::content_type, "text/plain; charset=utf-8");
    out.body() = std::move(body) + "\n";
  }
  out.keep_alive(keep_alive);
  out.prepare_payload();
  return out;
}

}  // namespace

struct WebhookListener::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, WebhookListenerOptions o, FindJob f, OnHook h,
       std::shared_ptr<spdlog::logger> l)
      : acceptor(ex),
        pacer(ex, "webhook listener", l, o.limits.accept_backoff_initial,
              o.limits.accept_backoff_max),
        options(std::move(o)), find(std::move(f)),
        on_hook(std::move(h)), log(std::move(l)) {}

  tcp::acceptor acceptor;
  AcceptPacer pacer;  // after each accept (accept_pacer.hpp)
  WebhookListenerOptions options;
  FindJob find;
  OnHook on_hook;
  std::shared_ptr<spdlog::logger> log;
  WebhookListenerStats stats;
  // Connections waiting for a request header, oldest first: the ones evicted at the cap.
  struct Waiting {
    beast::tcp_stream* stream;
    bool* evicted;
  };
  std::map<std::uint64_t, Waiting> waiting;
  std::size_t closing = 0;  // evicted, their sessions not ended yet
  std::uint64_t next_session = 0;
  LogThrottle busy_log;
  LogThrottle refused_log;
  bool stopped = false;

  const WebhookListenerLimits& limits() const { return options.limits; }

  struct OpenGuard {
    OpenGuard(Impl& i, const bool& e) : impl(i), evicted(e) { ++impl.stats.open; }
    ~OpenGuard() {
      --impl.stats.open;
      if (evicted) --impl.closing;
    }
    OpenGuard(const OpenGuard&) = delete;
    OpenGuard& operator=(const OpenGuard&) = delete;
    Impl& impl;
    const bool& evicted;
  };

  // Registered in `waiting` while the session waits for a header; gone on any exit.
  struct WaitingGuard {
    WaitingGuard(Impl& i, std::uint64_t id, beast::tcp_stream& s, bool& evicted)
        : impl(i), id(id) {
      impl.waiting[id] = Waiting{&s, &evicted};
    }
    ~WaitingGuard() { impl.waiting.erase(id); }
    WaitingGuard(const WaitingGuard&) = delete;
    WaitingGuard& operator=(const WaitingGuard&) = delete;
    Impl& impl;
    std::uint64_t id;
  };

  // Closes the connection that has waited longest for a header; false when none waits.
  bool evict_oldest_waiting() {
    if (waiting.empty()) return false;
    auto it = waiting.begin();
    beast::tcp_stream* stream = it->second.stream;
    *it->second.evicted = true;
    waiting.erase(it);
    ++closing;
    ++stats.evicted;
    boost::system::error_code ignored;
    stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream->socket().close(ignored);
    return true;
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (stopped || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        ++stats.accept_errors;
        // Out of descriptors: an idle connection gives one back.
        co_await pacer.after_error(ec, [this] { evict_oldest_waiting(); });
        continue;
      }
      pacer.after_success();
      if (stats.open - std::min(stats.open, closing) >= limits().max_connections &&
          !evict_oldest_waiting()) {
        refuse_busy(std::move(socket));
        continue;
      }
      ++stats.accepted;
      asio::co_spawn(acceptor.get_executor(), session(beast::tcp_stream(std::move(socket))),
                     asio::detached);
    }
  }

  void refuse_busy(tcp::socket socket) {
    ++stats.refused_busy;
    Response out = make_response(http::status::service_unavailable, 11, false, "busy");
    out.set(http::field::retry_after, "1");
    std::ostringstream text;
    text << out;
    const std::string bytes = text.str();
    [[maybe_unused]] auto sent = ::send(socket.native_handle(), bytes.data(), bytes.size(),
                                        MSG_DONTWAIT | MSG_NOSIGNAL);
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    socket.close(ignored);
    if (log)
      log_throttled(*log, busy_log, spdlog::level::warn,
                    "webhook listener: " + std::to_string(limits().max_connections) +
                        " connections are open, each in the middle of a request; one more was "
                        "answered 503");
  }

  void count(HookResult r) { ++stats.results[static_cast<std::size_t>(r)]; }

  asio::awaitable<void> session(beast::tcp_stream stream) {
    auto self = shared_from_this();
    bool evicted = false;
    OpenGuard open(*this, evicted);
    const std::uint64_t id = next_session++;
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits().max_header_bytes));
      parser.body_limit(limits().max_body_bytes);
      stream.expires_after(limits().header_timeout);
      boost::system::error_code ec;
      {
        WaitingGuard waiting_guard(*this, id, stream, evicted);
        auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser,
                                                         asio::as_tuple(asio::use_awaitable));
        ec = hec;
      }
      if (!ec && !parser.is_done()) {
        stream.expires_after(limits().body_timeout);
        auto [bec, bn] =
            co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
        ec = bec;
      }
      if (stopped) co_return;
      if (ec == http::error::body_limit || ec == http::error::header_limit) {
        count(HookResult::too_large);
        const bool body = ec == http::error::body_limit;
        auto refusal = make_response(
            body ? http::status::payload_too_large
                 : http::status::request_header_fields_too_large,
            11, false,
            body ? "body larger than " + std::to_string(limits().max_body_bytes) + " bytes"
                 : "header larger than " + std::to_string(limits().max_header_bytes) + " bytes");
        co_await write_http_answer(stream, std::move(refusal), limits().body_timeout);
        co_return;
      }
      if (ec == beast::error::timeout) ++stats.timed_out;
      if (ec) co_return;
      auto request = parser.release();
      const bool keep = request.keep_alive();
      Response out = co_await answer(request, keep);
      if (!co_await write_http_answer(stream, std::move(out), limits().body_timeout) || !keep)
        co_return;
    }
  }

  asio::awaitable<Response> answer(const http::request<http::string_body>& request, bool keep) {
    const unsigned version = request.version();
    if (request.method() != http::verb::post) {
      count(HookResult::bad_method);
      auto out = make_response(http::status::method_not_allowed, version, keep, "POST only");
      out.set(http::field::allow, "POST");
      co_return out;
    }
    const auto target = request.target();
    auto route = parse_hook_target(std::string_view(target.data(), target.size()),
                                   options.path_prefix);
    if (!route) {
      count(HookResult::bad_path);
      co_return make_response(http::status::not_found, version, keep, "not found");
    }
    if (!webhook_token_matches(options.secret, route->client_ref, route->token)) {
      count(HookResult::bad_token);
      if (log)
        log_throttled(*log, refused_log, spdlog::level::warn,
                      "webhook_refused client_ref=" + route->client_ref +
                          " reason=\"wrong token (a guess, or a secret changed since the "
                          "create)\"");
      co_return make_response(http::status::not_found, version, keep, "not found");
    }
    auto job = co_await find(route->client_ref);
    if (!job) {
      count(HookResult::unavailable);
      if (log)
        log->error("webhook_error client_ref={} reason=\"cannot look the job up: {}\"",
                   route->client_ref, job.message());
      auto out = make_response(http::status::service_unavailable, version, false, "try again");
      out.set(http::field::retry_after, "5");
      co_return out;
    }
    if (!*job) {
      count(HookResult::unknown_job);
      co_return make_response(http::status::not_found, version, keep, "not found");
    }
    count(HookResult::accepted);
    // The answer goes out first (the handler only asks for a poll: it never waits).
    HookJob known = std::move(**job);
    asio::post(acceptor.get_executor(), [self = shared_from_this(), known] {
      if (!self->stopped && self->on_hook) self->on_hook(known);
    });
    co_return make_response(http::status::no_content, version, keep);
  }
};

WebhookListener::WebhookListener(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebhookListener::~WebhookListener() { stop(); }

Result<std::unique_ptr<WebhookListener>> WebhookListener::listen(
    asio::any_io_executor ex, const ListenAddress& address, WebhookListenerOptions options,
    FindJob find, OnHook on_hook, std::shared_ptr<spdlog::logger> log) {
  auto impl = std::make_shared<Impl>(ex, std::move(options), std::move(find), std::move(on_hook),
                                     std::move(log));
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address.host, ec);
  const std::string where = "webhook.listen " + address.host + ":" + std::to_string(address.port);
  if (ec) return make_error(ErrorKind::invalid, where + ": " + ec.message());
  const tcp::endpoint endpoint(ip, address.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error(ErrorKind::io, where + ": " + ec.message());
  asio::co_spawn(ex, impl->accept_loop(), asio::detached);
  return std::unique_ptr<WebhookListener>(new WebhookListener(impl));
}

std::uint16_t WebhookListener::port() const {
  boost::system::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

const WebhookListenerStats& WebhookListener::stats() const { return impl_->stats; }

void WebhookListener::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  impl_->pacer.cancel();
  while (impl_->evict_oldest_waiting()) {
  }
}

}  // namespace personad
