// Control API: routes, status codes and bodies, submit validation (nothing enqueued from an
// invalid request), the submit check, adopting rows written to the database directly, operator
// actions, metrics; and the Unix socket server and client (a refusal the server answers before
// reading the body reaches the client as the answer it is). Hostile clients: a header over the
// limit (431), accept failing for want of descriptors (backs off, logs once), idle clients (time
// out), too many clients (503 busy), and a submit naming a file the peer could not read.
#include "personad/control.hpp"
#include "personad/job_json.hpp"
#include "personad/eta.hpp"
#include "personad/job_query.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/xattr.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <future>
#include <thread>

#include "descriptor_exhaustion.hpp"
#include "temp_dir.hpp"
#include "tracker_fixture.hpp"

namespace personad::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

class ControlTest : public TrackerFixture {
 protected:
  void SetUp() override {
    TrackerFixture::SetUp();
    make_tracker();
    api_ctl_ = std::make_unique<ControlApi>(*tracker_, *runner_, clock_);
  }
  ControlResponse call(const std::string& method, const std::string& target,
                       const std::string& body = "") {
    return run_op(api_ctl_->handle(ControlRequest{method, target, body, std::nullopt}));
  }
  // For the campaign estimate of GET /v1/stats: a model, and jobs written straight into the
  // store (the tracker does not run them).
  void use_empty_eta_model() {
    auto model = std::make_shared<const EtaModel>(EtaModel::from_histories({}));
    api_ctl_->set_eta_model([model] { return model; });
  }
  void put_directly(const std::string& key) {
    auto r = store_->enqueue({make_spec(key)}, "test", "written directly", clock_.now(),
                             [] { return new_client_ref(); });
    ASSERT_TRUE(r.ok()) << r.message();
  }
  std::string submit_body(const std::vector<PersonaSpec>& specs) {
    json::array a;
    for (const auto& s : specs) a.push_back(spec_to_json(s));
    return json::serialize(json::object{{"source", "test.toml"}, {"personas", a}});
  }
  void warm_stats_eta() { EXPECT_TRUE(run_op(warmed())); }
  boost::asio::awaitable<bool> warmed() {
    co_await api_ctl_->warm_stats_eta();
    co_return true;
  }
  std::unique_ptr<ControlApi> api_ctl_;
};

TEST_F(ControlTest, SubmitQueuesNewKeysAndReportsKnownOnes) {
  auto r = call("POST", "/v1/submit", submit_body({make_spec("a"), make_spec("b")}));
  ASSERT_EQ(r.status, 200) << r.body;
  auto results = json::parse(r.body).at("results").as_array();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].at("result"), "queued");
  ASSERT_TRUE(run_until([&] { return final_state("a") && final_state("b"); }));
  auto again = call("POST", "/v1/submit", submit_body({make_spec("a")}));
  auto res = json::parse(again.body).at("results").as_array();
  EXPECT_EQ(res[0].at("result"), "known");
  EXPECT_EQ(res[0].at("state"), "done");
  EXPECT_EQ(api_.creates, 2);
}

TEST_F(ControlTest, InvalidSubmitEnqueuesNothingAndNamesTheField) {
  PersonaSpec bad = make_spec("bad");
  bad.gender = "x";
  auto r = call("POST", "/v1/submit", submit_body({make_spec("good"), bad}));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("gender"));
  EXPECT_FALSE(*store_->find("good"));
  EXPECT_EQ(call("POST", "/v1/submit", "{not json").status, 400);
  EXPECT_EQ(call("POST", "/v1/submit", R"({"personas": 3})").status, 400);
}

TEST_F(ControlTest, ListShowHistoryStats) {
  call("POST", "/v1/submit", submit_body({make_spec("a")}));
  ASSERT_TRUE(run_until([&] { return final_state("a"); }));
  auto list = call("GET", "/v1/jobs");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(json::parse(list.body).as_array().size(), 1u);
  EXPECT_EQ(json::parse(call("GET", "/v1/jobs?state=done").body).as_array().size(), 1u);
  EXPECT_EQ(json::parse(call("GET", "/v1/jobs?state=queued").body).as_array().size(), 0u);
  EXPECT_EQ(call("GET", "/v1/jobs?state=bogus").status, 400);
  auto show = call("GET", "/v1/jobs/a");
  ASSERT_EQ(show.status, 200);
  EXPECT_EQ(json::parse(show.body).at("state"), "done");
  EXPECT_EQ(call("GET", "/v1/jobs/zzz").status, 404);
  auto hist = json::parse(call("GET", "/v1/jobs/a/history").body).as_array();
  EXPECT_EQ(hist.front().at("to"), "queued");
  EXPECT_EQ(hist.back().at("to"), "done");
  auto stats = json::parse(call("GET", "/v1/stats").body);
  EXPECT_EQ(stats.at("counts").at("done"), 1);
  EXPECT_EQ(call("GET", "/v1/nothing").status, 404);
}

