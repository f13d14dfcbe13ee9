// Tests of the API and admin handlers without sockets: authentication, routing, list
// pagination and formats, --no-labels, and the /_sim/ endpoints (pin, stats, faults, reset).
#include "sim_api.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "admin_api.hpp"

namespace creatify_sim {
namespace {

namespace json = boost::json;
using namespace std::chrono;

Request make_request(http::verb method, std::string target, std::string body = {},
                     bool with_auth = true) {
  Request req{method, target, 11};
  req.set(http::field::host, "sim.test:1234");
  if (with_auth) {
    req.set("X-API-ID", "id");
    req.set("X-API-KEY", "key");
  }
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  return req;
}

json::value body_json(const Response& res) { return json::parse(res.body()); }

std::string create_body(const std::string& name, const std::string& label = "l") {
  return json::serialize(json::object{{"gender", "m"},
                                      {"creator_name", name},
                                      {"video_scene", "office"},
                                      {"lipsync_input", "https://x/l.mp4"},
                                      {"consent_video", "https://x/c.mp4"},
                                      {"labels", json::array{label}}});
}

class SimApiTest : public ::testing::Test {
 protected:
  ManualClock clock{SimTime(sys_days(year(2024) / 1 / 1))};
  PersonaBook book{clock, BookSettings{hours(1), 0.0, 1}};
  SimApi api{book, ApiSettings{}};

