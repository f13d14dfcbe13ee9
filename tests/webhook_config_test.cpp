// [webhook] in personad.toml: the keys, their relations, and the secret (file or
// $CREDENTIALS_DIRECTORY), as --check-config and start-up see them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "personad/config.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

using personad::testing::TempDir;

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(WebhookConfig, OffByDefault) {
  auto r = parse_config("", "/etc/personad/personad.toml");
  ASSERT_TRUE(r) << r.message();
  EXPECT_FALSE(r->webhook.enabled());
  EXPECT_EQ(r->poll.max_interval_with_webhook, Millis(6 * 3'600'000));
}

TEST(WebhookConfig, ParsesTheKeys) {
  auto r = parse_config(
      "[webhook]\nlisten = \"127.0.0.1:8421\"\npublic_url = \"https://hooks.example.com/p/\"\n"
      "secret_file = \"webhook.secret\"\n",
      "/etc/personad/personad.toml");
  ASSERT_TRUE(r) << r.message();
  EXPECT_TRUE(r->webhook.enabled());
  EXPECT_EQ(r->webhook.listen, "127.0.0.1:8421");
  EXPECT_EQ(r->webhook.public_url, "https://hooks.example.com/p");
  EXPECT_EQ(r->webhook.secret_file, "/etc/personad/webhook.secret");
}

TEST(WebhookConfig, EmptyValuesMeanOff) {
  auto r = parse_config("[webhook]\nlisten = \"\"\npublic_url = \"\"\nsecret_file = \"\"\n", "p.toml");
  ASSERT_TRUE(r) << r.message();
  EXPECT_FALSE(r->webhook.enabled());
}

TEST(WebhookConfig, ErrorsNameFileLineAndKey) {
  auto no_url = parse_config("[webhook]\nlisten = \"127.0.0.1:8421\"\n", "p.toml");
  ASSERT_FALSE(no_url);
  EXPECT_EQ(no_url.message(),
            "p.toml:2: webhook.public_url: required with webhook.listen (the URL the API calls, "
            "e.g. \"https://hooks.example.com/personad\")");
  auto no_listen = parse_config("[webhook]\npublic_url = \"https://h.example.com\"\n", "p.toml");
  ASSERT_FALSE(no_listen);
  EXPECT_NE(no_listen.message().find("p.toml:2: webhook.listen: required with"), std::string::npos)
      << no_listen.message();
  auto name = parse_config("[webhook]\nlisten = \"localhost:8421\"\npublic_url = \"https://h.example.com\"\n",
                           "p.toml");
  ASSERT_FALSE(name);
  EXPECT_EQ(name.message(), "p.toml:2: webhook.listen: the host must be an IP address "
                            "(127.0.0.1, ::1, 0.0.0.0), got \"localhost:8421\"");
  auto bad_url = parse_config("[webhook]\nlisten = \"127.0.0.1:1\"\npublic_url = \"ftp://x\"\n", "p.toml");
  ASSERT_FALSE(bad_url);
  EXPECT_NE(bad_url.message().find("p.toml:3: webhook.public_url: "), std::string::npos);
  auto query = parse_config(
      "[webhook]\nlisten = \"127.0.0.1:1\"\npublic_url = \"https://h.example.com/?a=b\"\n", "p.toml");
  ASSERT_FALSE(query);
  EXPECT_NE(query.message().find("must not have a query"), std::string::npos);
}

TEST(WebhookConfig, PublicUrlMustLeaveRoomForTheHookPathIn200Characters) {
  const std::string base = "https://hooks.example.com/";
  const std::string fits = base + std::string(92 - base.size(), 'a');
  const std::string too_long = fits + "a";
  auto ok = parse_config("[webhook]\nlisten = \"127.0.0.1:1\"\npublic_url = \"" + fits + "\"\n", "p.toml");
  EXPECT_TRUE(ok) << ok.message();
  auto r = parse_config("[webhook]\nlisten = \"127.0.0.1:1\"\npublic_url = \"" + too_long + "\"\n", "p.toml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.message().find("p.toml:3: webhook.public_url: must be at most 92 characters"),
            std::string::npos)
      << r.message();
}

TEST(WebhookSecret, FromTheFileOrTheCredentialsDirectory) {
  TempDir dir;
  Config c;
  c.webhook.listen = "127.0.0.1:8421";
  c.webhook.public_url = "https://h.example.com";
  c.webhook.secret_file = dir.write("secret", "file-secret-0123456789\n").string();
  ::chmod(c.webhook.secret_file.c_str(), 0600);
  auto s = load_webhook_secret(c, env_of({}));
  ASSERT_TRUE(s) << s.message();
  EXPECT_EQ(*s, "file-secret-0123456789");
  dir.write("creds/webhook_secret", "systemd-secret-0123456789");
  auto from_dir = load_webhook_secret(c, env_of({{"CREDENTIALS_DIRECTORY", (dir.path() / "creds").string()}}));
  ASSERT_TRUE(from_dir) << from_dir.message();
  EXPECT_EQ(*from_dir, "systemd-secret-0123456789");
}

TEST(WebhookSecret, RefusedWhenMissingShortOrReadableByOthers) {
  TempDir dir;
  Config c;
  c.webhook.listen = "127.0.0.1:8421";
  c.webhook.public_url = "https://h.example.com";
  auto missing = load_webhook_secret(c, env_of({}));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.message().find("webhook.secret_file: required with webhook.listen"),
            std::string::npos);
  c.webhook.secret_file = dir.write("short", "tooshort").string();
  ::chmod(c.webhook.secret_file.c_str(), 0600);
  auto shrt = load_webhook_secret(c, env_of({}));
  ASSERT_FALSE(shrt);
  EXPECT_NE(shrt.message().find("must be at least 16 characters"), std::string::npos);
  EXPECT_EQ(shrt.message().find("tooshort\""), std::string::npos) << "never the secret";
  c.webhook.secret_file = dir.write("open", "open-secret-0123456789").string();
  ::chmod(c.webhook.secret_file.c_str(), 0644);
  auto open = load_webhook_secret(c, env_of({}));
  ASSERT_FALSE(open);
  EXPECT_NE(open.message().find("other users may access it"), std::string::npos) << open.message();
  EXPECT_EQ(open.message().find("open-secret-0123456789"), std::string::npos);
}

TEST(WebhookSecret, CheckStartupReportsIt) {
  TempDir dir;
  Config c;
  c.store_path = (dir.path() / "p.db").string();
  c.webhook.listen = "127.0.0.1:8421";
  c.webhook.public_url = "https://h.example.com";
  auto check = check_startup(c, env_of({{"CREATIFY_API_ID", "id"}, {"CREATIFY_API_KEY", "key"}}));
  ASSERT_FALSE(check.ok());
  EXPECT_EQ(check.errors[0].what, "webhook.secret_file");
}

}  // namespace
}  // namespace personad
