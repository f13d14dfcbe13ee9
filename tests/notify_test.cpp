// Tests of the systemd notifier against fake $NOTIFY_SOCKET receivers (a path in a temp dir and
// a name in the abstract namespace): the messages and their text, and that a receiver which
// stops reading never stalls the event loop while READY/STOPPING/RELOADING/WATCHDOG still arrive.
#include "personad/notify.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "temp_dir.hpp"

namespace personad {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using personad::testing::TempDir;

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  ScopedEnv(std::vector<std::pair<std::string, std::optional<std::string>>> vars) {
    for (auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str());
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      if (value)
        ::setenv(name.c_str(), value->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }
  ~ScopedEnv() {
    for (auto& [name, value] : saved_) {
      if (value)
        ::setenv(name.c_str(), value->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The address $NOTIFY_SOCKET names: a path, or "@name" in the abstract namespace.
std::pair<sockaddr_un, socklen_t> address_of(const std::string& name) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.data(), name.size());
  if (name[0] == '@') {
    addr.sun_path[0] = '\0';
    return {addr, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())};
  }
  return {addr, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1)};
}

// A datagram socket standing in for systemd's: it reads only when told to, so its queue
// (net.unix.max_dgram_qlen datagrams) can be left to fill up.
class Receiver {
 public:
  explicit Receiver(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto [addr, len] = address_of(name_);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  }
  ~Receiver() {
    stop_ = true;
    if (reader_.joinable()) reader_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

  // The next datagram, or nothing within `limit`. Only while no reader thread runs.
  std::optional<std::string> receive(std::chrono::milliseconds limit = 5s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

  // From now on, a thread reads everything that arrives.
  void start_reading() {
    if (reader_.joinable()) return;
    reader_ = std::thread([this] {
      while (!stop_) {
        auto m = receive(20ms);
        if (!m) continue;
        std::lock_guard<std::mutex> lock(mu_);
        messages_.push_back(std::move(*m));
      }
    });
  }
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

  // Sends junk from sockets of our own until a fresh socket cannot add a datagram: the queue
  // is then full for every sender. Returns how many went in.
  int fill() {
    int sent = 0;
    for (int sockets = 0; sockets < 1000; ++sockets) {
      int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      auto [addr, len] = address_of(name_);
      int from_this = 0;
      while (::sendto(fd, "junk", 4, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr), len) == 4)
        ++from_this;
      ::close(fd);
      sent += from_this;
      if (from_this == 0) return sent;
    }
    return sent;
  }

 private:
  std::string name_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::mutex mu_;
  std::vector<std::string> messages_;
};

std::string abstract_name() {
  return "@personad-notify-test-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::random_device{}());
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// The event loop on a thread of its own, with a deadline, and a Notifier that lives on it (made
// and destroyed there too); work is handed to the loop with on_loop(). If the loop got stuck in
// a send, the receiver starts reading at the end, so a blocking notifier fails the test instead
// of hanging it.
class LoopThread {
 public:
  explicit LoopThread(Receiver& rx) : rx_(rx), guard_(asio::make_work_guard(io_)) {
    thread_ = std::thread([this] { io_.run_for(120s); });
    on_loop([this] { return &notifier_.emplace(io_.get_executor()); });
  }
  ~LoopThread() {
    wait_unstuck();
    on_loop([this] {
      notifier_.reset();
      return 0;
    });
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  // Touch only on the loop (inside on_loop).
  Notifier& notifier() { return *notifier_; }

  // Runs `fn` on the loop; returns its result, or nothing if it has not returned within
  // `limit` (the loop is then stuck in it).
  template <class F>
  auto on_loop(F fn, std::chrono::milliseconds limit = 30s) -> std::optional<decltype(fn())> {
    using T = decltype(fn());
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future().share();
    asio::post(io_, [promise, fn = std::move(fn)]() mutable { promise->set_value(fn()); });
    if (future.wait_for(limit) != std::future_status::ready) {
      stuck_ = [future] { future.wait(); };
      return std::nullopt;
    }
    return future.get();
  }
  bool stuck() const { return static_cast<bool>(stuck_); }

 private:
  // After on_loop() gave up: lets the blocked send go and waits for the loop to come back.
  void wait_unstuck() {
    if (!stuck_) return;
    rx_.start_reading();
    std::exchange(stuck_, nullptr)();
  }

  Receiver& rx_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  std::optional<Notifier> notifier_;
  std::function<void()> stuck_;
};

void expect_messages_arrive(Receiver& rx) {
  asio::io_context io;
  Notifier n(io.get_executor());
  ASSERT_TRUE(n.enabled());

  n.ready();
  EXPECT_EQ(rx.receive(), "READY=1");
  n.status("queued=1 pending=2");
  EXPECT_EQ(rx.receive(), "STATUS=queued=1 pending=2");
  n.status("queued=1 pending=2");  // unchanged: not sent again
  n.status("queued=0 pending=3");
  EXPECT_EQ(rx.receive(), "STATUS=queued=0 pending=3");
  n.reloading();
  auto reloading = rx.receive();
  ASSERT_TRUE(reloading);
  EXPECT_EQ(reloading->rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << *reloading;
  EXPECT_GT(std::stoll(reloading->substr(reloading->find('=', 12) + 1)), 0);
  n.ready();
  EXPECT_EQ(rx.receive(), "READY=1");
  n.stopping();
  EXPECT_EQ(rx.receive(), "STOPPING=1");
  EXPECT_EQ(n.status_dropped(), 0u);
  EXPECT_EQ(n.pending(), 0u);
  EXPECT_FALSE(rx.receive(50ms)) << "nothing else was sent";
}

TEST(Notifier, SendsToAPathSocket) {
  TempDir dir("notify");
  Receiver rx((dir.path() / "notify.sock").string());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()}, {"WATCHDOG_USEC", std::nullopt}});
  expect_messages_arrive(rx);
}

TEST(Notifier, SendsToAnAbstractSocket) {
  Receiver rx(abstract_name());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()}, {"WATCHDOG_USEC", std::nullopt}});
  expect_messages_arrive(rx);
}

