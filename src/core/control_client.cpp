// The CLI side of the control socket: one synchronous HTTP request over a Unix socket, with a
// deadline, reporting "no daemon there" (ErrorKind::unavailable) apart from other failures.
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
                                  Millis timeout) {
  asio::io_context ioc;
  beast::basic_stream<local> stream(ioc);
  stream.expires_after(timeout);

  beast::error_code connect_ec;
  stream.async_connect(local::endpoint(socket_path),
                       [&](beast::error_code ec) { connect_ec = ec; });
  ioc.run();
  ioc.restart();
  if (connect_ec) {
    // No socket file, or a file nobody listens on (a daemon that died): no daemon there.
    const bool nobody = connect_ec == asio::error::connection_refused ||
                        connect_ec == boost::system::errc::no_such_file_or_directory;
    return make_error(nobody ? ErrorKind::unavailable : ErrorKind::io,
                      "control socket " + socket_path + ": " + connect_ec.message());
  }

  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "personad");
  req.set(http::field::content_type, "application/json");
  req.keep_alive(false);
  req.body() = body;
  req.prepare_payload();

  // Written and read at the same time: the daemon may answer before it has read the whole
  // request (413 for a body over its limit) and close. Its answer is what counts then, not the
  // broken pipe the rest of the write runs into.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  beast::error_code write_ec, read_ec;
  http::async_write(stream, req, [&](beast::error_code e, std::size_t) { write_ec = e; });
  http::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) {
    read_ec = e;
    stream.cancel();  // an answer ends the exchange, even with the request half written
  });
  ioc.run();
  if (!read_ec && parser.is_done()) {
    auto res = parser.release();
    return ControlReply{static_cast<int>(res.result_int()), std::move(res.body())};
  }
  if (read_ec == beast::error::timeout || write_ec == beast::error::timeout)
    return make_error(ErrorKind::io, "control socket " + socket_path + ": no answer within " +
                                         std::to_string(timeout.count()) + " ms");
  if (write_ec)
    return make_error(ErrorKind::io, "control socket " + socket_path +
                                         ": personad closed the connection before reading the "
                                         "whole request, without an answer (" +
                                         write_ec.message() + ")");
  return make_error(ErrorKind::io, "control socket " + socket_path + ": " + read_ec.message());
}

}  // namespace personad
