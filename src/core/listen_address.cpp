// The one "IP:PORT" parser (see listen_address.hpp).
#include "personad/listen_address.hpp"

#include <boost/asio/ip/address.hpp>
#include <charconv>

namespace personad {

namespace asio = boost::asio;

Result<ListenAddress> parse_listen_address(std::string_view text, bool allow_port_zero) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrorKind::invalid, why + ", got \"" + std::string(text) + "\"");
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("expected [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected HOST:PORT such as 127.0.0.1:9464");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad("an IPv6 address goes in brackets");
  }
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(std::string(host), ec);
  if (ec) return bad("the host must be an IP address (127.0.0.1, ::1, 0.0.0.0)");
  unsigned value = 0;
  auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || err != std::errc() || end != port.data() + port.size() || value > 65535 ||
      (value == 0 && !allow_port_zero))
    return bad("the port must be a number from 1 to 65535");
  return ListenAddress{ip.to_string(), static_cast<std::uint16_t>(value)};
}

}  // namespace personad
