// Control API: routes, status codes and bodies, submit validation (nothing enqueued from an
// invalid request), the submit check, adopting rows written to the database directly, operator
// actions, metrics; and the Unix socket server and client (a refusal the server answers before
// reading the body reaches the client as the answer it is).
#include "personad/control.hpp"
#include "personad/job_json.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/json.hpp>
#include <thread>

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
    return run_op(api_ctl_->handle(ControlRequest{method, target, body}));
  }
  std::string submit_body(const std::vector<PersonaSpec>& specs) {
    json::array a;
    for (const auto& s : specs) a.push_back(spec_to_json(s));
    return json::serialize(json::object{{"source", "test.toml"}, {"personas", a}});
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

}  // namespace
}  // namespace personad::testing