// The daemon's reads are the query side's (job_query), byte for byte: what personactl prints
// from the database when the daemon is down is the same JSON by construction.
TEST_F(ControlTest, ReadsAreAnsweredByTheQuerySide) {
  api_.create_faults = {FakeApi::Fault::permanent};
  call("POST", "/v1/submit", submit_body({make_spec("a"), make_spec("b"), make_spec("c")}));
  ASSERT_TRUE(run_until([&] { return final_state("a") && final_state("b") && final_state("c"); }));
  for (const char* target :
       {"/v1/jobs", "/v1/jobs?state=failed&label=acme", "/v1/select?limit=2&count=1",
        "/v1/select?after=a&limit=1", "/v1/jobs/b", "/v1/jobs/b/history", "/v1/stats",
        "/v1/jobs/nope", "/v1/select?state=sideways", "/v1/select?stuck=1"}) {
    auto daemon = call("GET", target);
    auto direct = answer_query(*store_, target, QueryContext{.now = clock_.now(), .stuck_after = kDefaultStuckAfter});
    EXPECT_EQ(daemon.status, direct.status) << target;
    EXPECT_EQ(daemon.body, json::serialize(direct.body)) << target;
  }
}

// What --stuck means is the daemon's to say ([alerts] stuck_after).
TEST_F(ControlTest, StuckCountsWithTheDaemonsStuckAfter) {
  // A queued row nobody scheduled: it never changes.
  auto idle = store_->enqueue({make_spec("idle")}, "test", "written directly", clock_.now(),
                              [] { return new_client_ref(); });
  ASSERT_TRUE(idle.ok()) << idle.message();
  EXPECT_EQ(json::parse(call("GET", "/v1/jobs?stuck=1").body).as_array().size(), 0u);
  api_ctl_->set_stuck_after(Millis(1));  // the scaled clock passes that at once
  auto stuck = json::parse(call("GET", "/v1/jobs?stuck=1").body).as_array();
  ASSERT_EQ(stuck.size(), 1u);
  EXPECT_EQ(stuck[0].at("key"), "idle");
}

