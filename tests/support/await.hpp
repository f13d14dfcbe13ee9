// Runs one awaitable to its end on a test's io_context and returns its value (the store and the
// tracker answer through coroutines; tests want a plain call).
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <optional>

namespace personad::testing {

template <class T>
T await(boost::asio::io_context& ioc, boost::asio::awaitable<T> op) {
  std::optional<T> out;
  std::exception_ptr failure;
  boost::asio::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T value) {
    if (e)
      failure = e;
    else
      out.emplace(std::move(value));
  });
  while (!out && !failure) {
    ioc.restart();
    ioc.run_one();
  }
  if (failure) std::rethrow_exception(failure);
  return std::move(*out);
}

}  // namespace personad::testing
