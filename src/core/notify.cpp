// sd_notify wrapper; libsystemd does nothing when $NOTIFY_SOCKET is unset.
#include "personad/notify.hpp"

#include <systemd/sd-daemon.h>

#include <chrono>
#include <ctime>

namespace personad {

Notifier::Notifier(boost::asio::any_io_executor ex) : timer_(std::move(ex)) {
  std::uint64_t usec = 0;
  // unset_environment=0: child processes (hooks) must not inherit it either way; we only read.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ = std::chrono::microseconds(usec);
}

void Notifier::send(const std::string& state) { sd_notify(0, state.c_str()); }

void Notifier::ready() { send("READY=1"); }

void Notifier::reloading() {
  // Type=notify-reload (systemd ≥ 253) wants MONOTONIC_USEC with RELOADING=1.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  auto usec = static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void Notifier::stopping() { send("STOPPING=1"); }

void Notifier::status(const std::string& text) {
  if (text == last_status_) return;
  last_status_ = text;
  send("STATUS=" + text);
}

void Notifier::start_watchdog() {
  if (!watchdog_ || stopped_) return;
  ping();
}

void Notifier::stop_watchdog() {
  stopped_ = true;
  timer_.cancel();
}

void Notifier::ping() {
  send("WATCHDOG=1");
  timer_.expires_after(*watchdog_ / 2);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) ping();
  });
}

}  // namespace personad