TEST_F(ControlTest, ActionsMapToStatusCodes) {
  api_.create_faults = {FakeApi::Fault::permanent};
  call("POST", "/v1/submit", submit_body({make_spec("f")}));
  ASSERT_TRUE(run_until([&] { return final_state("f"); }));
  EXPECT_EQ(call("POST", "/v1/jobs/f/retry", "{}").status, 409);
  EXPECT_EQ(call("POST", "/v1/jobs/f/cancel").status, 409);
  EXPECT_EQ(call("POST", "/v1/jobs/nope/cancel").status, 404);
  auto r = call("POST", "/v1/jobs/f/retry", R"({"resubmit": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).at("job").at("state"), "queued");
  EXPECT_EQ(call("POST", "/v1/jobs/f/resolve", R"({"adopt":"x"})").status, 409);
}

// A standby host (shared PostgreSQL store, another host active): reads from the store, every
// action forwarded as it came, a submit checked here first, and the role in stats and health.
TEST_F(ControlTest, AStandbyAnswersReadsAndForwardsActions) {
  call("POST", "/v1/submit", submit_body({make_spec("a")}));
  ASSERT_TRUE(run_until([&] { return final_state("a"); }));
  ControlApi standby(*runner_, clock_);
  std::vector<ControlRequest> forwarded;
  standby.set_forward([&](ControlRequest r) -> boost::asio::awaitable<ControlResponse> {
    forwarded.push_back(r);
    co_return ControlResponse{200, R"({"from":"active"})"};
  });
  standby.set_role([] { return std::string("standby"); });
  auto on_standby = [&](const std::string& method, const std::string& target,
                        const std::string& body = "") {
    return run_op(standby.handle(ControlRequest{method, target, body, std::nullopt}));
  };

  auto show = on_standby("GET", "/v1/jobs/a");
  ASSERT_EQ(show.status, 200) << show.body;
  EXPECT_EQ(json::parse(show.body).at("state"), "done");
  EXPECT_EQ(json::parse(on_standby("GET", "/v1/stats").body).at("role"), "standby");
  EXPECT_EQ(json::parse(on_standby("GET", "/v1/health").body).at("role"), "standby");
  EXPECT_EQ(on_standby("GET", "/v1/events?after=0").status, 503);
  EXPECT_TRUE(forwarded.empty());

  EXPECT_EQ(on_standby("POST", "/v1/jobs/a/retry", R"({"resubmit":true})").body,
            R"({"from":"active"})");
  EXPECT_EQ(on_standby("POST", "/v1/bulk/cancel?state=pending").status, 200);
  PersonaSpec bad = make_spec("bad");
  bad.gender = "x";
  EXPECT_EQ(on_standby("POST", "/v1/submit", submit_body({bad})).status, 400);  // checked here
  const std::string good = submit_body({make_spec("b")});
  EXPECT_EQ(on_standby("POST", "/v1/submit", good).status, 200);
  ASSERT_EQ(forwarded.size(), 3u);
  EXPECT_EQ(forwarded[0].target, "/v1/jobs/a/retry");
  EXPECT_EQ(forwarded[0].body, R"({"resubmit":true})");
  EXPECT_EQ(forwarded[1].target, "/v1/bulk/cancel?state=pending");
  EXPECT_EQ(forwarded[2].target, "/v1/submit");
  EXPECT_EQ(forwarded[2].body, good);
  EXPECT_FALSE(*store_->find("b"));  // the standby enqueued nothing itself

  // The active host's own answers carry no role unless it has one.
  EXPECT_FALSE(json::parse(call("GET", "/v1/stats").body).as_object().contains("role"));
}

// The campaign estimate of GET /v1/stats reads every active job: it is worked out once and
// kept for a minute, while the counts beside it are always current.
TEST_F(ControlTest, StatsKeepTheCampaignEstimateForAMinute) {
  use_empty_eta_model();
  put_directly("one");
  auto first = json::parse(call("GET", "/v1/stats").body);
  EXPECT_EQ(first.at("eta").at("jobs"), 1);
  put_directly("two");
  auto second = json::parse(call("GET", "/v1/stats").body);
  EXPECT_EQ(second.at("counts").at("queued"), 2);
  EXPECT_EQ(second.at("eta").at("jobs"), 1);  // the kept estimate
}

// The daemon works the estimate out at start (warm_stats_eta): the first stats call answers
// from it instead of scanning; without a model there is nothing to work out.
TEST_F(ControlTest, AWarmedEstimateAnswersTheFirstStatsCall) {
  put_directly("one");
  warm_stats_eta();  // no model yet: nothing kept
  use_empty_eta_model();
  put_directly("two");
  warm_stats_eta();
  put_directly("three");
  auto first = json::parse(call("GET", "/v1/stats").body);
  EXPECT_EQ(first.at("counts").at("queued"), 3);
  EXPECT_EQ(first.at("eta").at("jobs"), 2);  // the warmed estimate, not a scan of all three
}

// Once the kept estimate is a minute old, a stats call still answers at once, with it, and
// refreshes it in the background: a later call has the new one. No call waits for the scan.
TEST_F(ControlTest, AStatsCallAfterAMinuteAnswersWithTheKeptEstimateAndRefreshesIt) {
  use_empty_eta_model();
  put_directly("one");
  EXPECT_EQ(json::parse(call("GET", "/v1/stats").body).at("eta").at("jobs"), 1);
  put_directly("two");
  const TimePoint stale = clock_.now() + Millis(61'000);
  ASSERT_TRUE(run_until([&] { return clock_.now() >= stale; }));
  auto answered = json::parse(call("GET", "/v1/stats").body);
  EXPECT_EQ(answered.at("counts").at("queued"), 2);
  EXPECT_EQ(answered.at("eta").at("jobs"), 1);  // the kept estimate, at once
  EXPECT_TRUE(run_until(
      [&] { return json::parse(call("GET", "/v1/stats").body).at("eta").at("jobs") == 2; }));
}

TEST_F(ControlTest, MetricsArePrometheusText) {
  call("POST", "/v1/submit", submit_body({make_spec("m")}));
  ASSERT_TRUE(run_until([&] { return final_state("m"); }));
  auto r = call("GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("text/plain"));
  EXPECT_THAT(r.body, HasSubstr("personad_jobs{state=\"done\"} 1"));
  EXPECT_THAT(r.body, HasSubstr("personad_creates_sent_total 1"));
  EXPECT_THAT(r.body, HasSubstr("personad_jobs_needs_operator 0"));
  EXPECT_THAT(r.body, HasSubstr("personad_flagged_total 0"));
}

TEST_F(ControlTest, SocketServerAndClientTalk) {
  std::string path = (dir_ / "ctl.sock").string();
  auto server = ControlServer::listen(
      ioc_.get_executor(), path, [&](ControlRequest r) { return api_ctl_->handle(std::move(r)); },
      nullptr, 4096);
  ASSERT_TRUE(server) << server.message();
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                std::filesystem::perms::group_read | std::filesystem::perms::group_write);
  std::atomic<bool> done{false};
  Result<ControlReply> health = make_error("not run");
  Result<ControlReply> big = make_error("not run");
  Result<ControlReply> huge = make_error("not run");
  std::thread client([&] {
    health = control_call(path, "GET", "/v1/health", "", Millis(5000));
    big = control_call(path, "POST", "/v1/submit", std::string(10000, 'x'), Millis(5000));
    // Far more than the socket buffers hold: the server answers 413 and closes while the client
    // is still writing; the client must read that answer, not fail on the broken pipe.
    huge = control_call(path, "POST", "/v1/submit", std::string(4 << 20, 'x'), Millis(5000));
    done = true;
  });
  run_until([&] { return done.load(); });
  client.join();
  ASSERT_TRUE(health) << health.message();
  EXPECT_EQ(health->status, 200);
  EXPECT_THAT(health->body, HasSubstr("\"status\":\"ok\""));
  ASSERT_TRUE(big) << big.message();
  EXPECT_EQ(big->status, 413);
  ASSERT_TRUE(huge) << huge.message();
  EXPECT_EQ(huge->status, 413);
  EXPECT_THAT(huge->body, HasSubstr("request body larger than 4096 bytes"));
  (*server)->stop();
  EXPECT_FALSE(std::filesystem::exists(path));
  auto down = control_call(path, "GET", "/v1/health", "", Millis(1000));
  ASSERT_FALSE(down);
  EXPECT_EQ(down.kind(), ErrorKind::unavailable);
  // A socket file nobody listens on (a daemon that died) is no daemon either.
  {
    boost::asio::local::stream_protocol::acceptor stale(ioc_);
    stale.open();
    stale.bind(boost::asio::local::stream_protocol::endpoint(path));
  }
  ASSERT_TRUE(std::filesystem::exists(path));
  auto dead = control_call(path, "GET", "/v1/health", "", Millis(1000));
  ASSERT_FALSE(dead);
  EXPECT_EQ(dead.kind(), ErrorKind::unavailable);
}

TEST_F(ControlTest, SubmitCheckValidatesAndEnqueuesNothing) {
  auto ok = call("POST", "/v1/submit/check", submit_body({make_spec("a"), make_spec("b")}));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body).at("valid"), 2);
  PersonaSpec bad = make_spec("bad");
  bad.gender = "x";
  auto r = call("POST", "/v1/submit/check", submit_body({make_spec("c"), bad}));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("gender"));
  EXPECT_FALSE(*store_->find("a"));
  EXPECT_FALSE(*store_->find("c"));
  EXPECT_EQ(api_.creates, 0);
}

