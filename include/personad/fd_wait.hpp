// Waiting on a descriptor someone else owns (a libpq connection's socket): the loop is told when
// it turns readable, and the descriptor is left as it was found (open, registered nowhere).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>

namespace personad {

// Waits on the calling coroutine's executor until `fd` is readable or `limit` has passed: true
// when readable, false on the limit, or at once for a negative fd or a wait that fails. `fd`
// is never read, closed or left registered with the reactor, and is set non-blocking (libpq's
// sockets are non-blocking already).
boost::asio::awaitable<bool> wait_readable(int fd, std::chrono::milliseconds limit);

}  // namespace personad
