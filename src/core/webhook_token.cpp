// The webhook URL scheme and its token (see webhook_token.hpp).
#include "personad/webhook_token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

namespace personad {

std::string webhook_token(std::string_view secret, std::string_view client_ref) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(client_ref.data()), client_ref.size(), mac, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 0xf]);
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // the length is public: always 64
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool webhook_token_matches(std::string_view secret, std::string_view client_ref,
                           std::string_view token) {
  return constant_time_equal(webhook_token(secret, client_ref), token);
}

namespace {

std::string_view without_trailing_slashes(std::string_view s) {
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return s;
}

bool is_ref_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// "<client_ref>/<token>" → the route.
std::optional<HookRoute> parse_tail(std::string_view tail) {
  const auto slash = tail.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view ref = tail.substr(0, slash);
  std::string_view token = tail.substr(slash + 1);
  if (!token.empty() && token.back() == '/') token.remove_suffix(1);  // a trailing slash is fine
  if (ref.empty() || ref.size() > 64 || !std::all_of(ref.begin(), ref.end(), is_ref_char))
    return std::nullopt;
  if (token.size() != 64 || !std::all_of(token.begin(), token.end(), is_hex)) return std::nullopt;
  std::string lower(token);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c; });
  return HookRoute{std::string(ref), std::move(lower)};
}

}  // namespace

std::string webhook_url_for(std::string_view public_url, std::string_view secret,
                            std::string_view client_ref) {
  return std::string(without_trailing_slashes(public_url)) + "/hooks/" + std::string(client_ref) +
         "/" + webhook_token(secret, client_ref);
}

std::string webhook_path_prefix(std::string_view public_url) {
  const auto scheme = public_url.find("://");
  const std::size_t host_from = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto path_from = public_url.find_first_of("/?#", host_from);
  if (path_from == std::string_view::npos || public_url[path_from] != '/') return {};
  std::string_view path = public_url.substr(path_from);
  path = path.substr(0, path.find_first_of("?#"));
  return std::string(without_trailing_slashes(path));
}

std::optional<HookRoute> parse_hook_target(std::string_view target, std::string_view prefix) {
  target = target.substr(0, target.find('?'));
  static constexpr std::string_view kHooks = "/hooks/";
  prefix = without_trailing_slashes(prefix);
  if (!prefix.empty() && target.starts_with(prefix) &&
      target.substr(prefix.size()).starts_with(kHooks))
    return parse_tail(target.substr(prefix.size() + kHooks.size()));
  if (target.starts_with(kHooks)) return parse_tail(target.substr(kHooks.size()));
  return std::nullopt;
}

}  // namespace personad