// Rows personactl wrote into the database while the socket was not listening are scheduled on
// request, without a reload.
TEST_F(ControlTest, AdoptQueuedSchedulesRowsWrittenDirectly) {
  auto written = store_->enqueue({make_spec("direct")}, "x.toml", "enqueued from x.toml (offline)",
                                 clock_.now(), [] { return new_client_ref(); });
  ASSERT_TRUE(written) << written.message();
  ASSERT_FALSE(run_until([&] { return state("direct") != State::queued; },
                         std::chrono::milliseconds(200)));
  auto r = call("POST", "/v1/adopt-queued");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).at("adopted"), 1);
  ASSERT_TRUE(run_until([&] { return final_state("direct"); }));
  EXPECT_EQ(json::parse(call("POST", "/v1/adopt-queued").body).at("adopted"), 0);
}

TEST_F(ControlTest, KeysLongerThanTheContractAllowsAreRefused) {
  const std::string key(129, 'k');
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/jobs/" + key},
                                                        {"GET", "/v1/jobs/" + key + "/history"},
                                                        {"POST", "/v1/jobs/" + key + "/cancel"}}) {
    auto r = call(method, target);
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_THAT(r.body, HasSubstr("key too long: 129 characters")) << target;
  }
  EXPECT_EQ(call("GET", "/v1/jobs/" + std::string(128, 'k')).status, 404);
}

// ---- The requester's own access to local files ----

// Who owns the files these tests make. Root passes every check (as the kernel lets it), so a
// test running as root gives its files to an ordinary user, or the owner class would never be
// tested; otherwise the files stay the test's user's.
struct FileOwner {
  uid_t uid;
  gid_t gid;
};

FileOwner file_owner() {
  if (::geteuid() == 0) return {4141, 4141};
  return {::geteuid(), ::getegid()};
}

// Gives `p` to file_owner() (as root; otherwise it is the test's user's already).
void own(const std::filesystem::path& p) {
  if (::geteuid() != 0) return;
  ASSERT_EQ(::lchown(p.c_str(), file_owner().uid, file_owner().gid), 0)
      << p << ": " << std::strerror(errno);
}

PeerCredentials stranger() {
  // Anyone but the files' owner, not root, and not the overflow id 65534.
  const uid_t other = file_owner().uid == 4242 ? 4343 : 4242;
  return PeerCredentials{1, other, other, {}};
}

std::string local_spec_body(const std::string& key, const std::string& lipsync,
                            const std::string& consent = "") {
  PersonaSpec s = make_spec(key);
  s.lipsync_input = lipsync;
  s.consent_video = consent.empty() ? s.consent_video : consent;
  json::array a{spec_to_json(s)};
  return json::serialize(json::object{{"source", "personactl"}, {"personas", a}});
}

