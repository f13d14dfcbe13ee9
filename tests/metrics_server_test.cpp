// The metrics listener's accept loop under descriptor exhaustion (its page and its cap are in
// metrics_test.cpp).
#include "personad/metrics_server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <future>
#include <sstream>
#include <thread>

#include "personad/listen_address.hpp"

#include "descriptor_exhaustion.hpp"

namespace personad {
namespace {

namespace asio = boost::asio;
using ::testing::HasSubstr;

// A metrics listener on its own loop thread.
class MetricsThread {
 public:
  MetricsThread(std::shared_ptr<spdlog::logger> log, MetricsServerLimits limits)
      : work_(asio::make_work_guard(ioc_)) {
    auto server = MetricsServer::listen(
        ioc_.get_executor(), *parse_listen_address("127.0.0.1:0", true),
        []() -> asio::awaitable<std::string> { co_return "x 1\n"; }, std::move(log), limits);
    EXPECT_TRUE(server) << server.message();
    if (server) server_ = std::move(*server);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~MetricsThread() { stop(); }
  MetricsServer& server() { return *server_; }
  // Stops the listener on its loop and joins the thread: its counters are then safe to read.
  void stop() {
    if (!thread_.joinable()) return;
    std::promise<void> done;
    asio::post(ioc_, [&] {
      if (server_) server_->stop();
      work_.reset();
      done.set_value();
    });
    done.get_future().wait();
    ioc_.stop();
    thread_.join();
  }

 private:
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<MetricsServer> server_;
  std::thread thread_;
};

double cpu_seconds_of_process() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::string read_until_closed(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string bytes;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) bytes.append(buf, n);
  return bytes;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; ++pos) ++n;
  return n;
}

// Out of descriptors, a failing accept leaves the connection in the backlog and fails again at
// once: the loop waits 100, 200, 400, 800, 1000, 1000 ms… (accept_backoff.hpp), says so once a
// minute, and serves the waiting client when descriptors are back.
TEST(MetricsServer, AcceptWithoutDescriptorsBacksOffAndLogsOnce) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' runtime needs descriptors of its own (see ControlServer's twin of this test).
  GTEST_SKIP() << "exhausts the process's descriptors, which the sanitizer runtime needs";
#endif
  std::ostringstream log_text;
  auto logger = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  logger->set_pattern("%l %v");
  MetricsServerLimits limits;
  MetricsThread server(logger, limits);
  const std::uint16_t port = server.server().port();
  ASSERT_NE(port, 0);

  // The client's socket made beforehand: connecting takes no new descriptor on this side.
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  personad::testing::DescriptorExhaustion exhaustion;
  ASSERT_TRUE(exhaustion.active());

  const double cpu0 = cpu_seconds_of_process();
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(client, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // Long enough to reach the longest wait: a fixed short wait would fail a dozen times.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const double cpu = cpu_seconds_of_process() - cpu0;

  exhaustion.release();
  EXPECT_EQ(exhaustion.error(), EMFILE);

  // Served once descriptors are back (within the longest backoff, 1 s; 10 s is a deadline).
  const std::string answer = read_until_closed(client, std::chrono::seconds(10));
  EXPECT_THAT(answer, HasSubstr("HTTP/1.1 200")) << answer;
  ::close(client);
  server.stop();

  // 100 + 200 + 400 + 800 + 1000 ms: five or six tries in 2.5 s.
  const auto accept_errors = server.server().accept_errors();
  EXPECT_GE(accept_errors, 1u);
  EXPECT_LE(accept_errors, 8u) << "the accept loop does not back off";
  const std::string log = log_text.str();
  const std::size_t lines = count_of(log, "accept failed");
  std::cerr << "2.5 s without descriptors: " << accept_errors << " failed accepts, " << cpu
            << " s CPU, " << lines << " log lines\n";
  EXPECT_LT(cpu, 0.25) << "the accept loop spins";
  EXPECT_EQ(lines, 1u) << log.substr(0, 2000);
  EXPECT_THAT(log, HasSubstr("Too many open files"));
  EXPECT_THAT(log, HasSubstr("metrics listener: accepting again")) << log.substr(0, 2000);
}

}  // namespace
}  // namespace personad
