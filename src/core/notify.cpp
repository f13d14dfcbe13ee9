// Service manager notifications on a non-blocking datagram socket (see notify.hpp). libsystemd's
// sd_notify does a blocking sendmsg: a receiver whose queue is full would stall the whole loop.
#include "personad/notify.hpp"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace personad {

namespace {

// How often messages that could not go are tried again while the receiver's queue is full.
constexpr auto kRetryEvery = std::chrono::milliseconds(100);

}  // namespace

Notifier::Notifier(boost::asio::any_io_executor ex)
    : timer_(ex), retry_timer_(ex), self_(std::make_shared<Notifier*>(this)) {
  std::uint64_t usec = 0;
  // unset_environment=0: child processes (hooks) must not inherit it either way; we only read.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);

  // Like libsystemd: an absolute path, or '@' for a name in the abstract namespace. Anything
  // else (unset, empty, vsock:…) disables notifications.
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || (env[0] != '/' && env[0] != '@')) return;
  const std::size_t len = std::strlen(env);
  if (len < 2 || len >= sizeof addr_.sun_path) return;
  addr_.sun_family = AF_UNIX;
  std::memcpy(addr_.sun_path, env, len);
  if (env[0] == '@') {
    addr_.sun_path[0] = '\0';  // abstract: the name is exactly these bytes, no terminator
    addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  } else {
    addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + 1);
  }
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
}

Notifier::~Notifier() {
  self_.reset();  // a handler already queued finds nothing to call
  if (fd_ < 0) return;
  flush();  // a last try, without waiting: STOPPING=1 at exit, say
  ::close(fd_);
}

bool Notifier::try_send(const std::string& text) {
  for (;;) {
    ssize_t n = ::sendto(fd_, text.data(), text.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                         reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    if (n >= 0) return true;
    if (errno == EINTR) continue;
    // The receiver's queue (or our send buffer) is full: try again later.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
    // Nobody there (ECONNREFUSED, ENOENT), or not allowed: sd_notify would have failed too, and
    // retrying will not help.
    return true;
  }
}

void Notifier::flush() {
  for (;;) {
    std::optional<Pending>* next = nullptr;
    for (auto& p : pending_)
      if (p && (next == nullptr || p->seq < (*next)->seq)) next = &p;
    if (next == nullptr) return;
    if (!try_send((*next)->text)) return;  // the rest would block as well
    if (next == &pending_[kStatus]) last_status_ = std::move((*next)->text);
    next->reset();
  }
}

std::size_t Notifier::pending() const {
  std::size_t n = 0;
  for (const auto& p : pending_) n += p.has_value();
  return n;
}

void Notifier::send(Kind kind, std::string text) {
  if (fd_ < 0) return;
  // Only the latest of a kind matters: a newer STATUS replaces an older one (which is then
  // lost), a second READY=1 says nothing the first did not.
  if (pending_[kind] && kind == kStatus) ++status_dropped_;
  pending_[kind] = Pending{std::move(text), ++seq_};
  flush();
  if (pending() != 0) arm_retry();
}

void Notifier::arm_retry() {
  if (retry_armed_) return;
  retry_armed_ = true;
  retry_timer_.expires_after(kRetryEvery);
  retry_timer_.async_wait([self = std::weak_ptr<Notifier*>(self_)](const boost::system::error_code&) {
    auto alive = self.lock();
    if (!alive) return;
    Notifier& n = **alive;
    n.retry_armed_ = false;
    n.flush();
    if (n.pending() != 0) n.arm_retry();
  });
}

void Notifier::ready() { send(kReady, "READY=1"); }

void Notifier::reloading() {
  // Type=notify-reload (systemd ≥ 253) wants MONOTONIC_USEC with RELOADING=1. A retried message
  // keeps the time the reload began.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
  send(kReloading, "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void Notifier::stopping() { send(kStopping, "STOPPING=1"); }

void Notifier::status(const std::string& text) {
  std::string message = "STATUS=" + text;
  if (pending_[kStatus] ? pending_[kStatus]->text == message : message == last_status_) return;
  send(kStatus, std::move(message));
}

void Notifier::start_watchdog() {
  if (!watchdog_ || stopped_) return;
  ping();
}

void Notifier::stop_watchdog() {
  stopped_ = true;
  timer_.cancel();
  pending_[kWatchdog].reset();  // a ping after the last one is pointless
}

void Notifier::ping() {
  send(kWatchdog, "WATCHDOG=1");
  timer_.expires_after(*watchdog_ / 2);
  timer_.async_wait([self = std::weak_ptr<Notifier*>(self_)](const boost::system::error_code& ec) {
    auto alive = self.lock();
    if (!alive || ec) return;
    Notifier& n = **alive;
    if (!n.stopped_) n.ping();
  });
}

}  // namespace personad
