// URLs and the API's origin (see url.hpp).
#include "personad/url.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <filesystem>
#include <system_error>

namespace personad {

namespace urls = boost::urls;

namespace {

std::string quote_text(std::string_view s) { return "\"" + std::string(s) + "\""; }

bool is_localhost(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "localhost" || lower == "localhost.";
}

std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("no certificate found") : out;
}

}  // namespace

std::string HttpUrl::display() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

Result<HttpUrl> parse_http_url(std::string_view text) {
  const auto u = urls::parse_uri(text);
  if (!u) return make_error(ErrorKind::invalid, "is not a valid URL: " + quote_text(text));
  HttpUrl out;
  if (u->scheme_id() == urls::scheme::https)
    out.tls = true;
  else if (u->scheme_id() != urls::scheme::http)
    return make_error(ErrorKind::invalid, "must be an http:// or https:// URL, got " + quote_text(text));
  if (!u->has_authority() || u->encoded_host().empty())
    return make_error(ErrorKind::invalid, "URL has no host: " + quote_text(text));
  out.host = u->host_address();
  out.host_header = std::string(u->encoded_host());
  out.port = out.tls ? 443 : 80;
  if (u->has_port()) {
    out.port = u->port_number();
    out.host_header += ":" + std::to_string(out.port);
  }
  switch (u->host_type()) {
    case urls::host_type::ipv4:
    case urls::host_type::ipv6: {
      out.ip_literal = true;
      boost::system::error_code ec;
      const auto address = boost::asio::ip::make_address(out.host, ec);
      out.loopback = !ec && address.is_loopback();
      break;
    }
    case urls::host_type::name:
      out.loopback = is_localhost(out.host);
      break;
    default:
      break;
  }
  return out;
}

Result<HttpUrl> parse_api_origin(std::string_view text, bool allow_insecure) {
  auto parsed = parse_http_url(text);
  if (!parsed) return parsed.error();
  const auto u = urls::parse_uri(text);  // valid: parse_http_url took it
  if (u->has_userinfo())
    return make_error(ErrorKind::invalid,
                      "must not contain user information (credentials come from the environment, "
                      "$CREDENTIALS_DIRECTORY or api.credentials_file): " + quote_text(text));
  if (u->has_query() || u->has_fragment())
    return make_error(ErrorKind::invalid, "must not have a query or fragment: " + quote_text(text));
  if (!(u->encoded_path().empty() || u->encoded_path() == "/"))
    return make_error(ErrorKind::invalid,
                      "must be scheme://host[:port] without a path (personad adds /api/…), got " +
                          quote_text(text));
  if (u->host_type() != urls::host_type::name && u->host_type() != urls::host_type::ipv4 &&
      u->host_type() != urls::host_type::ipv6)
    return make_error(ErrorKind::invalid, "has no usable host: " + quote_text(text));
  if (u->has_port() && (u->port().empty() || u->port_number() == 0))
    return make_error(ErrorKind::invalid, "has an invalid port: " + quote_text(text));
  if (!parsed->tls && !parsed->loopback && !allow_insecure)
    return make_error(ErrorKind::invalid,
                      "is http:// to " + quote_text(parsed->host) +
                          ", which is not a loopback address: the API credentials would cross "
                          "the network unencrypted; use https://, or set api.allow_insecure = "
                          "true");
  return parsed;
}

std::string normal_base_url(std::string_view text) {
  std::string url(text);
  while (url.size() > 1 && url.back() == '/') url.pop_back();
  return url;
}

Result<void> add_ca_file(void* ssl_ctx, const std::string& path) {
  // The system's words for a file that is not there (OpenSSL's would be three error codes).
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::is_regular_file(status))
    return make_error(ErrorKind::invalid,
                      "api.ca_file: cannot load CA certificates from '" + path + "': " +
                          (ec ? ec.message() : std::string("not a regular file")));
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(static_cast<SSL_CTX*>(ssl_ctx), path.c_str(), nullptr) != 1)
    return make_error(ErrorKind::invalid,
                      "api.ca_file: cannot load CA certificates from '" + path + "': " +
                          openssl_reason());
  return {};
}

Result<void> check_ca_file(const std::string& path) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return make_error(ErrorKind::internal, "cannot create a TLS context");
  auto r = add_ca_file(ctx, path);
  SSL_CTX_free(ctx);
  return r;
}

bool is_pg_url(std::string_view text) {
  return text.starts_with("postgresql://") || text.starts_with("postgres://");
}

bool pg_url_has_password(std::string_view text) {
  if (!is_pg_url(text)) return false;
  std::string_view rest = text.substr(text.find("://") + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos && authority.substr(0, at).find(':') != std::string_view::npos)
    return true;
  const auto q = rest.find('?');
  if (q == std::string_view::npos) return false;
  const std::string_view query = rest.substr(q + 1);
  return query.starts_with("password=") || query.find("&password=") != std::string_view::npos;
}

}  // namespace personad
