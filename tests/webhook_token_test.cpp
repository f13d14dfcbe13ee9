// The webhook URL scheme: tokens (a known HMAC-SHA256 vector), constant-time checks, URLs
// and route parsing with and without the public_url's path prefix.
#include "personad/webhook_token.hpp"

#include <gtest/gtest.h>

namespace personad {
namespace {

TEST(WebhookToken, IsHexHmacSha256OfTheClientRef) {
  // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
  EXPECT_EQ(webhook_token("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(webhook_token("Jefe", "x").size(), 64u);
}

TEST(WebhookToken, MatchesOnlyItsOwnClientRefAndSecret) {
  const std::string secret = "0123456789abcdef-secret";
  const std::string ref = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";
  const std::string token = webhook_token(secret, ref);
  EXPECT_TRUE(webhook_token_matches(secret, ref, token));
  EXPECT_FALSE(webhook_token_matches(secret, ref + "0", token));
  EXPECT_FALSE(webhook_token_matches("another secret of 16+", ref, token));
  std::string first = token, last = token;
  first[0] = first[0] == 'a' ? 'b' : 'a';
  last[63] = last[63] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(webhook_token_matches(secret, ref, first));
  EXPECT_FALSE(webhook_token_matches(secret, ref, last));
  EXPECT_FALSE(webhook_token_matches(secret, ref, token.substr(0, 63)));
  EXPECT_FALSE(webhook_token_matches(secret, ref, ""));
}

TEST(WebhookToken, ConstantTimeEqualComparesLengthAndEveryByte) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "xbc"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal(std::string_view("a\0c", 3), std::string_view("a\0d", 3)));
}

TEST(WebhookUrl, IsPublicUrlHooksClientRefToken) {
  const std::string ref = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";
  const std::string url = webhook_url_for("https://hooks.example.com/personad/", "s3cret-s3cret-16", ref);
  EXPECT_EQ(url, "https://hooks.example.com/personad/hooks/" + ref + "/" +
                     webhook_token("s3cret-s3cret-16", ref));
  EXPECT_EQ(url.size(), std::string("https://hooks.example.com/personad").size() + kWebhookSuffixChars);
}

TEST(WebhookUrl, PathPrefixOfPublicUrl) {
  EXPECT_EQ(webhook_path_prefix("https://hooks.example.com"), "");
  EXPECT_EQ(webhook_path_prefix("https://hooks.example.com/"), "");
  EXPECT_EQ(webhook_path_prefix("https://hooks.example.com:8443/a/b/"), "/a/b");
  EXPECT_EQ(webhook_path_prefix("http://127.0.0.1:8421/personad"), "/personad");
}

TEST(WebhookRoute, ParsesWithThePrefixAndWithoutIt) {
  const std::string token(64, 'a');
  const std::string ref = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";
  for (const std::string& target : {"/personad/hooks/" + ref + "/" + token,
                                   "/hooks/" + ref + "/" + token,  // a proxy stripped the prefix
                                   "/personad/hooks/" + ref + "/" + token + "/",
                                   "/personad/hooks/" + ref + "/" + token + "?source=creatify"}) {
    auto r = parse_hook_target(target, "/personad");
    ASSERT_TRUE(r) << target;
    EXPECT_EQ(r->client_ref, ref);
    EXPECT_EQ(r->token, token);
  }
  // Upper-case hex is the same token.
  auto upper = parse_hook_target("/hooks/" + ref + "/" + std::string(64, 'A'), "");
  ASSERT_TRUE(upper);
  EXPECT_EQ(upper->token, token);
}

TEST(WebhookRoute, RefusesWhatIsNoHookRoute) {
  const std::string token(64, 'b');
  const std::string ref = "abc-123";
  for (const std::string& target :
       {std::string("/"), std::string("/hooks/"), "/hooks/" + ref, "/hooks/" + ref + "/",
        "/hooks/" + ref + "/" + token.substr(1), "/hooks/" + ref + "/" + token + "0",
        "/hooks/" + ref + "/" + std::string(63, 'b') + "g", "/hooks//" + token,
        "/hooks/a.b/" + token, "/hooks/" + std::string(65, 'r') + "/" + token,
        "/other/hooks/" + ref + "/" + token, "/hooks/" + ref + "/x/" + token,
        "/personadx/hooks/" + ref + "/x"})
    EXPECT_FALSE(parse_hook_target(target, "/personad")) << target;
}

}  // namespace
}  // namespace personad