// A socket submit naming a file only personad may read (the daemon would upload it) is refused
// before personad reads anything for it: 400 naming the field and the path, nothing enqueued.
TEST_F(ControlTest, SubmitNamingAFileTheRequesterCannotReadIsRefused) {
  TempDir media("media");
  const auto secret = media.write("secret.mp4", "personad's eyes only");
  std::filesystem::permissions(secret, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_write);
  own(secret);
  const auto link = media.path() / "x.mp4";
  std::filesystem::create_symlink(secret, link);
  for (const std::string target : {"/v1/submit/check", "/v1/submit"}) {
    auto r = run_op(api_ctl_->handle(ControlRequest{
        "POST", target, local_spec_body("stolen", link.string(), secret.string()), stranger()}));
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(r.body, HasSubstr("\"field\":\"lipsync_input\""));
    EXPECT_THAT(r.body, HasSubstr("\"field\":\"consent_video\""));
    EXPECT_THAT(r.body, HasSubstr("local file '" + link.string() +
                                  "' may not be read by the requesting user (uid 4242"));
    EXPECT_THAT(r.body, HasSubstr("no read permission on '" + secret.string() + "', where '" +
                                  link.string() + "' leads"));
  }
  EXPECT_FALSE(*store_->find("stolen"));
  EXPECT_EQ(api_.creates, 0);
  // The file's owner may; so may root. (Other intake rules may still apply to the spec.)
  PeerCredentials owner{1, file_owner().uid, file_owner().gid, {}};
  for (const auto& peer : {owner, PeerCredentials{1, 0, 0, {}}}) {
    auto r = run_op(api_ctl_->handle(ControlRequest{
        "POST", "/v1/submit/check", local_spec_body("mine", link.string()), peer}));
    EXPECT_THAT(r.body, ::testing::Not(HasSubstr("may not be read by the requesting user")))
        << r.body;
  }
}

class PeerAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    secret_ = dir_.write("secret.mp4");
    std::filesystem::permissions(secret_, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::owner_write);
    own(secret_);
    open_ = dir_.write("open.mp4");
    std::filesystem::permissions(open_, std::filesystem::perms::owner_read |
                                             std::filesystem::perms::owner_write |
                                             std::filesystem::perms::others_read);
    own(open_);
  }
  TempDir dir_{"peer"};
  std::filesystem::path secret_, open_;
};

TEST_F(PeerAccess, ReadPermissionOnTheFileByOwnerGroupAndOthers) {
  const PeerCredentials other = stranger();
  EXPECT_EQ(peer_read_problem(other, open_.string()), "");
  EXPECT_EQ(peer_read_problem(other, secret_.string()),
            "no read permission on '" + secret_.string() + "'");
  const uid_t owner = file_owner().uid;
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, owner, 99999, {}}, secret_.string()), "");
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, 0, 0, {}}, secret_.string()), "");  // root
  // Group read, through the primary or a supplementary group; the owner class comes first.
  const auto group_file = dir_.write("group.mp4");
  std::filesystem::permissions(group_file, std::filesystem::perms::owner_write |
                                               std::filesystem::perms::group_read);
  own(group_file);
  const gid_t gid = file_owner().gid;
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, other.uid, gid, {}}, group_file.string()), "");
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, other.uid, 4242, {7, gid}}, group_file.string()),
            "");
  EXPECT_EQ(peer_read_problem(other, group_file.string()),
            "no read permission on '" + group_file.string() + "'");
  // The owner is judged by the owner bits alone (write only here), whatever its groups.
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, owner, gid, {gid}}, group_file.string()),
            "no read permission on '" + group_file.string() + "'");
}

TEST_F(PeerAccess, SearchPermissionOnEveryDirectoryOnTheWay) {
  const auto inner = dir_.write("private/deeper/v.mp4");
  std::filesystem::permissions(inner, std::filesystem::perms::owner_read |
                                          std::filesystem::perms::owner_write |
                                          std::filesystem::perms::others_read);
  const auto priv = dir_.path() / "private";
  std::filesystem::permissions(priv, std::filesystem::perms::owner_all);
  EXPECT_EQ(peer_read_problem(stranger(), inner.string()),
            "no search permission on directory '" + priv.string() + "'");
  std::filesystem::permissions(priv, std::filesystem::perms::owner_all |
                                         std::filesystem::perms::others_exec);
  EXPECT_EQ(peer_read_problem(stranger(), inner.string()), "");
}

