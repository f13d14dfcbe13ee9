// creatify-sim's HTTP server: C++20 coroutines on a single-threaded io_context, one coroutine
// per connection (keep-alive, explicit limits), fault injection around the API handler.
#include "sim_server.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <deque>
#include <ostream>

#include "admin_api.hpp"
#include "fault_plan.hpp"
#include "persona_book.hpp"
#include "sim_api.hpp"
#include "webhook_client.hpp"

namespace creatify_sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// The longest single timer wait; a later webhook is simply re-armed when this one fires.
constexpr auto kMaxTimerWait = std::chrono::hours(24);
// Webhook deliveries in flight at once; more wait in a queue (a burst of thousands of final
// transitions under a high --time-scale must not exhaust file descriptors).
constexpr std::size_t kMaxWebhookSenders = 32;

// What a session does with one request.
struct Reply {
  Response response;
  bool reset = false;                  // close abruptly instead of answering
  std::chrono::milliseconds delay{0};  // wait this long before answering (or resetting)
  std::string fault;                   // for the verbose log
  // A slow create: the request is handled (the persona stored) only after this wait, then
  // answered; `decision` holds the faults still to apply after handling.
  std::chrono::milliseconds store_delay{0};
  FaultDecision decision;
};

// Absurd Retry-After values a server may send: the largest 32-bit number of seconds and a date
// at the end of year 9999. Used alternately.
constexpr std::string_view kAbsurdRetryAfterSeconds = "4294967295";
constexpr std::string_view kAbsurdRetryAfterDate = "Fri, 31 Dec 9999 23:59:59 GMT";

void add_fault(Reply& reply, std::string_view name) {
  if (!reply.fault.empty()) reply.fault += ',';
  reply.fault += name;
}

// Gateways and Django answer 5xx with HTML, not JSON: clients must cope with that too.
Response server_error(const Request& req, unsigned status) {
  Response res{static_cast<http::status>(status), req.version()};
  res.set(http::field::server, "creatify-sim");
  res.set(http::field::content_type, "text/html");
  res.keep_alive(req.keep_alive());
  res.body() = "<html><body><h1>" + std::to_string(status) + " " +
               std::string(http::obsolete_reason(res.result())) + "</h1></body></html>\n";
  res.prepare_payload();
  return res;
}

Response throttled(const Request& req, unsigned retry_after_s) {
  Response res = detail_response(req, http::status::too_many_requests,
                                 "Request was throttled. Expected available in " +
                                     std::to_string(retry_after_s) + " seconds.");
  res.set(http::field::retry_after, std::to_string(retry_after_s));
  return res;
}

Response throttled_absurdly(const Request& req, std::string_view retry_after) {
  Response res = detail_response(req, http::status::too_many_requests, "Request was throttled.");
  res.set(http::field::retry_after, retry_after);
  return res;
}

// True for a multipart create that announces a body over `limit` bytes.
bool upload_too_large(const http::request_parser<http::string_body>& parser,
                      std::uint64_t limit) {
  if (limit == 0) return false;
  const auto& req = parser.get();
  if (route_kind(req.method(), req.target()) != RouteKind::create) return false;
  const std::string_view type = req[http::field::content_type];
  if (type.size() < 19 || !beast::iequals(type.substr(0, 19), "multipart/form-data")) return false;
  const auto length = parser.content_length();
  return length && *length > limit;
}

// Keeps a prefix of the JSON body: the status and headers stay valid, the document does not.
void truncate_body(Response& res, double fraction) {
  std::string& body = res.body();
  const auto keep = static_cast<std::size_t>(static_cast<double>(body.size()) * fraction);
  body.resize(std::clamp<std::size_t>(keep, 1, body.size() > 1 ? body.size() - 1 : 1));
  res.prepare_payload();
}

