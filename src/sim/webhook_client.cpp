// Best-effort webhook delivery for creatify-sim (http:// only; https is skipped and logged).
// Runs as its own coroutine so a slow receiver never holds up the API.
#include "webhook_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <ostream>

#include "persona_json.hpp"

namespace creatify_sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

void report(std::ostream* log, const WebhookCall& call, std::string_view outcome) {
  if (log)
    *log << "webhook " << call.persona_id << " " << call.process_status << " -> " << call.url
         << ": " << outcome << std::endl;
}

}  // namespace

asio::awaitable<void> deliver_webhook(WebhookCall call, std::chrono::seconds timeout,
                                      std::ostream* log) {
  const auto url = boost::urls::parse_uri(call.url);
  if (!url || url->scheme_id() != boost::urls::scheme::http || url->host().empty()) {
    report(log, call, "skipped (only http:// URLs are called)");
    co_return;
  }
  const std::string host = url->host();
  const std::string port = url->has_port() ? std::string(url->port()) : "80";
  std::string target = url->encoded_path().empty() ? "/" : std::string(url->encoded_path());
  if (url->has_query()) target += "?" + std::string(url->encoded_query());

  const auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  const auto [rec, endpoints] = co_await resolver.async_resolve(host, port, kTuple);
  if (rec) co_return report(log, call, rec.message());

  beast::tcp_stream stream(executor);
  stream.expires_after(timeout);  // one deadline for connect, write and read together
  if (const auto [ec, ep] = co_await stream.async_connect(endpoints, kTuple); ec)
    co_return report(log, call, ec.message());

  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, url->encoded_host_and_port());
  req.set(http::field::user_agent, "creatify-sim");
  req.set(http::field::content_type, "application/json");
  req.body() = webhook_payload(call);
  req.prepare_payload();
  if (const auto [ec, n] = co_await http::async_write(stream, req, kTuple); ec)
    co_return report(log, call, ec.message());

  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (const auto [ec, n] = co_await http::async_read(stream, buffer, res, kTuple); ec)
    co_return report(log, call, ec.message());
  report(log, call, std::to_string(res.result_int()));
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace creatify_sim
