// The webhook listener over real sockets: 204 and a poll for a valid callback, 404 for bad
// tokens, unknown jobs and other paths, 405/413/431, the metrics, and 1,000 idle connections
// that leave it answering at once.
#include "personad/webhook_listener.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <future>
#include <thread>

#include "personad/metrics.hpp"
#include "personad/webhook_debounce.hpp"
#include "personad/webhook_token.hpp"

namespace personad {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr const char* kSecret = "test-secret-0123456789";
constexpr const char* kRef = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";
constexpr const char* kUnknownRef = "00000000-aaaa-4bbb-8ccc-0123456789ab";

// A listener on its own loop thread; the test talks to it with blocking clients.
class ListenerFixture : public ::testing::Test {
 protected:
  // Reads on the loop's thread (the listener's counters are the loop's).
  template <class F>
  auto on_loop(F f) {
    std::promise<decltype(f())> p;
    asio::post(ioc_, [&] { p.set_value(f()); });
    return p.get_future().get();
  }

  void start(WebhookListenerLimits limits = {}) {
    WebhookListenerOptions options;
    options.secret = kSecret;
    options.path_prefix = "/personad";
    options.limits = limits;
    auto find = [](std::string ref) -> asio::awaitable<Result<std::optional<HookJob>>> {
      if (ref == kRef) co_return std::optional<HookJob>(HookJob{42, "acme-1", State::pending});
      co_return std::optional<HookJob>();
    };
    auto l = WebhookListener::listen(ioc_.get_executor(), {"127.0.0.1", 0}, options, find,
                                     [this](const HookJob& job) { poller_.callback(job.id); },
                                     nullptr);
    ASSERT_TRUE(l) << l.message();
    listener_ = std::move(*l);
    port_ = listener_->port();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    if (!thread_.joinable()) return;
    on_loop([this] {
      listener_->stop();
      poller_.stop();
      return true;
    });
    ioc_.stop();
    thread_.join();
  }

  std::uint64_t result_count(HookResult r) {
    return on_loop([&] { return listener_->stats().results[static_cast<std::size_t>(r)]; });
  }
  std::uint64_t polls() { return on_loop([&] { return poller_.stats().polls; }); }

  tcp::socket connect() {
    tcp::socket s(client_ioc_);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    return s;
  }

  http::response<http::string_body> request(http::verb verb, const std::string& target,
                                             std::string body = "{}") {
    beast::tcp_stream stream(client_ioc_);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "hooks.example.com");
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    return res;
  }

  static std::string hook_target(const std::string& ref, const std::string& token) {
    return "/personad/hooks/" + ref + "/" + token;
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ =
      asio::make_work_guard(ioc_);
  asio::io_context client_ioc_;
  SystemClock clock_;
  HookPoller poller_{ioc_.get_executor(), clock_, kWebhookPollGap, [](std::int64_t) {}};
  std::unique_ptr<WebhookListener> listener_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

TEST_F(ListenerFixture, ValidCallbackIsAnswered204AndPollsTheJob) {
  start();
  auto res = request(http::verb::post, hook_target(kRef, webhook_token(kSecret, kRef)),
                     R"({"id":"x","status":"done"})");
  EXPECT_EQ(res.result_int(), 204);
  EXPECT_TRUE(res.body().empty());
  EXPECT_EQ(result_count(HookResult::accepted), 1u);
  EXPECT_EQ(polls(), 1u);
  // Without the prefix (a proxy stripped it) too; debounced: no second poll within the gap.
  res = request(http::verb::post, "/hooks/" + std::string(kRef) + "/" + webhook_token(kSecret, kRef));
  EXPECT_EQ(res.result_int(), 204);
  EXPECT_EQ(polls(), 1u);
}

TEST_F(ListenerFixture, BadTokensUnknownJobsAndOtherPathsAre404) {
  start();
  std::string wrong = webhook_token(kSecret, kRef);
  wrong[10] = wrong[10] == '0' ? '1' : '0';
  EXPECT_EQ(request(http::verb::post, hook_target(kRef, wrong)).result_int(), 404);
  EXPECT_EQ(request(http::verb::post, hook_target(kRef, webhook_token("other-secret-0123456", kRef)))
                .result_int(),
            404);
  EXPECT_EQ(request(http::verb::post, hook_target(kUnknownRef, webhook_token(kSecret, kUnknownRef)))
                .result_int(),
            404);
  EXPECT_EQ(request(http::verb::post, "/personad/metrics").result_int(), 404);
  EXPECT_EQ(request(http::verb::get, hook_target(kRef, webhook_token(kSecret, kRef))).result_int(),
            405);
  EXPECT_EQ(result_count(HookResult::bad_token), 2u);
  EXPECT_EQ(result_count(HookResult::unknown_job), 1u);
  EXPECT_EQ(result_count(HookResult::bad_path), 1u);
  EXPECT_EQ(result_count(HookResult::bad_method), 1u);
  EXPECT_EQ(result_count(HookResult::accepted), 0u);
  EXPECT_EQ(polls(), 0u);
  // As the metrics page shows them (the daemon fills the snapshot the same way).
  MetricsSnapshot snapshot;
  snapshot.webhook.emplace();
  const auto stats = on_loop([&] { return listener_->stats(); });
  for (std::size_t i = 0; i < kHookResults; ++i)
    snapshot.webhook->requests.emplace_back(to_string(static_cast<HookResult>(i)), stats.results[i]);
  const std::string text = render_metrics(snapshot);
  EXPECT_NE(text.find("personad_webhook_requests_total{result=\"bad_token\"} 2\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("personad_webhook_requests_total{result=\"accepted\"} 0\n"), std::string::npos);
}

TEST_F(ListenerFixture, OversizedHeaderAndBodyAreRefused) {
  WebhookListenerLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_body_bytes = 1024;
  start(limits);
  const std::string target = hook_target(kRef, webhook_token(kSecret, kRef));
  EXPECT_EQ(request(http::verb::post, target + "?pad=" + std::string(4096, 'x')).result_int(), 431);
  EXPECT_EQ(request(http::verb::post, target, std::string(2048, ' ')).result_int(), 413);
  EXPECT_EQ(result_count(HookResult::too_large), 2u);
  EXPECT_EQ(polls(), 0u);
  EXPECT_EQ(request(http::verb::post, target, std::string(1000, ' ')).result_int(), 204);
}

TEST_F(ListenerFixture, ThousandIdleConnectionsLeaveItResponsive) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2'500) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 2'500);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 2'500) GTEST_SKIP() << "needs 2,500 descriptors";
  WebhookListenerLimits limits;
  limits.max_connections = 64;
  start(limits);
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 1000; ++i) {
    idle.push_back(connect());
    if (i % 2) asio::write(idle.back(), asio::buffer(std::string("POST /hooks/")));  // slowloris
  }
  // The server has taken them all (at most 64 held open; the rest evicted as they came).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (on_loop([&] { return listener_->stats().accepted; }) < 1000 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(on_loop([&] { return listener_->stats().accepted; }), 1000u);
  EXPECT_LE(on_loop([&] { return listener_->stats().open; }), 64u);
  const auto t0 = std::chrono::steady_clock::now();
  auto res = request(http::verb::post, hook_target(kRef, webhook_token(kSecret, kRef)));
  EXPECT_EQ(res.result_int(), 204);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  EXPECT_EQ(polls(), 1u);
  EXPECT_GE(on_loop([&] { return listener_->stats().evicted; }), 1000u - 64u);
}

}  // namespace
}  // namespace personad
