// One parser for the URLs personad reads — api.base_url (the API's origin), the URL fields of
// batch files, the client's connection target — and the trust settings of that origin, so
// --check-config, intake and the daemon's client can never disagree about a URL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "personad/result.hpp"

namespace personad {

struct HttpUrl {
  bool tls = false;          // https
  std::string host;          // for DNS, SNI and certificate checks (IPv6 without brackets)
  std::uint16_t port = 0;    // as given, or the scheme's default
  std::string host_header;   // as written, with the port when one was given
  bool ip_literal = false;   // SNI must not carry an IP address
  bool loopback = false;     // localhost, 127.0.0.0/8, ::1
  std::string display() const;  // host:port, [v6]:port
};

// An absolute http:// or https:// URL with a host (path, query and fragment allowed): what a
// batch file's URL fields take. On error, the message says what is wrong and quotes `text`:
// `is not a valid URL: "…"`, `must be an http:// or https:// URL, got "…"`,
// `URL has no host: "…"`.
Result<HttpUrl> parse_http_url(std::string_view text);

// The API's origin (api.base_url): as parse_http_url, and moreover scheme://host[:port] with at
// most a trailing "/" (the client appends /api/…), no user information, no port 0, a host that
// is a name or an IP address; an http:// origin only to a loopback host, unless allow_insecure
// (the credentials would cross the network in clear).
Result<HttpUrl> parse_api_origin(std::string_view text, bool allow_insecure);

// The base_url as kept: trailing slashes dropped (the client's paths start with '/').
std::string normal_base_url(std::string_view text);

// A PostgreSQL connection URI ([store] url): "postgresql://…" or "postgres://…" (libpq's own
// syntax, several hosts allowed, so not parsed as an HTTP URL).
bool is_pg_url(std::string_view text);
// True when the URI's user information carries a password ("postgresql://user:secret@host"),
// or a password= query parameter.
bool pg_url_has_password(std::string_view text);

// Loads PEM CA certificates from `path` into an OpenSSL SSL_CTX (passed as void* so this header
// needs no OpenSSL), added to whatever it trusts already. The one loader of api.ca_file: used by
// the client and by check_startup. The error names the file and OpenSSL's reason.
Result<void> add_ca_file(void* ssl_ctx, const std::string& path);
// The same check without a context of the caller's (check_startup).
Result<void> check_ca_file(const std::string& path);

}  // namespace personad
