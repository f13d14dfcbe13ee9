// After each accept of a listener (see accept_pacer.hpp).
#include "personad/accept_pacer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/logger.h>

namespace personad {

namespace asio = boost::asio;

AcceptPacer::AcceptPacer(asio::any_io_executor ex, std::string who,
                         std::shared_ptr<spdlog::logger> log, Millis initial, Millis max)
    : timer_(std::move(ex)), who_(std::move(who)), log_(std::move(log)), backoff_(initial, max) {}

asio::awaitable<void> AcceptPacer::after_error(const boost::system::error_code& ec,
                                               const std::function<void()>& before_wait) {
  const Millis wait_for = backoff_.after_error(ec);
  const bool wait = wait_for.count() != 0;
  if (wait && before_wait) before_wait();
  if (log_)
    log_throttled(*log_, throttle_, spdlog::level::warn,
                  who_ + ": accept failed: " + ec.message() +
                      (wait ? "; trying again in " + std::to_string(wait_for.count()) + " ms"
                            : std::string()));
  if (!wait) co_return;
  timer_.expires_after(wait_for);
  co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
}

void AcceptPacer::after_success() {
  if (!backoff_.after_success()) return;
  const std::uint64_t held = throttle_.take_suppressed();
  if (log_)
    log_->info("{}: accepting again{}", who_,
               held ? " (" + std::to_string(held) + " more failed accepts not logged)"
                    : std::string());
}

}  // namespace personad