// Answers for a request that could not be read; nullopt when the peer just went away.
std::optional<Response> read_error_response(const beast::error_code& ec) {
  http::status status = http::status::bad_request;
  std::string_view detail;
  if (ec == http::error::body_limit) {
    status = http::status::payload_too_large;
    detail = "Request body too large.";
  } else if (ec == http::error::header_limit) {
    status = http::status::request_header_fields_too_large;
    detail = "Request headers too large.";
  } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
             ec != http::error::end_of_stream && ec != http::error::partial_message) {
    status = http::status::bad_request;
    detail = "Malformed HTTP request.";
  } else {
    return std::nullopt;
  }
  Request dummy;
  dummy.keep_alive(false);
  Response res = detail_response(dummy, status, detail);
  res.keep_alive(false);
  return res;
}

// An RST rather than a FIN: the client sees "connection reset by peer".
void abort_connection(beast::tcp_stream& stream) {
  beast::error_code ignored;
  stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
  stream.socket().close(ignored);
}

}  // namespace

struct SimServer::Impl {
  Impl(asio::io_context& ioc, Clock& clock, SimConfig cfg)
      : ioc(ioc),
        clock(clock),
        config(std::move(cfg)),
        book(clock, with_seed(config.book, config.seed)),
        // A different stream from the book's, so enabling faults never changes outcomes.
        faults(config.faults, config.seed ^ 0x9e3779b97f4a7c15ULL),
        api(book, config.api),
        admin(book, clock, faults, stats, config.seed),
        acceptor(ioc),
        webhook_timer(ioc),
        // Its own stream: dropping callbacks changes no outcome and no fault.
        webhook_rng(config.seed ^ 0x2545f4914f6cdd1dULL) {}

  static BookSettings with_seed(BookSettings s, std::uint64_t seed) {
    s.seed = seed;
    return s;
  }

  asio::io_context& ioc;
  Clock& clock;
  SimConfig config;
  PersonaBook book;
  FaultPlan faults;
  SimStats stats;
  SimApi api;
  AdminApi admin;
  tcp::acceptor acceptor;
  asio::steady_timer webhook_timer;
  std::optional<SimTime> armed_webhook;
  std::deque<WebhookCall> webhook_queue;
  std::size_t webhook_senders = 0;
  std::mt19937_64 webhook_rng;
  std::uint64_t absurd_retry_afters = 0;  // alternates seconds and date
  bool stopping = false;

  beast::error_code listen();
  void spawn(asio::awaitable<void> task, std::string_view what);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(tcp::socket socket);
  asio::awaitable<bool> serve_one(beast::tcp_stream& stream, beast::flat_buffer& buffer);
  asio::awaitable<void> reject_upload(beast::tcp_stream& stream, const Request& head);
  asio::awaitable<void> webhook_loop();
  void queue_webhooks(std::vector<WebhookCall> calls);
  asio::awaitable<void> webhook_sender();
  Reply dispatch(const Request& req);
  Reply api_reply(const Request& req);
  void handle_api(const Request& req, Reply& reply);
  void rearm_webhooks_if_changed();
  void count(RouteKind kind);
  void log_request(const Request& req, const Reply& reply) const;
};

beast::error_code SimServer::Impl::listen() {
  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = asio::ip::make_address(config.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, config.port);
  } else {
    tcp::resolver resolver(ioc);
    const auto results = resolver.resolve(config.host, std::to_string(config.port), ec);
    if (ec) return ec;
    endpoint = results.begin()->endpoint();
  }
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  const auto bound = acceptor.local_endpoint();
  const std::string host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                                   : bound.address().to_string();
  api.settings().fallback_host = host + ":" + std::to_string(bound.port());
  return {};
}

void SimServer::Impl::spawn(asio::awaitable<void> task, std::string_view what) {
  // Exceptions end the one coroutine that raised them, never the loop.
  asio::co_spawn(ioc, std::move(task), [log = config.log, what](std::exception_ptr e) {
    if (!e || !log) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      *log << what << ": " << ex.what() << std::endl;
    } catch (...) {
      *log << what << ": unknown exception" << std::endl;
    }
  });
}

