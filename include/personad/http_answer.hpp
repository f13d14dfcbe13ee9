// How the daemon's listeners (control socket, webhook, metrics) send an HTTP answer: with a
// deadline, and half-closed after it when the connection is not kept alive. One copy for all.
//
// Half-closing (shutdown of the send side only) tells the client the answer is complete while
// still letting it read what is in flight; the session then ends and the socket closes.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/write.hpp>
#include <utility>

#include "personad/clock.hpp"

namespace personad {

// Writes `answer` on `stream` (a beast::basic_stream over any stream protocol: TCP, Unix) within
// `timeout`; true when it was all written. After an answer that is not keep-alive the send side
// is shut down, whether or not the write worked.
template <class Stream, class Body, class Fields>
boost::asio::awaitable<bool> write_http_answer(
    Stream& stream, boost::beast::http::response<Body, Fields> answer, Millis timeout) {
  const bool keep_alive = answer.keep_alive();
  stream.expires_after(timeout);
  auto [ec, n] = co_await boost::beast::http::async_write(
      stream, answer, boost::asio::as_tuple(boost::asio::use_awaitable));
  if (!keep_alive) {
    boost::beast::error_code ignored;
    stream.socket().shutdown(boost::asio::socket_base::shutdown_send, ignored);
  }
  co_return !ec;
}

}  // namespace personad