  std::string create(const std::string& name, const std::string& label = "l") {
    const Response res =
        api.handle(make_request(http::verb::post, "/api/personas_v2/", create_body(name, label)));
    EXPECT_EQ(res.result(), http::status::created) << res.body();
    return std::string(body_json(res).at("id").as_string());
  }
};

TEST_F(SimApiTest, CreateThenGetById) {
  const std::string id = create("Jane");
  const Response res = api.handle(make_request(http::verb::get, "/api/personas/" + id + "/"));
  ASSERT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  const json::value p = body_json(res);
  EXPECT_EQ(p.at("id"), id.c_str());
  EXPECT_EQ(p.at("process_status"), "pending");
  EXPECT_EQ(p.at("labels"), json::array{"l"});

  clock.advance(hours(24));
  EXPECT_EQ(body_json(api.handle(make_request(http::verb::get, "/api/personas/" + id + "/")))
                .at("process_status"),
            "done");
}

TEST_F(SimApiTest, CreateValidationErrorIs400WithFieldErrors) {
  const Response res =
      api.handle(make_request(http::verb::post, "/api/personas_v2/", R"({"gender":"q"})"));
  EXPECT_EQ(res.result(), http::status::bad_request);
  EXPECT_EQ(body_json(res).at("gender"), json::array{"\"q\" is not a valid choice."});
  EXPECT_EQ(book.size(), 0u);
}

TEST_F(SimApiTest, UnknownIdAndUnknownPathAre404) {
  Response res = api.handle(make_request(http::verb::get, "/api/personas/nope/"));
  EXPECT_EQ(res.result(), http::status::not_found);
  EXPECT_EQ(body_json(res), json::parse(R"({"detail": "Not found."})"));
  res = api.handle(make_request(http::verb::get, "/api/other/"));
  EXPECT_EQ(res.result(), http::status::not_found);
  res = api.handle(make_request(http::verb::get, "/api/personas_v2"));  // no trailing slash
  EXPECT_EQ(res.result(), http::status::not_found);
}

TEST_F(SimApiTest, WrongMethodIs405) {
  const Response res = api.handle(make_request(http::verb::delete_, "/api/personas_v2/"));
  EXPECT_EQ(res.result(), http::status::method_not_allowed);
  EXPECT_EQ(res[http::field::allow], "GET, POST");
  EXPECT_EQ(body_json(res), json::parse(R"({"detail": "Method \"DELETE\" not allowed."})"));
}

TEST_F(SimApiTest, MissingCredentialsAre401) {
  const Response res = api.handle(make_request(http::verb::get, "/api/personas/", {}, false));
  EXPECT_EQ(res.result(), http::status::unauthorized);
  EXPECT_EQ(body_json(res), json::parse(R"({"detail": "Invalid API credentials."})"));
}

TEST_F(SimApiTest, ConfiguredCredentialsMustMatchExactly) {
  api.settings().api_id = "id";
  api.settings().api_key = "secret";
  EXPECT_EQ(api.handle(make_request(http::verb::get, "/api/personas/")).result(),
            http::status::unauthorized);  // key "key" != "secret"
  Request req = make_request(http::verb::get, "/api/personas/");
  req.set("X-API-KEY", "secret");
  EXPECT_EQ(api.handle(req).result(), http::status::ok);
}

TEST_F(SimApiTest, PaginatedListIsNewestFirstWithAbsoluteLinks) {
  for (int i = 0; i < 45; ++i) create("p" + std::to_string(i));

  json::value page1 = body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/")));
  EXPECT_EQ(page1.at("count"), 45);
  EXPECT_EQ(page1.at("next"), "http://sim.test:1234/api/personas_v2/?page=2&page_size=20");
  EXPECT_TRUE(page1.at("previous").is_null());
  ASSERT_EQ(page1.at("results").as_array().size(), 20u);
  EXPECT_EQ(page1.at("results").at(0).at("creator_name"), "p44");

  json::value page3 =
      body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/?page=3")));
  ASSERT_EQ(page3.at("results").as_array().size(), 5u);
  EXPECT_EQ(page3.at("results").at(4).at("creator_name"), "p0");
  EXPECT_TRUE(page3.at("next").is_null());
  EXPECT_EQ(page3.at("previous"), "http://sim.test:1234/api/personas_v2/?page=2&page_size=20");

  const Response past = api.handle(make_request(http::verb::get, "/api/personas_v2/?page=4"));
  EXPECT_EQ(past.result(), http::status::not_found);
  EXPECT_EQ(body_json(past), json::parse(R"({"detail": "Invalid page."})"));
}

TEST_F(SimApiTest, PageSizeQueryParameter) {
  for (int i = 0; i < 5; ++i) create("p" + std::to_string(i));
  json::value page = body_json(
      api.handle(make_request(http::verb::get, "/api/personas/paginated/?page=2&page_size=2")));
  EXPECT_EQ(page.at("results").as_array().size(), 2u);
  EXPECT_EQ(page.at("results").at(0).at("creator_name"), "p2");
  EXPECT_EQ(page.at("next"), "http://sim.test:1234/api/personas/paginated/?page=3&page_size=2");
  // An unusable page_size falls back to the default; page must be a positive integer.
  page = body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/?page_size=zero")));
  EXPECT_EQ(page.at("results").as_array().size(), 5u);
  EXPECT_EQ(api.handle(make_request(http::verb::get, "/api/personas_v2/?page=0")).result(),
            http::status::not_found);
  EXPECT_EQ(api.handle(make_request(http::verb::get, "/api/personas_v2/?page=x")).result(),
            http::status::not_found);
}

TEST_F(SimApiTest, PageSizeIsCappedAt100) {
  for (int i = 0; i < 150; ++i) create("p" + std::to_string(i));
  const json::value page =
      body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/?page_size=1000")));
  EXPECT_EQ(page.at("results").as_array().size(), 100u);
  EXPECT_EQ(page.at("next"), "http://sim.test:1234/api/personas_v2/?page=2&page_size=100");
}

TEST_F(SimApiTest, EmptyListIsAValidFirstPage) {
  const json::value page =
      body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/")));
  EXPECT_EQ(page, json::parse(R"({"count": 0, "next": null, "previous": null, "results": []})"));
}

TEST_F(SimApiTest, PlainArrayLists) {
  create("old");
  create("new");
  const json::value all = body_json(api.handle(make_request(http::verb::get, "/api/personas/")));
  ASSERT_TRUE(all.is_array());
  ASSERT_EQ(all.as_array().size(), 2u);
  EXPECT_EQ(all.at(0).at("creator_name"), "new");

  api.settings().list_format = ListFormat::array;
  const json::value v2 = body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/")));
  ASSERT_TRUE(v2.is_array());
  EXPECT_EQ(v2.as_array().size(), 2u);
}

TEST_F(SimApiTest, NoLabelsOmitsThemFromListsOnly) {
  const std::string id = create("Jane");
  api.settings().labels_in_lists = false;
  const json::value list =
      body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/")));
  EXPECT_FALSE(list.at("results").at(0).as_object().contains("labels"));
  const json::value all = body_json(api.handle(make_request(http::verb::get, "/api/personas/")));
  EXPECT_FALSE(all.at(0).as_object().contains("labels"));
  const json::value one =
      body_json(api.handle(make_request(http::verb::get, "/api/personas/" + id + "/")));
  EXPECT_EQ(one.at("labels"), json::array{"l"});
}

TEST(SimApiListLag, ListsCountAndPageOnlyListedPersonas) {
  ManualClock clock{SimTime(sys_days(year(2024) / 1 / 1))};
  BookSettings settings{hours(1), 0.0, 1};
  settings.list_lag = seconds(10);
  PersonaBook book{clock, settings};
  SimApi api{book, ApiSettings{}};
  const auto create = [&](const std::string& name) {
    const Response res =
        api.handle(make_request(http::verb::post, "/api/personas_v2/", create_body(name)));
    EXPECT_EQ(res.result(), http::status::created) << res.body();
    return std::string(body_json(res).at("id").as_string());
  };
  for (int i = 0; i < 3; ++i) create("early" + std::to_string(i));
  clock.advance(seconds(5));
  const std::string late = create("late");
  // The new persona is there by id at once, but in no list yet.
  EXPECT_EQ(api.handle(make_request(http::verb::get, "/api/personas/" + late + "/")).result(),
            http::status::ok);
  EXPECT_EQ(body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/"))),
            json::parse(R"({"count": 0, "next": null, "previous": null, "results": []})"));
  EXPECT_TRUE(
      body_json(api.handle(make_request(http::verb::get, "/api/personas/"))).as_array().empty());

  clock.advance(seconds(5));  // the first three are listed, "late" is not
  json::value page =
      body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/?page_size=2")));
  EXPECT_EQ(page.at("count"), 3);
  EXPECT_EQ(page.at("results").as_array().size(), 2u);
  EXPECT_EQ(page.at("results").at(0).at("creator_name"), "early2");
  page = body_json(
      api.handle(make_request(http::verb::get, "/api/personas_v2/?page=2&page_size=2")));
  EXPECT_EQ(page.at("results").as_array().size(), 1u);
  EXPECT_TRUE(page.at("next").is_null());
  EXPECT_EQ(api.handle(make_request(http::verb::get, "/api/personas_v2/?page=3&page_size=2"))
                .result(),
            http::status::not_found);

  clock.advance(seconds(5));
  page = body_json(api.handle(make_request(http::verb::get, "/api/personas_v2/")));
  EXPECT_EQ(page.at("count"), 4);
  EXPECT_EQ(page.at("results").at(0).at("id"), late.c_str());
  EXPECT_EQ(
      body_json(api.handle(make_request(http::verb::get, "/api/personas/paginated/"))).at("count"),
      4);
}

TEST_F(SimApiTest, LinksFallBackToTheListenAddressWithoutHost) {
  for (int i = 0; i < 3; ++i) create("p");
  api.settings().fallback_host = "127.0.0.1:9";
  Request req = make_request(http::verb::get, "/api/personas_v2/?page_size=1");
  req.erase(http::field::host);
  EXPECT_EQ(body_json(api.handle(req)).at("next"),
            "http://127.0.0.1:9/api/personas_v2/?page=2&page_size=1");
}

TEST(RouteKind, ClassifiesApiRequests) {
  EXPECT_EQ(route_kind(http::verb::post, "/api/personas_v2/"), RouteKind::create);
  EXPECT_EQ(route_kind(http::verb::get, "/api/personas_v2/?page=2"), RouteKind::list);
  EXPECT_EQ(route_kind(http::verb::get, "/api/personas/"), RouteKind::list);
  EXPECT_EQ(route_kind(http::verb::get, "/api/personas/paginated/"), RouteKind::list);
  EXPECT_EQ(route_kind(http::verb::get, "/api/personas/abc/"), RouteKind::get);
  EXPECT_EQ(route_kind(http::verb::get, "/nope"), RouteKind::other);
}

class AdminApiTest : public SimApiTest {
 protected:
  FaultPlan faults{{}, 1};
  SimStats stats;
  AdminApi admin{book, clock, faults, stats, 99};