asio::awaitable<void> SimServer::Impl::accept_loop() {
  while (!stopping) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (stopping || ec == asio::error::operation_aborted) co_return;
    if (ec) {  // e.g. out of file descriptors: back off instead of spinning
      asio::steady_timer pause(ioc, std::chrono::milliseconds(50));
      co_await pause.async_wait(kTuple);
      continue;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    spawn(session(std::move(socket)), "session");
  }
}

asio::awaitable<void> SimServer::Impl::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  while (co_await serve_one(stream, buffer)) {
  }
  if (stream.socket().is_open()) {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }
}

// Reads one request and answers it; false when the connection is done.
asio::awaitable<bool> SimServer::Impl::serve_one(beast::tcp_stream& stream,
                                                 beast::flat_buffer& buffer) {
  http::request_parser<http::string_body> parser;
  parser.body_limit(config.limits.body_limit);
  parser.header_limit(static_cast<std::uint32_t>(config.limits.header_limit));

  stream.expires_after(config.limits.header_timeout);
  auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kTuple);
  if (!ec && upload_too_large(parser, config.limits.upload_limit)) {
    // Like a gateway's body size limit: answered from the headers, before 100-continue,
    // authentication or any fault; the body is never read.
    co_await reject_upload(stream, parser.get());
    co_return false;
  }
  if (!ec && beast::iequals(parser.get()[http::field::expect], "100-continue")) {
    // curl and others wait for this before sending a large upload.
    http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
    std::tie(ec, n) = co_await http::async_write(stream, go_on, kTuple);
  }
  if (!ec) {
    stream.expires_after(config.limits.body_timeout);
    std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, kTuple);
  }
  if (ec) {
    if (auto res = read_error_response(ec)) {
      if (config.log)
        *config.log << (parser.is_header_done() ? parser.get().method_string() : "-") << ' '
                    << (parser.is_header_done() ? parser.get().target() : "-") << ' '
                    << res->result_int() << std::endl;
      stream.expires_after(config.limits.write_timeout);
      co_await http::async_write(stream, *res, kTuple);
    }
    co_return false;
  }

  const Request req = parser.release();
  Reply reply = dispatch(req);
  if (reply.store_delay.count() > 0) {
    // A slow create: stored only after the wait, whether or not the client is still there
    // (a client that timed out has closed; the write below then fails).
    stream.expires_never();
    ++stats.slow_creates_pending;
    asio::steady_timer wait(ioc, reply.store_delay);
    co_await wait.async_wait(kTuple);
    --stats.slow_creates_pending;
    handle_api(req, reply);
    rearm_webhooks_if_changed();
  }
  log_request(req, reply);
  if (reply.delay.count() > 0) {
    stream.expires_never();
    asio::steady_timer wait(ioc, reply.delay);
    co_await wait.async_wait(kTuple);
  }
  if (reply.reset) {
    abort_connection(stream);
    co_return false;
  }
  stream.expires_after(config.limits.write_timeout);
  const auto [write_ec, written] = co_await http::async_write(stream, reply.response, kTuple);
  co_return !write_ec && reply.response.keep_alive();
}

asio::awaitable<void> SimServer::Impl::reject_upload(beast::tcp_stream& stream,
                                                     const Request& head) {
  count(RouteKind::create);
  ++stats.faults.upload_too_large;
  Response res = detail_response(head, http::status::payload_too_large, "file too large");
  res.keep_alive(false);
  if (config.log)
    *config.log << head.method_string() << ' ' << head.target() << " 413 fault=upload_too_large"
                << std::endl;
  stream.expires_after(config.limits.write_timeout);
  auto [ec, n] = co_await http::async_write(stream, res, kTuple);
  // A lingering close: closing at once with unread upload data in the receive buffer would
  // send an RST that can destroy the answer before the client reads it. Shut the write side
  // (the client sees the end of the answer), read and drop a little of the upload, close.
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  if (!ec) {
    stream.expires_after(config.limits.linger_time);
    std::vector<char> sink(64 * 1024);
    std::size_t drained = 0;
    while (drained < config.limits.linger_bytes) {
      std::tie(ec, n) = co_await stream.async_read_some(asio::buffer(sink), kTuple);
      if (ec) break;
      drained += n;
    }
  }
  stream.socket().close(ignored);
}

