// Best-effort delivery of one webhook: a JSON POST over plain HTTP with an overall timeout.
// Failures are reported to the optional log and otherwise ignored, like the real service.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <iosfwd>

#include "persona_book.hpp"

namespace creatify_sim {

boost::asio::awaitable<void> deliver_webhook(WebhookCall call, std::chrono::seconds timeout,
                                             std::ostream* log);

}  // namespace creatify_sim
