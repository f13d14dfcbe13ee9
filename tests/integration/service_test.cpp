// The daemon as a service: sd_notify messages on a fake NOTIFY_SOCKET (READY, STATUS,
// WATCHDOG, STOPPING), SIGHUP picking up a new batch file, and the on_transition hook.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <mutex>

#include "harness.hpp"

namespace personad::it {
namespace {

using ::testing::HasSubstr;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A datagram socket standing in for systemd's notification socket.
class FakeNotifySocket {
 public:
  explicit FakeNotifySocket(const fs::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    reader_ = std::thread([this] {
      char buf[4096];
      while (!stop_) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        std::lock_guard<std::mutex> lock(mu_);
        messages_.emplace_back(buf, static_cast<std::size_t>(n));
      }
    });
  }
  ~FakeNotifySocket() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  int count_with(const std::string& needle) {
    int n = 0;
    for (const auto& m : messages()) n += m.find(needle) != std::string::npos;
    return n;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread reader_;
  std::mutex mu_;
  std::vector<std::string> messages_;
};

TEST(Service, NotifiesReadyStatusWatchdogAndStopping) {
  Environment env("notify");
  ASSERT_TRUE(env.start_sim({"--time-scale", "100000"}));
  env.write_config();
  write_file(env.dir() / "batches.d" / "n.toml", make_batch("nt", 3));
  FakeNotifySocket notify(env.dir() / "notify.sock");
  ASSERT_TRUE(notify.ok());
  env.start_daemon({{"NOTIFY_SOCKET", (env.dir() / "notify.sock").string()},
                    {"WATCHDOG_USEC", "200000"}});
  ASSERT_TRUE(wait_until([&] { return notify.count_with("READY=1") >= 1; }, seconds(10)));
  ASSERT_TRUE(wait_until([&] { return notify.count_with("WATCHDOG=1") >= 5; }, seconds(5)));
  ASSERT_TRUE(wait_until([&] { return all_final(env, 3); }, seconds(60)));
  ASSERT_TRUE(wait_until([&] { return notify.count_with("STATUS=") >= 1; }, seconds(5)));
  std::string last_status;
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& m : notify.messages())
          if (m.rfind("STATUS=", 0) == 0) last_status = m;
        return last_status.find("done=3") != std::string::npos;
      },
      seconds(5)))
      << last_status;
  EXPECT_THAT(last_status, HasSubstr("queued=0"));
  EXPECT_THAT(last_status, HasSubstr("pending=0"));

  env.daemon()->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return notify.count_with("RELOADING=1") == 1; }, seconds(5)));
  ASSERT_TRUE(wait_until([&] { return notify.count_with("READY=1") >= 2; }, seconds(5)));
  env.stop_daemon(SIGTERM);
  EXPECT_EQ(notify.count_with("STOPPING=1"), 1);
}

TEST(Service, SighupPicksUpANewBatchFileWithinTwoSeconds) {
  Environment env("sighup");
  ASSERT_TRUE(env.start_sim({"--time-scale", "100000"}));
  env.write_config();
  write_file(env.dir() / "batches.d" / "first.toml", make_batch("first", 2));
  env.start_daemon();
  ASSERT_TRUE(env.wait_for_socket());
  ASSERT_TRUE(wait_until([&] { return all_final(env, 2); }, seconds(60)));

  write_file(env.dir() / "batches.d" / "second.toml", make_batch("second", 4));
  auto t0 = std::chrono::steady_clock::now();
  env.daemon()->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return env.sim_personas().size() == 6; }, seconds(2)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(2));
  ASSERT_TRUE(wait_until(
      [&] { return read_file(env.log_path()).find("reloading") != std::string::npos; },
      seconds(2)));
  ASSERT_TRUE(wait_until([&] { return all_final(env, 6); }, seconds(60)));
  expect_consistent_with_server(env, 6);  // the first file's keys were not sent again
}