TEST(Notifier, WithoutNotifySocketEverythingIsANoOp) {
  ScopedEnv env({{"NOTIFY_SOCKET", std::nullopt}, {"WATCHDOG_USEC", std::nullopt}});
  asio::io_context io;
  Notifier n(io.get_executor());
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.watchdog_interval());
  n.ready();
  n.status("x");
  n.stopping();
  n.start_watchdog();
  EXPECT_EQ(n.pending(), 0u);
  EXPECT_EQ(io.poll(), 0u);  // nothing was scheduled
}

TEST(Notifier, UnusableNotifySocketDisablesIt) {
  for (const char* value : {"", "notify.sock", "vsock:2:1234", "@"}) {
    ScopedEnv env({{"NOTIFY_SOCKET", std::string(value)}});
    asio::io_context io;
    Notifier n(io.get_executor());
    EXPECT_FALSE(n.enabled()) << value;
  }
  ScopedEnv env({{"NOTIFY_SOCKET", "/" + std::string(200, 'x')}});  // longer than sun_path
  asio::io_context io;
  EXPECT_FALSE(Notifier(io.get_executor()).enabled());
}

TEST(Notifier, PingsTheWatchdogAtHalfItsIntervalUntilStopped) {
  Receiver rx(abstract_name());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()},
                 {"WATCHDOG_USEC", "100000"},
                 {"WATCHDOG_PID", std::to_string(::getpid())}});
  asio::io_context io;
  Notifier n(io.get_executor());
  ASSERT_EQ(n.watchdog_interval(), std::chrono::microseconds(100'000));
  n.start_watchdog();
  EXPECT_EQ(rx.receive(), "WATCHDOG=1");  // at once
  io.run_for(180ms);                       // then every 50 ms
  int pings = 0;
  while (auto m = rx.receive(0ms)) {
    EXPECT_EQ(*m, "WATCHDOG=1");
    ++pings;
  }
  EXPECT_GE(pings, 1);
  n.stop_watchdog();
  io.restart();
  io.run_for(120ms);
  EXPECT_FALSE(rx.receive(0ms)) << "no ping after stop_watchdog()";
}

TEST(Notifier, AReceiverThatDoesNotReadNeverBlocksTheLoop) {
  Receiver rx(abstract_name());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()}, {"WATCHDOG_USEC", std::nullopt}});
  LoopThread loop(rx);
  Notifier& n = loop.notifier();

  // 1,000 status changes and a READY=1 while nobody reads: its queue fills after a few.
  constexpr int kStatuses = 1000;
  auto returned = loop.on_loop([&n] {
    for (int i = 0; i < kStatuses; ++i) n.status("queued=" + std::to_string(i));
    n.ready();
    return n.pending();
  });
  ASSERT_TRUE(returned) << "status()/ready() did not return within 30 s: the loop is blocked";
  EXPECT_GE(*returned, 1u) << "READY=1 waits for room";
  auto dropped = *loop.on_loop([&n] { return n.status_dropped(); });
  EXPECT_GT(dropped, 0u);

  // The receiver reads again: the pending READY=1 arrives (on the retry timer), after the
  // latest STATUS; every other STATUS either arrived or was counted as dropped.
  rx.start_reading();
  ASSERT_TRUE(wait_until(
      [&] {
        auto m = rx.messages();
        return !m.empty() && m.back() == "READY=1";
      },
      10s));
  auto messages = rx.messages();
  ASSERT_GE(messages.size(), 2u);
  EXPECT_EQ(messages[messages.size() - 2], "STATUS=queued=" + std::to_string(kStatuses - 1));
  std::size_t statuses = 0;
  for (const auto& m : messages) statuses += m.rfind("STATUS=", 0) == 0;
  EXPECT_EQ(statuses + *loop.on_loop([&n] { return n.status_dropped(); }),
            static_cast<std::size_t>(kStatuses));
  EXPECT_EQ(*loop.on_loop([&n] { return n.pending(); }), 0u);
}