TEST_F(PeerAccess, SymbolicLinksAreFollowedAsTheKernelFollowsThem) {
  const PeerCredentials other = stranger();
  const auto abs_link = dir_.path() / "x.mp4";
  std::filesystem::create_symlink(secret_, abs_link);
  EXPECT_EQ(peer_read_problem(other, abs_link.string()),
            "no read permission on '" + secret_.string() + "', where '" + abs_link.string() +
                "' leads");
  // Relative targets, through "..", and links to links.
  std::filesystem::create_directories(dir_.path() / "sub");
  std::filesystem::create_symlink("../open.mp4", dir_.path() / "sub" / "rel.mp4");
  std::filesystem::create_symlink("sub/rel.mp4", dir_.path() / "chain.mp4");
  EXPECT_EQ(peer_read_problem(other, (dir_.path() / "chain.mp4").string()), "");
  std::filesystem::create_symlink("../secret.mp4", dir_.path() / "sub" / "bad.mp4");
  EXPECT_THAT(peer_read_problem(other, (dir_.path() / "sub" / "bad.mp4").string()),
              HasSubstr("no read permission on '" + secret_.string() + "'"));
  // A link into a directory the peer may not search.
  const auto hidden = dir_.write("hidden/v.mp4");
  std::filesystem::permissions(dir_.path() / "hidden", std::filesystem::perms::owner_all);
  std::filesystem::create_symlink(dir_.path() / "hidden" / "v.mp4", dir_.path() / "h.mp4");
  EXPECT_EQ(peer_read_problem(other, (dir_.path() / "h.mp4").string()),
            "no search permission on directory '" + (dir_.path() / "hidden").string() + "'");
  // A loop, a missing file, a directory, a relative path (left to validate_spec).
  std::filesystem::create_symlink(dir_.path() / "loop2", dir_.path() / "loop1");
  std::filesystem::create_symlink(dir_.path() / "loop1", dir_.path() / "loop2");
  EXPECT_THAT(peer_read_problem(other, (dir_.path() / "loop1").string()),
              HasSubstr("too many symbolic links"));
  EXPECT_THAT(peer_read_problem(other, (dir_.path() / "none.mp4").string()),
              HasSubstr("cannot examine"));
  EXPECT_THAT(peer_read_problem(other, dir_.path().string()), HasSubstr("not a regular file"));
  EXPECT_EQ(peer_read_problem(other, "relative/v.mp4"), "");
}

// A POSIX ACL decides over the mode bits: a named user entry may deny what "others" allow.
TEST_F(PeerAccess, AnAccessAclIsHonoured) {
  const PeerCredentials other = stranger();
  auto entry = [](std::uint16_t tag, std::uint16_t perm, std::uint32_t id) {
    std::string e(8, '\0');
    e[0] = static_cast<char>(tag & 0xff), e[1] = static_cast<char>(tag >> 8);
    e[2] = static_cast<char>(perm & 0xff), e[3] = static_cast<char>(perm >> 8);
    for (int i = 0; i < 4; ++i) e[4 + i] = static_cast<char>(id >> (8 * i) & 0xff);
    return e;
  };
  std::string acl("\x02\0\0\0", 4);
  acl += entry(0x01, 6, 0xffffffff) + entry(0x02, 0, other.uid) + entry(0x04, 4, 0xffffffff) +
         entry(0x10, 4, 0xffffffff) + entry(0x20, 4, 0xffffffff);
  if (::setxattr(open_.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) != 0)
    GTEST_SKIP() << "no POSIX ACLs on " << dir_.path() << ": " << std::strerror(errno);
  EXPECT_EQ(peer_read_problem(other, open_.string()),
            "no read permission on '" + open_.string() + "'");
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, other.uid + 1, other.gid + 1, {}}, open_.string()),
            "");

  // A long ACL (more entries than a first small read takes) is read whole, not replaced by the
  // mode bits, which would let "other" grant what the named entry denies.
  std::string long_acl("\x02\0\0\0", 4);
  long_acl += entry(0x01, 6, 0xffffffff) + entry(0x02, 0, other.uid);
  for (std::uint32_t id = 50000; id < 50100; ++id) long_acl += entry(0x02, 4, id);
  long_acl += entry(0x04, 4, 0xffffffff) + entry(0x10, 4, 0xffffffff) + entry(0x20, 4, 0xffffffff);
  const auto crowded = dir_.write("crowded.mp4");
  ASSERT_EQ(::setxattr(crowded.c_str(), "system.posix_acl_access", long_acl.data(),
                       long_acl.size(), 0),
            0)
      << std::strerror(errno);
  EXPECT_EQ(peer_read_problem(other, crowded.string()),
            "no read permission on '" + crowded.string() + "'");
  EXPECT_EQ(peer_read_problem(PeerCredentials{1, 50099, 50099, {}}, crowded.string()), "");
}

// ---- The socket server against hostile clients ----

