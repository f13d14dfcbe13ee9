// See fd_wait.hpp.
#include "personad/fd_wait.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace personad {

namespace asio = boost::asio;

namespace {

// A stream_descriptor that gives the descriptor back, never closing it.
struct Borrowed {
  Borrowed(const asio::any_io_executor& ex, int fd) : stream(ex, fd) {}
  ~Borrowed() { (void)stream.release(); }
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;
  asio::posix::stream_descriptor stream;
};

}  // namespace

asio::awaitable<bool> wait_readable(int fd, std::chrono::milliseconds limit) {
  if (fd < 0) co_return false;
  auto ex = co_await asio::this_coro::executor;
  Borrowed watched(ex, fd);
  asio::steady_timer deadline(ex, limit);
  // `||` cancels the loser and waits for it: no handler outlives this frame.
  using namespace asio::experimental::awaitable_operators;
  using Wait = asio::posix::stream_descriptor::wait_type;
  auto first = co_await (
      watched.stream.async_wait(Wait::wait_read, asio::as_tuple(asio::use_awaitable)) ||
      deadline.async_wait(asio::as_tuple(asio::use_awaitable)));
  co_return first.index() == 0 && !std::get<0>(std::get<0>(first));
}

}  // namespace personad