  json::value call(http::verb method, const std::string& target, const std::string& body = {},
                   http::status expected = http::status::ok) {
    const Response res = admin.handle(make_request(method, target, body, false));
    EXPECT_EQ(res.result(), expected) << target << " " << res.body();
    return body_json(res);
  }
};

TEST_F(AdminApiTest, ListsEveryPersonaOldestFirstWithLabels) {
  create("first");
  create("second");
  const json::value all = call(http::verb::get, "/_sim/personas");
  ASSERT_EQ(all.as_array().size(), 2u);
  EXPECT_EQ(all.at(0).at("creator_name"), "first");
  EXPECT_EQ(all.at(0).at("labels"), json::array{"l"});
  EXPECT_EQ(all.at(0).at("is_active"), false);
}

TEST_F(AdminApiTest, PinForcesAStatus) {
  const std::string id = create("Jane");
  json::value p = call(http::verb::post, "/_sim/personas/" + id,
                       R"({"process_status": "done", "is_active": false})");
  EXPECT_EQ(p.at("process_status"), "done");
  EXPECT_EQ(p.at("is_active"), false);
  clock.advance(hours(100));
  p = body_json(api.handle(make_request(http::verb::get, "/api/personas/" + id + "/")));
  EXPECT_EQ(p.at("process_status"), "done");
  EXPECT_EQ(p.at("is_active"), false);

  p = call(http::verb::post, "/_sim/personas/" + id + "/",
           R"({"process_status": "failed", "failed_reason": "bad light"})");
  EXPECT_EQ(p.at("failed_reason"), "bad light");
  EXPECT_EQ(p.at("is_active"), false);

  call(http::verb::post, "/_sim/personas/unknown", R"({"process_status": "done"})",
       http::status::not_found);
  call(http::verb::post, "/_sim/personas/" + id, R"({"is_active": true})",
       http::status::bad_request);
  call(http::verb::post, "/_sim/personas/" + id, R"({"process_status": "done", "is_active": 1})",
       http::status::bad_request);
}

TEST_F(AdminApiTest, StatsCountPersonasStatusesAndLabelDuplicates) {
  create("a", "dup");
  create("b", "dup");
  create("c [fail]", "other");
  stats.creates = 3;
  stats.faults.rate_limited = 2;
  clock.advance(hours(20));
  const json::value s = call(http::verb::get, "/_sim/stats");
  EXPECT_EQ(s.at("personas"), 3);
  EXPECT_EQ(s.at("creates"), 3);
  EXPECT_EQ(s.at("label_duplicates"), 1);
  EXPECT_EQ(s.at("client_ref_duplicates"), 0);
  EXPECT_EQ(s.at("faults").at("429"), 2);
  EXPECT_EQ(s.at("faults").at("lost_create"), 0);
  EXPECT_EQ(s.at("statuses"), json::parse(R"({"done": 2, "failed": 1})"));
  EXPECT_EQ(s.at("seed"), 99);
}

TEST_F(AdminApiTest, FaultRatesCanBeReadAndChanged) {
  json::value r = call(http::verb::post, "/_sim/faults", R"({"429": 0.5, "lost_create": 1})");
  EXPECT_EQ(r.at("429"), 0.5);
  EXPECT_EQ(faults.rates().lost_create, 1.0);
  EXPECT_EQ(faults.rates().server_error, 0.0);
  r = call(http::verb::get, "/_sim/faults");
  EXPECT_EQ(r.at("lost_create"), 1.0);
  call(http::verb::post, "/_sim/faults", R"({"teapot": 1})", http::status::bad_request);
  call(http::verb::post, "/_sim/faults", R"({"5xx": 2})", http::status::bad_request);
}

TEST_F(AdminApiTest, NewerFaultsAreCountedAndSettable) {
  stats.faults.slow_create = 3;
  stats.faults.list_page = 4;
  stats.faults.list_slow = 5;
  stats.faults.retry_after_absurd = 6;
  stats.faults.upload_too_large = 7;
  stats.slow_creates_pending = 2;
  const json::value s = call(http::verb::get, "/_sim/stats");
  EXPECT_EQ(s.at("faults").at("slow_create"), 3);
  EXPECT_EQ(s.at("faults").at("list_page"), 4);
  EXPECT_EQ(s.at("faults").at("list_slow"), 5);
  EXPECT_EQ(s.at("faults").at("retry_after_absurd"), 6);
  EXPECT_EQ(s.at("faults").at("upload_too_large"), 7);
  EXPECT_EQ(s.at("slow_creates_pending"), 2);

  const json::value r = call(http::verb::post, "/_sim/faults",
                             R"({"slow_create": 0.25, "list_page": 0.5, "retry_after_absurd": 1})");
  EXPECT_EQ(r.at("slow_create"), 0.25);
  EXPECT_EQ(faults.rates().list_page, 0.5);
  EXPECT_EQ(faults.rates().retry_after_absurd, 1.0);

  // A reset keeps the count of creates still in the server's hands.
  call(http::verb::post, "/_sim/reset");
  EXPECT_EQ(stats.slow_creates_pending, 2u);
  EXPECT_EQ(stats.faults.list_page, 0u);
}

TEST_F(AdminApiTest, AdvanceSkipsSimulatedTime) {
  const std::string id = create("Jane [done]");
  const json::value r = call(http::verb::post, "/_sim/advance", R"({"by": "2d"})");
  EXPECT_EQ(r.at("now"), "2024-01-03T00:00:00Z");
  EXPECT_EQ(book.status_of(*book.find(id)).process_status, "done");
  call(http::verb::post, "/_sim/advance", R"({"by": "soon"})", http::status::bad_request);
}

TEST_F(AdminApiTest, ResetClearsPersonasAndCounters) {
  create("Jane");
  stats.requests = 10;
  call(http::verb::post, "/_sim/reset");
  EXPECT_EQ(book.size(), 0u);
  EXPECT_EQ(stats.requests, 0u);
}

TEST_F(AdminApiTest, UnknownAdminPathAndWrongMethod) {
  call(http::verb::get, "/_sim/nothing", {}, http::status::not_found);
  call(http::verb::post, "/_sim/stats", {}, http::status::method_not_allowed);
  call(http::verb::get, "/_sim/reset", {}, http::status::method_not_allowed);
}

}  // namespace
}  // namespace creatify_sim
