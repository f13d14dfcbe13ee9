// The simulator's workspace capacity (--max-avatars): GET /api/personas_v2/count/ answers
// {max_count, current_count}, and a create beyond the capacity is refused with 400.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "sim_api.hpp"

namespace creatify_sim {
namespace {

namespace json = boost::json;
using namespace std::chrono;

Request request(http::verb method, std::string target, std::string body = {}) {
  Request req{method, target, 11};
  req.set(http::field::host, "sim.test:1234");
  req.set("X-API-ID", "id");
  req.set("X-API-KEY", "key");
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  return req;
}

std::string create_body(const std::string& name) {
  return json::serialize(json::object{{"gender", "m"},
                                      {"creator_name", name},
                                      {"video_scene", "office"},
                                      {"lipsync_input", "https://x/l.mp4"},
                                      {"consent_video", "https://x/c.mp4"}});
}

TEST(SimCapacity, CountAnswersMaxAndCurrentAndCreatesStopAtTheMax) {
  ManualClock clock{SimTime(sys_days(year(2024) / 1 / 1))};
  PersonaBook book{clock, BookSettings{hours(1), 0.0, 1}};
  ApiSettings settings;
  settings.max_avatars = 2;
  SimApi api{book, settings};
  auto count = [&] {
    const Response r = api.handle(request(http::verb::get, "/api/personas_v2/count/"));
    EXPECT_EQ(r.result(), http::status::ok) << r.body();
    return json::parse(r.body());
  };
  EXPECT_EQ(count(), json::parse(R"({"max_count": 2, "current_count": 0})"));
  for (const char* name : {"a", "b"})
    EXPECT_EQ(api.handle(request(http::verb::post, "/api/personas_v2/", create_body(name))).result(),
              http::status::created);
  EXPECT_EQ(count(), json::parse(R"({"max_count": 2, "current_count": 2})"));
  const Response full = api.handle(request(http::verb::post, "/api/personas_v2/", create_body("c")));
  EXPECT_EQ(full.result(), http::status::bad_request);
  EXPECT_NE(full.body().find("capacity"), std::string::npos) << full.body();
  EXPECT_EQ(route_kind(http::verb::get, "/api/personas_v2/count/"), RouteKind::list);
}

TEST(SimCapacity, WithoutALimitTheCountSaysAMillion) {
  ManualClock clock{SimTime(sys_days(year(2024) / 1 / 1))};
  PersonaBook book{clock, BookSettings{hours(1), 0.0, 1}};
  SimApi api{book, ApiSettings{}};
  const Response r = api.handle(request(http::verb::get, "/api/personas_v2/count/"));
  EXPECT_EQ(json::parse(r.body()).at("max_count"), 1000000);
}

}  // namespace
}  // namespace creatify_sim
