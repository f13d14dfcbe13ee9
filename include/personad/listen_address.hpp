// Where a listener of the daemon binds ([metrics] listen, [webhook] listen): the one parser of
// "IP:PORT", so both keys accept and refuse the same texts with the same words.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "personad/result.hpp"

namespace personad {

struct ListenAddress {
  std::string host;  // an IP address literal (IPv6 without brackets)
  std::uint16_t port = 0;
};

// "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464": an IP literal (never a name: a listener must
// not depend on the resolver at start) and a port (1-65535; 0 only with allow_port_zero, for
// tests). Errors say what is wrong and quote `text`.
Result<ListenAddress> parse_listen_address(std::string_view text, bool allow_port_zero = false);

}  // namespace personad