// A server on its own thread, answering every request with 200 and recording its peer.
class ServerThread {
 public:
  explicit ServerThread(const std::string& path, std::shared_ptr<spdlog::logger> log = nullptr,
                        std::optional<ControlServerLimits> limits = std::nullopt) {
    auto handler = [this](ControlRequest r) -> boost::asio::awaitable<ControlResponse> {
      {
        std::lock_guard lock(mutex_);
        peers_.push_back(r.peer);
      }
      co_return ControlResponse{200, R"({"status":"ok"})"};
    };
    auto server = limits ? ControlServer::listen(ioc_.get_executor(), path, handler, log, *limits)
                         : ControlServer::listen(ioc_.get_executor(), path, handler, log);
    EXPECT_TRUE(server) << server.message();
    if (server) server_ = std::move(*server);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ServerThread() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
  }
  std::vector<std::optional<PeerCredentials>> peers() {
    std::lock_guard lock(mutex_);
    return peers_;
  }
  ControlServer& server() { return *server_; }
  // The server's counters, read on its own thread (or directly once it is stopped).
  ControlServerStats stats() {
    if (!thread_.joinable()) return server_->stats();
    std::promise<ControlServerStats> p;
    auto f = p.get_future();
    boost::asio::post(ioc_, [&] { p.set_value(server_->stats()); });
    return f.get();
  }
  // Whether the counters come to satisfy `pred` (checked every few ms) within `limit`: a
  // deadline for something the server does on its own, not a measurement.
  template <class Pred>
  bool stats_reach(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (pred(stats())) return true;
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

 private:
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::optional<PeerCredentials>> peers_;
};

int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// What the server sent, and whether it then closed the connection (false: still open after
// `timeout`).
struct Received {
  std::string bytes;
  bool closed = false;
};

Received read_until_closed(int fd, std::chrono::milliseconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  Received out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.bytes.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    out.closed = n == 0 || errno == ECONNRESET;
    return out;
  }
}

