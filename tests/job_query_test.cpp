// The query side: its routes answer from the store alone, with the contract's JSON, selections
// from the query string, pages that say where the next one starts (and how much follows), and
// errors as {error} with the status the control socket replies with.
#include "personad/job_query.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "personad/job_json.hpp"
#include "temp_dir.hpp"

namespace personad::testing {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

PersonaSpec spec(const std::string& key, std::vector<std::string> labels) {
  PersonaSpec s;
  s.key = key;
  s.gender = "f";
  s.creator_name = "Jane, \"JD\" Doe";
  s.video_scene = "office";
  s.lipsync_input = "https://cdn.example.com/l.mp4";
  s.labels = std::move(labels);
  return s;
}

// A job object without what the query side adds to the row's fields (stuck, the estimate).
json::object row_fields(const json::value& job) {
  json::object o = job.as_object();
  for (const char* k : {"stuck", "eta", "eta_p90", "eta_basis"}) o.erase(k);
  return o;
}

class JobQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = Store::open((dir_.path() / "p.db").string(), OpenMode::read_write);
    ASSERT_TRUE(s) << s.message();
    store_ = std::move(*s);
    int ref = 0;
    auto refs = [&] { return "ref-" + std::to_string(++ref); };
    ASSERT_TRUE(store_->enqueue({spec("b-2", {"acme"}), spec("a-1", {"acme", "vip"})},
                                "batches.d/acme.toml", "batch", kT0, refs)
                    .ok());
    ASSERT_TRUE(store_->enqueue({spec("c-3", {}), spec("d-4", {"zeta"})}, "personactl", "submit",
                                kT0 + Millis(1000), refs)
                    .ok());
    // d-4 fails with a reason a spreadsheet would choke on.
    Job d = **store_->find("d-4");
    for (State to : {State::submitting, State::failed}) {
      Transition t{.job_id = d.id, .at = kT0 + Millis(2000), .from = d.state, .to = to,
                   .remote_status = {}, .reason = "test"};
      d.state = to;
      d.updated_at = kT0 + Millis(2000);
      if (to == State::failed) d.failed_reason = "invalid, \"consent\"\nvideo";
      ASSERT_TRUE(store_->apply(d, t).ok());
    }
  }
  QueryAnswer get(const std::string& target) {
    return answer_query(*store_, target, QueryContext{kT0 + Millis(5000), kDefaultStuckAfter});
  }
  std::vector<std::string> keys(const json::value& jobs) {
    std::vector<std::string> out;
    for (const auto& j : jobs.as_array()) out.emplace_back(j.at("key").as_string());
    return out;
  }

  TempDir dir_{"query"};
  std::unique_ptr<Store> store_;
};

TEST_F(JobQueryTest, ListIsEveryMatchingJobInTheSelectionsOrder) {
  auto all = get("/v1/jobs");
  ASSERT_EQ(all.status, 200) << json::serialize(all.body);
  // created_at, then key: a-1 and b-2 came in the same millisecond.
  EXPECT_EQ(keys(all.body), (std::vector<std::string>{"a-1", "b-2", "c-3", "d-4"}));
  EXPECT_EQ(row_fields(all.body.as_array()[0]), job_to_json(**store_->find("a-1")));
  EXPECT_EQ(keys(get("/v1/jobs?state=failed").body), std::vector<std::string>{"d-4"});
  EXPECT_EQ(keys(get("/v1/jobs?label=acme&label=zeta").body),
            (std::vector<std::string>{"a-1", "b-2", "d-4"}));
  EXPECT_EQ(keys(get("/v1/jobs?source=personactl&key=%5Bcd%5D-*").body),
            (std::vector<std::string>{"c-3", "d-4"}));
  EXPECT_EQ(keys(get("/v1/jobs?since=2026-09-21T14:13:20.500Z").body),
            (std::vector<std::string>{"c-3", "d-4"}));
  EXPECT_EQ(keys(get("/v1/jobs?limit=2&after=a-1").body),
            (std::vector<std::string>{"b-2", "c-3"}));
}

