// The effects of accept_backoff.hpp's rule, shared by the daemon's three listeners (control
// socket, webhook, metrics): after a failed accept, log it (at most once a minute, with how many
// were held back) and wait as AcceptBackoff decides; after an accept that works following a
// spell of failures, say the listener accepts again.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>

#include "personad/accept_backoff.hpp"
#include "personad/logging.hpp"

namespace spdlog { class logger; }

namespace personad {

class AcceptPacer {
 public:
  // `who` names the listener in its log lines ("control socket").
  AcceptPacer(boost::asio::any_io_executor ex, std::string who,
              std::shared_ptr<spdlog::logger> log, Millis initial, Millis max);

  // After a failed accept: logs it and waits as the backoff says. `before_wait` runs first when
  // there will be a wait (the webhook listener closes an idle connection to free a descriptor).
  boost::asio::awaitable<void> after_error(const boost::system::error_code& ec,
                                           const std::function<void()>& before_wait = {});
  // After an accept that worked.
  void after_success();
  // The listener stops: a wait in progress ends at once.
  void cancel() { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
  std::string who_;
  std::shared_ptr<spdlog::logger> log_;
  AcceptBackoff backoff_;
  LogThrottle throttle_;
};

}  // namespace personad