double cpu_seconds_of_process() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// A 20,000-character key makes a request target over the header limit: the connection used to
// be reset; the client now reads a 431 with a JSON error.
TEST(ControlServer, HeaderOverTheLimitIsAnsweredWith431) {
  TempDir dir("431");
  const std::string path = (dir.path() / "c.sock").string();
  ServerThread server(path);
  auto r = control_call(path, "GET", "/v1/jobs/" + std::string(20'000, 'k'), "", Millis(5000));
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r->status, 431);
  auto body = json::parse(r->body);
  EXPECT_THAT(std::string(body.at("error").as_string()), HasSubstr("key too long"));
  auto ok = control_call(path, "GET", "/v1/health", "", Millis(5000));
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_EQ(ok->status, 200);
}

// Out of descriptors, accept fails with EMFILE at once, again and again: the server used to
// retry immediately (a core at 100 %, one log line per failure). It now waits 100 ms doubling to
// 1 s, logs once, and serves again as soon as descriptors are free.
TEST(ControlServer, AcceptWithoutDescriptorsBacksOffAndLogsOnce) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizers' runtime needs descriptors of its own (UBSan's vptr check opens a pipe to
  // test memory): with none left it reports "invalid vptr" in fmt's buffer. The ordinary build
  // runs this test.
  GTEST_SKIP() << "exhausts the process's descriptors, which the sanitizer runtime needs";
#endif
  TempDir dir("emfile");
  const std::string path = (dir.path() / "c.sock").string();
  std::ostringstream log_text;
  auto logger = std::make_shared<spdlog::logger>(
      "t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  logger->set_pattern("%l %v");
  ServerThread server(path, logger);

  // Two clients made beforehand: connecting takes no new descriptor on this side.
  const int waiting = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int served = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(waiting, 0);
  ASSERT_GE(served, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);

  personad::testing::DescriptorExhaustion exhaustion;
  ASSERT_TRUE(exhaustion.active());

  const double cpu0 = cpu_seconds_of_process();
  ASSERT_EQ(::connect(waiting, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::connect(served, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(served, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double cpu = cpu_seconds_of_process() - cpu0;

  exhaustion.release();
  EXPECT_EQ(exhaustion.error(), EMFILE);

  // Served once descriptors are back (within the longest backoff, 1 s; 10 s is a deadline).
  const Received answer = read_until_closed(served, std::chrono::seconds(10));
  EXPECT_THAT(answer.bytes, HasSubstr("HTTP/1.1 200")) << answer.bytes;
  ::close(served);
  ::close(waiting);
  server.stop();
  // 100 + 200 + 400 + 800 ms: a handful of tries in 1.5 s, not one per loop turn.
  const auto accept_errors = server.stats().accept_errors;
  EXPECT_GE(accept_errors, 1u);
  EXPECT_LE(accept_errors, 8u) << "the accept loop does not back off";

  const std::string log = log_text.str();
  std::size_t lines = 0;
  for (std::size_t pos = 0; (pos = log.find("accept failed", pos)) != std::string::npos; ++pos)
    ++lines;
  std::cerr << "1.5 s without descriptors: " << accept_errors << " failed accepts, " << cpu
            << " s CPU, " << lines << " log lines\n";
  EXPECT_LT(cpu, 0.25) << "the accept loop spins";
  EXPECT_GE(lines, 1u);
  EXPECT_LE(lines, 2u) << log.substr(0, 2000);
  EXPECT_THAT(log, HasSubstr("Too many open files"));
}

// A client that connects and sends nothing is closed after the idle timeout; beyond the cap,
// clients are answered 503 {"busy": true} at once instead of waiting in the backlog.
TEST(ControlServer, IdleClientsTimeOutAndClientsBeyondTheCapAreToldBusy) {
  TempDir dir("idle");
  const std::string path = (dir.path() / "c.sock").string();
  ControlServerLimits limits;
  limits.max_connections = 2;
  limits.idle_timeout = Millis(400);
  ServerThread server(path, nullptr, limits);
  EXPECT_EQ(server.server().max_connections(), 2u);
  const int idle1 = connect_unix(path);
  const int idle2 = connect_unix(path);
  ASSERT_GE(idle1, 0);
  ASSERT_GE(idle2, 0);
  // Both taken in (not merely waiting in the backlog) before a third client comes.
  ASSERT_TRUE(server.stats_reach([](const ControlServerStats& s) { return s.open == 2; }));
  auto busy = control_call(path, "GET", "/v1/health", "", Millis(5000));
  ASSERT_TRUE(busy) << busy.message();
  EXPECT_EQ(busy->status, 503);
  EXPECT_THAT(busy->body, HasSubstr("\"busy\":true"));
  EXPECT_THAT(busy->body, HasSubstr("2 control connections are open"));
  EXPECT_TRUE(server.peers().empty()) << "a refused client reached the handler";

  // The idle clients are closed by the server, told nothing (the deadline, 10 s, is far beyond
  // the 400 ms idle timeout and far below the 30 s request timeout).
  for (const int fd : {idle1, idle2}) {
    const Received r = read_until_closed(fd, std::chrono::seconds(10));
    EXPECT_TRUE(r.closed) << "an idle client is still connected";
    EXPECT_EQ(r.bytes, "");
    ::close(fd);
  }
  ASSERT_TRUE(server.stats_reach(
      [](const ControlServerStats& s) { return s.open == 0 && s.timed_out == 2; }));
  auto ok = control_call(path, "GET", "/v1/health", "", Millis(5000));
  ASSERT_TRUE(ok) << ok.message();
  EXPECT_EQ(ok->status, 200);

  // A header that trickles in too slowly is cut at the idle timeout as well.
  const int slow = connect_unix(path);
  ASSERT_GE(slow, 0);
  const std::string part = "GET /v1/health HTTP/1.1\r\nHost: t\r\n";
  ASSERT_EQ(::send(slow, part.data(), part.size(), MSG_NOSIGNAL), static_cast<ssize_t>(part.size()));
  const Received r = read_until_closed(slow, std::chrono::seconds(10));
  EXPECT_TRUE(r.closed) << "a half-sent header holds its connection";
  EXPECT_EQ(r.bytes, "");
  ::close(slow);
  EXPECT_TRUE(server.stats_reach(
      [](const ControlServerStats& s) { return s.open == 0 && s.timed_out == 3; }));
  const ControlServerStats stats = server.stats();
  EXPECT_EQ(stats.refused_busy, 1u);
  EXPECT_EQ(stats.accepted, 4u);  // idle1, idle2, ok, slow
  EXPECT_EQ(stats.timed_out, 3u);
  EXPECT_EQ(server.peers().size(), 1u);  // ok's request
}

// The handler learns who is at the other end, from the kernel.
TEST(ControlServer, RequestsCarryThePeersCredentials) {
  TempDir dir("cred");
  const std::string path = (dir.path() / "c.sock").string();
  ServerThread server(path);
  auto r = control_call(path, "GET", "/v1/health", "", Millis(5000));
  ASSERT_TRUE(r) << r.message();
  auto peers = server.peers();
  ASSERT_EQ(peers.size(), 1u);
  ASSERT_TRUE(peers[0].has_value());
  EXPECT_EQ(peers[0]->uid, ::geteuid());
  EXPECT_EQ(peers[0]->gid, ::getegid());
  EXPECT_EQ(peers[0]->pid, ::getpid());
  std::vector<gid_t> mine(static_cast<std::size_t>(std::max(::getgroups(0, nullptr), 0)));
  ::getgroups(static_cast<int>(mine.size()), mine.data());
  std::vector<gid_t> theirs = peers[0]->groups;
  std::sort(mine.begin(), mine.end());
  std::sort(theirs.begin(), theirs.end());
  EXPECT_EQ(theirs, mine);
}

}  // namespace
}  // namespace personad::testing