TEST(Service, DroppedBatchFileIsPickedUpWithoutASignal) {
  Environment env("inotify");
  ASSERT_TRUE(env.start_sim({"--time-scale", "100000"}));
  env.write_config();
  env.start_daemon();
  ASSERT_TRUE(env.wait_for_socket());
  // Written elsewhere and moved in, as a careful operator would; and one written in place.
  write_file(env.dir() / "staged.toml", make_batch("moved", 3));
  fs::rename(env.dir() / "staged.toml", env.dir() / "batches.d" / "moved.toml");
  write_file(env.dir() / "batches.d" / "inplace.toml", make_batch("inplace", 2));
  ASSERT_TRUE(wait_until([&] { return env.sim_personas().size() == 5; }, seconds(2)));
  ASSERT_TRUE(wait_until([&] { return all_final(env, 5); }, seconds(60)));
  expect_consistent_with_server(env, 5);
}

TEST(Service, HookRunsOncePerTransitionWithItsVariables) {
  Environment env("hook");
  ASSERT_TRUE(env.start_sim({"--time-scale", "100000"}));
  fs::path hook = env.dir() / "hook.sh";
  fs::path out = env.dir() / "hook.log";
  write_file(hook, "#!/bin/sh\nprintf '%s|%s|%s|%s|%s|%s|%s\\n' \"$PERSONA_KEY\" \"$REMOTE_ID\" "
                   "\"$FROM_STATE\" \"$TO_STATE\" \"$REMOTE_STATUS\" \"$REASON\" "
                   "\"${CREATIFY_API_KEY:-no-secret}\" >> " + out.string() + "\n");
  fs::permissions(hook, fs::perms::owner_all);
  env.write_config("", "", "[hooks]\non_transition = \"" + hook.string() + "\"\n");
  write_file(env.dir() / "batches.d" / "h.toml", make_batch("hk", 3));
  env.start_daemon();
  ASSERT_TRUE(env.wait_for_socket());
  ASSERT_TRUE(wait_until([&] { return all_final(env, 3); }, seconds(60)));

  std::size_t rows = 0;
  for (auto& [key, j] : jobs(env)) rows += env.ctl_json({"history", key, "--json"}).as_array().size();
  ASSERT_TRUE(wait_until(
      [&] {
        auto text = read_file(out);
        return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) >= rows;
      },
      seconds(10)));
  std::string text = read_file(out);
  EXPECT_EQ(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')), rows);
  EXPECT_THAT(text, HasSubstr("hk-0||queued|submitting||submitting create request|no-secret"));
  auto j = jobs(env)["hk-1"];
  EXPECT_THAT(text, HasSubstr("hk-1|" + std::string(j.at("remote_id").as_string()) +
                              "|pending|done|done|"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr(Environment::kApiKey)));
}

TEST(Service, FailingHookIsLoggedAndCountedButChangesNothing) {
  Environment env("hookfail");
  ASSERT_TRUE(env.start_sim({"--time-scale", "100000"}));
  fs::path hook = env.dir() / "fail.sh";
  write_file(hook, "#!/bin/sh\nexit 3\n");
  fs::permissions(hook, fs::perms::owner_all);
  env.write_config("", "", "[hooks]\non_transition = \"" + hook.string() + "\"\n");
  write_file(env.dir() / "batches.d" / "h.toml", make_batch("hf", 1));
  env.start_daemon();
  ASSERT_TRUE(env.wait_for_socket());
  ASSERT_TRUE(wait_until([&] { return all_final(env, 1); }, seconds(60)));
  ASSERT_TRUE(wait_until(
      [&] { return read_file(env.log_path()).find("hook_failed") != std::string::npos; },
      seconds(5)));
  EXPECT_THAT(read_file(env.log_path()), HasSubstr("exit status 3"));
  EXPECT_EQ(jobs(env)["hf-0"].at("state"), "done");
}

}  // namespace
}  // namespace personad::it