void SimServer::Impl::rearm_webhooks_if_changed() {
  if (book.next_webhook_due() != armed_webhook) webhook_timer.cancel();
}

Reply SimServer::Impl::dispatch(const Request& req) {
  if (std::string_view(req.target()).starts_with(kAdminPrefix)) {
    Reply reply;
    reply.response = admin.handle(req);
    // Admin calls can add, pin, clear or time-skip personas: recompute the webhook timer.
    webhook_timer.cancel();
    return reply;
  }
  Reply reply = api_reply(req);
  rearm_webhooks_if_changed();
  return reply;
}

void SimServer::Impl::count(RouteKind kind) {
  ++stats.requests;
  switch (kind) {
    case RouteKind::create:
      ++stats.creates;
      break;
    case RouteKind::get:
      ++stats.gets;
      break;
    case RouteKind::list:
      ++stats.lists;
      break;
    case RouteKind::other:
      break;
  }
}

Reply SimServer::Impl::api_reply(const Request& req) {
  const RouteKind kind = route_kind(req.method(), req.target());
  count(kind);
  const FaultTarget target = kind == RouteKind::create ? FaultTarget::create
                             : kind == RouteKind::list ? FaultTarget::list
                                                       : FaultTarget::other;
  const FaultDecision fault = faults.decide(target);
  Reply reply;
  reply.decision = fault;
  if (fault.slow) {
    reply.delay = config.slow_delay;
    ++stats.faults.slow;
    add_fault(reply, "slow");
  }
  if (kind == RouteKind::list && config.list_delay.count() > 0) {
    reply.delay += config.list_delay;  // every list page, failed ones included
    ++stats.faults.list_slow;
    add_fault(reply, "list_slow");
  }
  // Faults that pre-empt handling: the request has no effect.
  switch (fault.preempt) {
    case FaultDecision::Preempt::reset:
      ++stats.faults.reset;
      add_fault(reply, "reset");
      reply.reset = true;
      return reply;
    case FaultDecision::Preempt::server_error:
      ++stats.faults.server_error;
      add_fault(reply, "5xx");
      reply.response = server_error(req, fault.error_status);
      return reply;
    case FaultDecision::Preempt::list_page:
      ++stats.faults.list_page;
      add_fault(reply, "list_page");
      reply.response = server_error(req, fault.error_status);
      return reply;
    case FaultDecision::Preempt::rate_limited:
      ++stats.faults.rate_limited;
      add_fault(reply, "429");
      if (fault.retry_after_absurd) {
        ++stats.faults.retry_after_absurd;
        add_fault(reply, "retry_after_absurd");
        reply.response =
            throttled_absurdly(req, absurd_retry_afters++ % 2 == 0 ? kAbsurdRetryAfterSeconds
                                                                   : kAbsurdRetryAfterDate);
      } else {
        reply.response = throttled(req, config.retry_after_s);
      }
      return reply;
    case FaultDecision::Preempt::none:
      break;
  }
  if (fault.slow_create && config.slow_create_delay.count() > 0) {
    ++stats.faults.slow_create;
    add_fault(reply, "slow_create");
    reply.store_delay = config.slow_create_delay;  // serve_one waits, then calls handle_api
    return reply;
  }
  handle_api(req, reply);
  return reply;
}

