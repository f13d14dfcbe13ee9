// systemd service manager notifications (READY, STATUS, WATCHDOG, RELOADING, STOPPING), with the
// watchdog ping driven by a timer on the event loop itself so a stalled loop is caught.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <string>

namespace personad {

class Notifier {
 public:
  explicit Notifier(boost::asio::any_io_executor ex);

  // All of these are no-ops when not run by systemd (no $NOTIFY_SOCKET).
  void ready();
  void reloading();
  void stopping();
  void status(const std::string& text);  // sent only when it changed
  // Starts pinging WATCHDOG=1 at half of $WATCHDOG_USEC, when the watchdog is enabled.
  void start_watchdog();
  void stop_watchdog();
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

 private:
  void send(const std::string& state);
  void ping();

  boost::asio::steady_timer timer_;
  std::optional<std::chrono::microseconds> watchdog_;
  std::string last_status_;
  bool stopped_ = false;
};

}  // namespace personad
