// systemd service manager notifications (READY, STATUS, WATCHDOG, RELOADING, STOPPING), with the
// watchdog ping driven by a timer on the event loop itself so a stalled loop is caught.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace personad {

// Datagrams go out on a non-blocking socket, never through libsystemd's blocking sd_notify: a
// receiver that stops reading must not stall the loop. A STATUS that cannot go is replaced by
// the next one (counted in status_dropped()); READY, RELOADING, STOPPING and WATCHDOG are kept
// (the latest of each kind) and retried on a timer until they go.
class Notifier {
 public:
  explicit Notifier(boost::asio::any_io_executor ex);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // All of these are no-ops when not run by systemd (no $NOTIFY_SOCKET).
  void ready();
  void reloading();
  void stopping();
  void status(const std::string& text);  // sent only when it changed
  // Starts pinging WATCHDOG=1 at half of $WATCHDOG_USEC, when the watchdog is enabled.
  void start_watchdog();
  void stop_watchdog();
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

  // Whether $NOTIFY_SOCKET names a usable address (a path, or '@' for the abstract namespace).
  bool enabled() const { return fd_ >= 0; }
  // STATUS texts that never went out (the receiver's queue was full; a newer one replaced them).
  std::uint64_t status_dropped() const { return status_dropped_; }
  // Messages waiting for the receiver to make room (at most one per kind).
  std::size_t pending() const;

 private:
  enum Kind { kReady, kReloading, kStopping, kWatchdog, kStatus, kKinds };
  struct Pending {
    std::string text;
    std::uint64_t seq = 0;  // when it was queued: pending messages go out in that order
  };

  void send(Kind kind, std::string text);
  bool try_send(const std::string& text);  // false only when it would block
  void flush();
  void arm_retry();
  void ping();

  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
  boost::asio::steady_timer timer_;        // watchdog pings
  boost::asio::steady_timer retry_timer_;  // pending messages
  bool retry_armed_ = false;
  std::optional<std::chrono::microseconds> watchdog_;
  std::string last_status_;
  std::optional<Pending> pending_[kKinds];
  std::uint64_t seq_ = 0;
  std::uint64_t status_dropped_ = 0;
  bool stopped_ = false;
  // Timer handlers hold a weak reference: one already queued never touches a destroyed Notifier.
  std::shared_ptr<Notifier*> self_;
};

}  // namespace personad
