// Issue 10's "done when" for webhooks, with the real binaries: against a simulator that calls
// webhooks and polls an hour apart, jobs reach their final state within 2 s of the server's
// change; with every callback dropped, polling alone still finishes them.
#include <sys/stat.h>

#include "harness.hpp"
#include "personad/webhook_token.hpp"

namespace personad::it {
namespace {

using namespace std::chrono;

// A port free a moment ago (the daemon binds it next).
int free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(
      ioc, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

constexpr const char* kSecret = "it-webhook-secret-9c1d7e5a";

// The [webhook] section of the configuration, its secret file written.
std::string webhook_section(Environment& env, int hook_port) {
  const auto secret = env.dir() / "webhook_secret";
  write_file(secret, kSecret);
  ::chmod(secret.c_str(), 0600);
  std::ostringstream c;
  c << "[webhook]\nlisten = \"127.0.0.1:" << hook_port << "\"\n"
    << "public_url = \"http://127.0.0.1:" << hook_port << "/personad\"\n"
    << "secret_file = \"" << secret.string() << "\"\n";
  return c.str();
}

std::string state_of(const json::object& job) { return std::string(job.at("state").as_string()); }

TEST(Webhook, JobsAreDoneWithinTwoSecondsOfTheServersChangeWithPollsAnHourApart) {
  Environment env("webhook-fast");
  int hook_port = 0;
  constexpr int kJobs = 5;
  // Real time: no persona finishes on its own in this test.
  ASSERT_TRUE(env.start(
      {.batches = {{"hooked.toml", make_batch("hooked", kJobs)}},
       .poll = "first_after = \"1h\"\ninitial_interval = \"1h\"\nmultiplier = 1.0\n"
               "max_interval = \"1h\"\njitter = 0.0\ngive_up_after = \"7d\"\n",
       .extra_sections = [&] { return webhook_section(env, hook_port = free_port()); }}));

  // Created, each with our callback URL (the batch names none).
  ASSERT_TRUE(wait_until(
      [&] {
        auto js = jobs(env);
        if (js.size() != kJobs) return false;
        for (auto& [k, j] : js)
          if (state_of(j) != "pending") return false;
        return true;
      },
      seconds(20)))
      << read_file(env.log_path());
  auto created = jobs(env);
  for (auto& p : env.sim_personas()) {
    const std::string url(p.at("webhook_url").as_string());
    EXPECT_EQ(url.rfind("http://127.0.0.1:" + std::to_string(hook_port) + "/personad/hooks/", 0), 0u)
        << url;
  }
  for (auto& [key, j] : created) {
    const std::string ref(j.at("client_ref").as_string());
    bool found = false;
    for (auto& p : env.sim_personas())
      found = found || p.at("webhook_url").as_string() ==
                           "http://127.0.0.1:" + std::to_string(hook_port) + "/personad/hooks/" +
                               ref + "/" + webhook_token(kSecret, ref);
    EXPECT_TRUE(found) << key;
    EXPECT_TRUE(j.at("spec").at("webhook_url").is_null()) << "the stored spec stays the operator's";
  }

  // The server finishes each persona (a pin fires its webhook at once); the next poll is an
  // hour away, so only the callback can tell personad in time.
  int n = 0;
  for (auto& [key, j] : created) {
    const std::string id(j.at("remote_id").as_string());
    const std::string status = n++ % 2 ? "done" : "failed";
    const auto changed = steady_clock::now();
    http(env.sim_port(), "POST", "/_sim/personas/" + id,
         status == "done" ? R"({"process_status": "done", "is_active": true})"
                          : R"({"process_status": "failed", "failed_reason": "blurry"})");
    ASSERT_TRUE(wait_until(
        [&] {
          auto v = env.ctl_json({"show", key, "--json"});
          return v.is_object() && v.at("state") == json::value(status);
        },
        seconds(5)))
        << key << "\n" << read_file(env.log_path());
    EXPECT_LT(steady_clock::now() - changed, seconds(2)) << key;
  }
  for (auto& [key, j] : jobs(env)) EXPECT_LE(j.at("polls").to_number<std::int64_t>(), 1) << key;
  const std::string log = read_file(env.log_path());
  EXPECT_NE(log.find("webhook_listening"), std::string::npos);
  EXPECT_EQ(count_of(log, " action=poll"), static_cast<std::size_t>(kJobs)) << log;
  EXPECT_EQ(log.find(kSecret), std::string::npos) << "the secret is never logged";
}

TEST(Webhook, WithEveryCallbackDroppedPollingStillFinishesThem) {
  Environment env("webhook-dropped");
  constexpr int kJobs = 6;
  // Six stages of about 30 s of simulated time each: a few seconds in all.
  ASSERT_TRUE(env.start(
      {.sim_flags = {"--time-scale", "100", "--stage-duration", "30s", "--webhook-drop", "1",
                     "--seed", "7"},
       .batches = {{"dropped.toml", make_batch("dropped", kJobs, {"", "[fail]", "[reject]"})}},
       .poll = "first_after = \"300ms\"\ninitial_interval = \"300ms\"\nmultiplier = 1.5\n"
               "max_interval = \"1s\"\nmax_interval_with_webhook = \"1s\"\njitter = 0.2\n"
               "give_up_after = \"10m\"\n",
       .extra_sections = [&] { return webhook_section(env, free_port()); }}));
  ASSERT_TRUE(wait_until([&] { return all_final(env, kJobs); }, seconds(60)))
      << read_file(env.log_path());
  expect_consistent_with_server(env, kJobs);
  boost::system::error_code ec;
  auto stats = json::parse(http(env.sim_port(), "GET", "/_sim/stats"), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(stats.at("webhooks").at("dropped"), kJobs);
  EXPECT_EQ(stats.at("webhooks").at("queued"), 0);
}

}  // namespace
}  // namespace personad::it