TEST(Notifier, MessagesThatMustNotBeLostWaitForRoomInOrder) {
  TempDir dir("notify");
  Receiver rx((dir.path() / "notify.sock").string());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()},
                 {"WATCHDOG_USEC", "60000000"},
                 {"WATCHDOG_PID", std::to_string(::getpid())}});
  const int junk = rx.fill();
  ASSERT_GT(junk, 0);
  LoopThread loop(rx);
  Notifier& n = loop.notifier();

  auto returned = loop.on_loop([&n] {
    n.reloading();
    n.ready();
    n.status("reloaded");
    n.ready();  // the latest of a kind counts; it goes where it was last queued
    n.start_watchdog();
    n.stopping();
    n.stop_watchdog();  // a ping still pending when the watchdog stops is pointless
    return n.pending();
  });
  ASSERT_TRUE(returned) << "the notifier blocked the loop";
  EXPECT_EQ(*returned, 4u);  // RELOADING, STATUS, READY, STOPPING

  rx.start_reading();
  ASSERT_TRUE(wait_until([&] { return rx.messages().size() == static_cast<std::size_t>(junk) + 4; },
                         10s))
      << rx.messages().size();
  auto m = rx.messages();
  std::vector<std::string> ours(m.begin() + junk, m.end());
  ASSERT_EQ(ours.size(), 4u);
  EXPECT_EQ(ours[0].rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << ours[0];
  EXPECT_EQ(ours[1], "STATUS=reloaded");
  EXPECT_EQ(ours[2], "READY=1");
  EXPECT_EQ(ours[3], "STOPPING=1");
  EXPECT_EQ(*loop.on_loop([&n] { return n.status_dropped(); }), 0u);
}

TEST(Notifier, APendingWatchdogPingIsKeptAndSent) {
  Receiver rx(abstract_name());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()},
                 {"WATCHDOG_USEC", "60000000"},
                 {"WATCHDOG_PID", std::to_string(::getpid())}});
  const int junk = rx.fill();
  LoopThread loop(rx);
  Notifier& n = loop.notifier();
  auto returned = loop.on_loop([&n] {
    n.start_watchdog();
    return n.pending();
  });
  ASSERT_TRUE(returned) << "the notifier blocked the loop";
  EXPECT_EQ(*returned, 1u);
  rx.start_reading();
  ASSERT_TRUE(wait_until([&] { return rx.messages().size() == static_cast<std::size_t>(junk) + 1; },
                         10s));
  EXPECT_EQ(rx.messages().back(), "WATCHDOG=1");
}

TEST(Notifier, DestroyedWithMessagesPendingLeavesNoHandlerBehind) {
  Receiver rx(abstract_name());
  ASSERT_TRUE(rx.ok());
  ScopedEnv env({{"NOTIFY_SOCKET", rx.name()}, {"WATCHDOG_USEC", std::nullopt}});
  rx.fill();
  asio::io_context io;
  {
    Notifier n(io.get_executor());
    n.ready();
    EXPECT_EQ(n.pending(), 1u);
  }
  io.run_for(300ms);  // the retry timer's handler runs (cancelled) and touches nothing
  SUCCEED();
}

}  // namespace
}  // namespace personad
