// The CLI side of the control socket: one synchronous HTTP request over a Unix socket, with a
// deadline, reporting "no daemon there" apart from other failures.
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "personad/control.hpp"

namespace personad {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;

Result<ControlReply> control_call(const std::string& socket_path, const std::string& method,
                                  const std::string& target, const std::string& body,
                                  Millis timeout, bool* unreachable) {
  if (unreachable) *unreachable = false;
  asio::io_context ioc;
  beast::basic_stream<local> stream(ioc);
  stream.expires_after(timeout);

  beast::error_code connect_ec;
  stream.async_connect(local::endpoint(socket_path),
                       [&](beast::error_code ec) { connect_ec = ec; });
  ioc.run();
  ioc.restart();
  if (connect_ec) {
    if (unreachable)
      *unreachable = connect_ec == asio::error::connection_refused ||
                     connect_ec == asio::error::not_found ||
                     connect_ec == boost::system::errc::no_such_file_or_directory;
    return make_error("control socket " + socket_path + ": " + connect_ec.message());
  }

  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "personad");
  req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  beast::error_code ec;
  http::async_write(stream, req, [&](beast::error_code e, std::size_t) {
    if (e) {
      ec = e;
      return;
    }
    http::async_read(stream, buffer, parser, [&](beast::error_code e2, std::size_t) { ec = e2; });
  });
  ioc.run();
  if (ec == beast::error::timeout)
    return make_error("control socket " + socket_path + ": no answer within " +
                      std::to_string(timeout.count()) + " ms");
  if (ec) return make_error("control socket " + socket_path + ": " + ec.message());
  auto res = parser.release();
  return ControlReply{static_cast<int>(res.result_int()), std::move(res.body())};
}

}  // namespace personad
