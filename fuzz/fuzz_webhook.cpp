// Requests to the webhook listener ([webhook] listen), from anyone on the network: the input is
// written as raw bytes to a real listener on a loopback port, and whatever comes back must be
// one HTTP answer with a status the listener documents (204, 404, 405, 413, 431, 503), or
// nothing (a closed connection); a callback reaches the poller only for a valid token of the one
// known job. The route parser sees the input's first line as a target on its own too: a route it
// accepts has a client_ref of 1-64 of [A-Za-z0-9-] and a token of 64 hex digits.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz_input.hpp"
#include "personad/webhook_listener.hpp"
#include "personad/webhook_token.hpp"

namespace personad::fuzz {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr const char* kSecret = "fuzz-secret-0123456789";
constexpr const char* kRef = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";

struct World {
  World() {
    WebhookListenerOptions options;
    options.secret = kSecret;
    options.path_prefix = "/personad";
    options.limits.header_timeout = Millis{200};
    options.limits.body_timeout = Millis{200};
    auto find = [](std::string ref) -> asio::awaitable<Result<std::optional<HookJob>>> {
      if (ref == kRef) co_return std::optional<HookJob>(HookJob{1, "fuzz-1", State::pending});
      co_return std::optional<HookJob>();
    };
    auto l = WebhookListener::listen(ioc.get_executor(), {"127.0.0.1", 0}, options, find,
                                     [this](const HookJob& job) {
                                       if (job.id != 1) std::abort();
                                       ++hooks;
                                     },
                                     nullptr);
    if (!l) std::abort();
    listener = std::move(*l);
  }

  asio::io_context ioc;
  std::unique_ptr<WebhookListener> listener;
  std::uint64_t hooks = 0;
};

World& world() {
  static World w;
  return w;
}

// Sends `request`, half-closes, reads the answer to EOF (or a deadline).
asio::awaitable<std::string> exchange(std::uint16_t port, std::string request) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket s(ex);
  co_await s.async_connect({asio::ip::make_address("127.0.0.1"), port}, asio::use_awaitable);
  boost::system::error_code ec;
  co_await asio::async_write(s, asio::buffer(request),
                             asio::redirect_error(asio::use_awaitable, ec));
  s.shutdown(tcp::socket::shutdown_send, ec);
  std::string answer;
  asio::steady_timer deadline(ex, std::chrono::seconds(5));
  deadline.async_wait([&](boost::system::error_code e) {
    if (!e) s.close();
  });
  co_await asio::async_read(s, asio::dynamic_buffer(answer),
                            asio::redirect_error(asio::use_awaitable, ec));
  deadline.cancel();
  co_return answer;
}

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_ref_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }

void check_route(std::string_view target) {
  const auto route = parse_hook_target(target, "/personad");
  if (!route) return;
  if (route->client_ref.empty() || route->client_ref.size() > 64) std::abort();
  for (char c : route->client_ref)
    if (!is_ref_char(c)) std::abort();
  if (route->token.size() != 64) std::abort();
  for (char c : route->token)
    if (!is_hex(c)) std::abort();
  (void)webhook_token_matches(kSecret, route->client_ref, route->token);
}

void check_answer(const std::string& answer) {
  if (answer.empty()) return;  // closed without an answer (e.g. a request cut short)
  // The answer's version follows the request's (HTTP/1.0 or 1.1; Beast reads d.d).
  if (answer.size() < 12 || answer.rfind("HTTP/", 0) != 0 || !std::isdigit(answer[5]) ||
      answer[6] != '.' || !std::isdigit(answer[7]) || answer[8] != ' ')
    std::abort();
  const std::string code = answer.substr(9, 3);
  static const char* const kAllowed[] = {"204", "404", "405", "413", "431", "503"};
  for (const char* a : kAllowed)
    if (code == a) return;
  std::abort();
}

}  // namespace
}  // namespace personad::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace personad;
  fuzz::check_route(fuzz::Input(data, size).line());
  std::string request(reinterpret_cast<const char*>(data), size);
  auto& w = fuzz::world();
  std::string answer;
  bool finished = false;
  boost::asio::co_spawn(w.ioc, fuzz::exchange(w.listener->port(), std::move(request)),
                        [&](std::exception_ptr e, std::string a) {
                          if (e) std::abort();
                          answer = std::move(a);
                          finished = true;
                        });
  while (!finished) {
    w.ioc.restart();
    w.ioc.run_one();
  }
  fuzz::check_answer(answer);
  return 0;
}