TEST_F(JobQueryTest, SelectAnswersOnePageAndWhereTheNextStarts) {
  auto first = get("/v1/select?limit=3&count=1");
  ASSERT_EQ(first.status, 200) << json::serialize(first.body);
  EXPECT_EQ(keys(first.body.at("jobs")), (std::vector<std::string>{"a-1", "b-2", "c-3"}));
  EXPECT_EQ(first.body.at("next_after"), "c-3");
  EXPECT_EQ(first.body.at("more"), 1);
  auto last = get("/v1/select?limit=3&after=c-3");
  ASSERT_EQ(last.status, 200);
  EXPECT_EQ(keys(last.body.at("jobs")), std::vector<std::string>{"d-4"});
  EXPECT_TRUE(last.body.at("next_after").is_null());
  EXPECT_TRUE(last.body.at("more").is_null());  // not asked for
  auto whole = get("/v1/select");  // a default page holds them all
  EXPECT_EQ(keys(whole.body.at("jobs")).size(), 4u);
  EXPECT_TRUE(whole.body.at("next_after").is_null());
  auto none = get("/v1/select?state=expired&count=1");
  EXPECT_TRUE(none.body.at("jobs").as_array().empty());
  EXPECT_EQ(none.body.at("more"), 0);
}

TEST_F(JobQueryTest, ShowHistoryAndStats) {
  auto show = get("/v1/jobs/d-4");
  ASSERT_EQ(show.status, 200);
  EXPECT_EQ(row_fields(show.body), job_to_json(**store_->find("d-4")));
  EXPECT_EQ(show.body.at("stuck"), false);
  auto history = get("/v1/jobs/d-4/history");
  ASSERT_EQ(history.status, 200);
  EXPECT_EQ(history.body.as_array().size(), 3u);
  EXPECT_EQ(history.body.as_array().back().at("to"), "failed");
  auto stats = get("/v1/stats");
  ASSERT_EQ(stats.status, 200);
  EXPECT_EQ(stats.body.at("counts").at("failed"), 1);
  EXPECT_EQ(stats.body.at("total"), 4);
}

TEST_F(JobQueryTest, ErrorsSayWhatAndCarryTheirStatus) {
  auto unknown = get("/v1/jobs/nope");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.body.at("error"), "unknown key 'nope'");
  EXPECT_EQ(get("/v1/jobs/nope/history").status, 404);
  auto long_key = get("/v1/jobs/" + std::string(129, 'k'));
  EXPECT_EQ(long_key.status, 400);
  EXPECT_THAT(std::string(long_key.body.at("error").as_string()), HasSubstr("key too long"));
  auto bad_state = get("/v1/jobs?state=sideways");
  EXPECT_EQ(bad_state.status, 400);
  EXPECT_THAT(std::string(bad_state.body.at("error").as_string()),
              HasSubstr("state: unknown state 'sideways'"));
  EXPECT_EQ(get("/v1/select?colour=red").status, 400);
  EXPECT_EQ(get("/v1/select?count=maybe").status, 400);
  auto after = get("/v1/select?after=gone");
  EXPECT_EQ(after.status, 400);
  EXPECT_THAT(std::string(after.body.at("error").as_string()), HasSubstr("after: unknown key"));
  EXPECT_EQ(get("/v1/nothing").status, 404);
}

TEST_F(JobQueryTest, OnlyGetRoutesOfTheQuerySideAreItsOwn) {
  for (const char* t : {"/v1/jobs", "/v1/jobs?state=failed", "/v1/select?limit=1", "/v1/jobs/a-1",
                        "/v1/jobs/a-1/history", "/v1/stats"})
    EXPECT_TRUE(is_query_route(t)) << t;
  for (const char* t : {"/v1/jobs/a-1/cancel", "/v1/submit", "/v1/health", "/metrics", "/v2/jobs",
                        "/v1/adopt-queued"})
    EXPECT_FALSE(is_query_route(t)) << t;
}

}  // namespace
}  // namespace personad::testing
