// The webhook URL scheme: {public_url}/hooks/{client_ref}/{token}, the token being the hex
// HMAC-SHA256 of client_ref under the webhook secret. Pure: building, parsing and checking.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace personad {

// Lower-case hex HMAC-SHA256 of `client_ref` keyed with `secret` (64 characters).
std::string webhook_token(std::string_view secret, std::string_view client_ref);

// Equal lengths and bytes, in time that depends on the length only (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b);

// Whether `token` is the token of `client_ref`, compared in constant time.
bool webhook_token_matches(std::string_view secret, std::string_view client_ref,
                           std::string_view token);

// What a create without its own webhook_url is given: {public_url}/hooks/{client_ref}/{token}
// (public_url's trailing slashes dropped).
std::string webhook_url_for(std::string_view public_url, std::string_view secret,
                            std::string_view client_ref);
// The characters that URL adds to public_url for a UUID client_ref: "/hooks/" + 36 + "/" + 64.
inline constexpr std::size_t kWebhookSuffixChars = 7 + 36 + 1 + 64;

// The path part of public_url ("" for "https://h.example.com" or ".../"): the prefix of every
// hook route.
std::string webhook_path_prefix(std::string_view public_url);

struct HookRoute {
  std::string client_ref;
  std::string token;
};

// A request target → the route, or nullopt when it is no hook route. Accepted:
// {prefix}/hooks/<client_ref>/<token> and, for a proxy that strips the prefix,
// /hooks/<client_ref>/<token>; a query string is ignored. client_ref: 1-64 of [A-Za-z0-9-];
// token: 64 hex digits (a wrong token of the right shape is the caller's 404).
std::optional<HookRoute> parse_hook_target(std::string_view target, std::string_view prefix);

}  // namespace personad