// Handles a request that no fault pre-empted, then applies the faults that come after
// handling: the effect happened, the client cannot tell.
void SimServer::Impl::handle_api(const Request& req, Reply& reply) {
  const FaultDecision& fault = reply.decision;
  reply.response = api.handle(req);
  const bool success = reply.response.result_int() / 100 == 2;
  if (fault.lost_create != FaultDecision::LostCreate::none && success) {
    ++stats.faults.lost_create;
    if (fault.lost_create == FaultDecision::LostCreate::reset) {
      add_fault(reply, "lost_create:reset");
      reply.reset = true;
    } else {
      add_fault(reply, "lost_create:500");
      reply.response = server_error(req, 500);
    }
  } else if (fault.malformed && success) {
    ++stats.faults.malformed;
    add_fault(reply, "malformed");
    truncate_body(reply.response, fault.truncate_at);
  }
}

void SimServer::Impl::log_request(const Request& req, const Reply& reply) const {
  if (!config.log) return;
  std::ostream& out = *config.log;
  out << req.method_string() << ' ' << req.target() << ' ';
  if (reply.reset)
    out << "reset";
  else
    out << reply.response.result_int();
  if (!reply.fault.empty()) out << " fault=" << reply.fault;
  out << '\n' << std::flush;
}

asio::awaitable<void> SimServer::Impl::webhook_loop() {
  while (!stopping) {
    armed_webhook = book.next_webhook_due();
    if (armed_webhook) {
      const SimDuration ahead = std::max(*armed_webhook - clock.now(), SimDuration::zero());
      webhook_timer.expires_after(std::min<RealDuration>(clock.real_delay(ahead), kMaxTimerWait));
    } else {
      webhook_timer.expires_after(kMaxTimerWait);
    }
    co_await webhook_timer.async_wait(kTuple);  // cancelled whenever the schedule changes
    if (stopping) co_return;
    queue_webhooks(book.take_due_webhooks());
  }
}

void SimServer::Impl::queue_webhooks(std::vector<WebhookCall> calls) {
  for (WebhookCall& call : calls) {
    if (config.webhook_drop > 0 &&
        std::uniform_real_distribution<double>(0.0, 1.0)(webhook_rng) < config.webhook_drop) {
      ++stats.webhooks_dropped;
      if (config.log) *config.log << "webhook: dropped (--webhook-drop) " << call.url << std::endl;
      continue;
    }
    ++stats.webhooks_queued;
    webhook_queue.push_back(std::move(call));
  }
  while (webhook_senders < kMaxWebhookSenders && webhook_senders < webhook_queue.size()) {
    ++webhook_senders;
    spawn(webhook_sender(), "webhook");
  }
}

// Delivers queued webhooks one after another until the queue is empty.
asio::awaitable<void> SimServer::Impl::webhook_sender() {
  while (!stopping && !webhook_queue.empty()) {
    WebhookCall call = std::move(webhook_queue.front());
    webhook_queue.pop_front();
    try {
      co_await deliver_webhook(std::move(call), config.limits.webhook_timeout, config.log);
    } catch (const std::exception& e) {  // keep the sender count right whatever happens
      if (config.log) *config.log << "webhook: " << e.what() << std::endl;
    }
  }
  --webhook_senders;
}

SimServer::SimServer(asio::io_context& ioc, Clock& clock, SimConfig config)
    : impl_(std::make_unique<Impl>(ioc, clock, std::move(config))) {}

SimServer::~SimServer() = default;

boost::system::error_code SimServer::listen() { return impl_->listen(); }

std::uint16_t SimServer::port() const {
  beast::error_code ec;
  const auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void SimServer::start() {
  impl_->spawn(impl_->accept_loop(), "accept");
  impl_->spawn(impl_->webhook_loop(), "webhooks");
}

void SimServer::stop() {
  impl_->stopping = true;
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->webhook_timer.cancel();
}

PersonaBook& SimServer::book() { return impl_->book; }

}  // namespace creatify_sim
