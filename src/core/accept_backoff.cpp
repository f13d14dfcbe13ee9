// The accept loops' error rule (see accept_backoff.hpp).
#include "personad/accept_backoff.hpp"

#include <boost/asio/error.hpp>

#include <algorithm>

namespace personad {

namespace asio = boost::asio;

bool accept_error_is_per_connection(const boost::system::error_code& ec) {
  return ec == asio::error::connection_aborted || ec == asio::error::interrupted ||
         ec == asio::error::try_again || ec == asio::error::would_block;
}

Millis AcceptBackoff::after_error(const boost::system::error_code& ec) {
  if (accept_error_is_per_connection(ec)) return Millis{0};
  current_ = current_.count() == 0 ? initial_ : std::min(current_ * 2, max_);
  if (current_.count() <= 0) current_ = Millis{1};
  return current_;
}

bool AcceptBackoff::after_success() {
  const bool was = waiting();
  current_ = Millis{0};
  return was;
}

}  // namespace personad
