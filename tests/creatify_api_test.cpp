// Tests of the pure Creatify API helpers: status classes, Retry-After, persona and list parsing,
// error bodies, the create request body and the response-to-outcome mapping.
#include "personad/creatify_api.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace personad {
namespace {

namespace json = boost::json;

TimePoint at(std::string_view rfc3339) { return *parse_rfc3339(rfc3339); }

json::value js(std::string_view text) { return json::parse(text); }

PersonaSpec sample_spec() {
  PersonaSpec s;
  s.key = "acme-jane-01";
  s.gender = "f";
  s.creator_name = "Jane Doe";
  s.video_scene = "office";
  s.keywords = "friendly, professional";
  s.lipsync_input = "https://cdn.example.com/jane/lipsync.mp4";
  s.consent_video = "https://cdn.example.com/jane/consent.mp4";
  s.labels = {"acme"};
  s.webhook_url = "https://hooks.example.com/creatify";
  s.gdown_url = "https://drive.example.com/x";
  return s;
}

// ---- classify_http_status ----

TEST(CreatifyApiStatus, SuccessIsAny2xx) {
  for (int s : {200, 201, 202, 204, 299}) EXPECT_EQ(classify_http_status(s), Outcome::ok) << s;
}

TEST(CreatifyApiStatus, AuthFailuresAreUnauthorized) {
  EXPECT_EQ(classify_http_status(401), Outcome::unauthorized);
  EXPECT_EQ(classify_http_status(403), Outcome::unauthorized);
}

TEST(CreatifyApiStatus, RetryableClientErrorsAreTransient) {
  for (int s : {408, 425, 429}) EXPECT_EQ(classify_http_status(s), Outcome::transient) << s;
}

TEST(CreatifyApiStatus, OtherClientErrorsArePermanent) {
  for (int s : {400, 404, 405, 409, 413, 422, 499})
    EXPECT_EQ(classify_http_status(s), Outcome::permanent) << s;
}

TEST(CreatifyApiStatus, ServerErrorsAndOddCodesAreTransient) {
  for (int s : {500, 502, 503, 504, 599, 0, 100, 301, 304, 600})
    EXPECT_EQ(classify_http_status(s), Outcome::transient) << s;
}

TEST(CreatifyApiStatus, OutcomeNames) {
  EXPECT_EQ(to_string(Outcome::ok), "ok");
  EXPECT_EQ(to_string(Outcome::transient), "transient");
  EXPECT_EQ(to_string(Outcome::permanent), "permanent");
  EXPECT_EQ(to_string(Outcome::unauthorized), "unauthorized");
}

// ---- parse_retry_after ----

TEST(CreatifyApiRetryAfter, Seconds) {
  auto now = at("2024-01-01T00:00:00Z");
  EXPECT_EQ(parse_retry_after("120", now), Millis(120'000));
  EXPECT_EQ(parse_retry_after("  5 ", now), Millis(5'000));
  EXPECT_EQ(parse_retry_after("0", now), Millis(0));
}

TEST(CreatifyApiRetryAfter, RejectsGarbage) {
  auto now = at("2024-01-01T00:00:00Z");
  for (std::string_view v : {"", "   ", "-1", "1.5", "soon", "12a", "+5", "0x10", "1e9",
                             "-99999999999999999999", "4294967295s",
                             "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
                             "Sun, 06 Foo 1994 08:49:37 GMT",
                             "Sun, 06 Nov 1994 08:49 GMT", "Fri, 31 Dec 10000 23:59:59 GMT",
                             "Fri, 31 Dec 99999999999999999999 23:59:59 GMT"})
    EXPECT_FALSE(parse_retry_after(v, now).has_value()) << v;
}

// Absurd values must never wrap into a short (or negative) delay; callers cap them at retry_max.
TEST(CreatifyApiRetryAfter, HugeSecondsSaturate) {
  auto now = at("2024-01-01T00:00:00Z");
  EXPECT_EQ(parse_retry_after("4294967295", now), Millis(4'294'967'295'000));
  EXPECT_EQ(parse_retry_after("99999999999", now), Millis(99'999'999'999'000));
  EXPECT_EQ(parse_retry_after("9223372036854775", now), Millis(9'223'372'036'854'775'000));
  for (std::string_view v : {"9223372036854776", "99999999999999999999", "18446744073709551616",
                             "9223372036854775808",
                             "9999999999999999999999999999999999999999"})
    EXPECT_EQ(parse_retry_after(v, now), Millis::max()) << v;
  EXPECT_EQ(parse_retry_after(std::string(20'000, '9'), now), Millis::max());
  // Leading zeros do not make a small value large.
  EXPECT_EQ(parse_retry_after("000000000000000000000000007", now), Millis(7'000));
  EXPECT_EQ(parse_retry_after("00", now), Millis(0));
}

TEST(CreatifyApiRetryAfter, FarFutureDateDoesNotOverflow) {
  auto now = at("2024-01-01T00:00:00Z");
  auto far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now);
  ASSERT_TRUE(far.has_value());
  EXPECT_EQ(*far, *parse_rfc3339("9999-12-31T23:59:59Z") - now);
  EXPECT_GT(*far, Millis(0));
  // A `now` at the far end of the range cannot make the difference wrap either.
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", TimePoint(Millis::min())),
            Millis::max());
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", TimePoint(Millis::max())),
            Millis(0));
}

TEST(CreatifyApiRetryAfter, HugeDayOfMonthIsNotWrappedIntoADate) {
  auto now = at("1994-11-01T00:00:00Z");
  // 4294967297 would be day 1 once cut to 32 bits.
  EXPECT_FALSE(parse_retry_after("Tue, 4294967297 Nov 1994 08:49:37 GMT", now).has_value());
  EXPECT_FALSE(parse_retry_after("Tue Nov 4294967297 08:49:37 1994", now).has_value());
  EXPECT_FALSE(parse_retry_after("Tue, 00 Nov 1994 08:49:37 GMT", now).has_value());
}

TEST(CreatifyApiRetryAfter, ImfFixdateRelativeToNow) {
  auto now = at("1994-11-06T08:48:07Z");
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Millis(90'000));
}

TEST(CreatifyApiRetryAfter, ObsoleteDateForms) {
  auto now = at("1994-11-06T08:49:27Z");
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), Millis(10'000));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), Millis(10'000));
}

TEST(CreatifyApiRetryAfter, DateInThePastMeansNow) {
  auto now = at("2024-01-01T00:00:00Z");
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Millis(0));
}

// ---- parse_persona ----

TEST(CreatifyApiPersona, ReadsAllFields) {
  auto p = parse_persona(js(R"({
    "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a", "gender": "m", "creator_name": "Jo",
    "video_scene": "studio", "keywords": "calm", "labels": ["acme", "personad:abc"],
    "process_status": "reviewing", "failed_reason": null, "is_active": true,
    "created_at": "2023-11-07T05:31:56Z", "updated_at": "2023-11-07T05:31:56Z",
    "lipsync_input_url": "x", "matching_voice_non_null": "y"})"));
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(p->id, "3c90c3cc-0d44-4b50-8888-8dd25736052a");
  EXPECT_EQ(p->process_status, "reviewing");
  EXPECT_EQ(p->failed_reason, "");
  EXPECT_TRUE(p->is_active);
  EXPECT_TRUE(p->has_labels);
  EXPECT_EQ(p->labels, (std::vector<std::string>{"acme", "personad:abc"}));
  EXPECT_EQ(p->creator_name, "Jo");
  EXPECT_EQ(p->gender, "m");
  EXPECT_EQ(p->video_scene, "studio");
  EXPECT_EQ(p->keywords, "calm");
  ASSERT_TRUE(p->created_at.has_value());
  EXPECT_EQ(*p->created_at, at("2023-11-07T05:31:56Z"));
}

TEST(CreatifyApiPersona, MinimalObjectHasDefaults) {
  auto p = parse_persona(js(R"({"id": "a", "process_status": "pending"})"));
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_FALSE(p->is_active);
  EXPECT_FALSE(p->has_labels);
  EXPECT_TRUE(p->labels.empty());
  EXPECT_FALSE(p->created_at.has_value());
  EXPECT_EQ(p->failed_reason, "");
}

TEST(CreatifyApiPersona, NullsReadAsAbsent) {
  auto p = parse_persona(js(R"({"id": "a", "process_status": "done", "is_active": null,
    "labels": null, "created_at": null, "keywords": null})"));
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_FALSE(p->is_active);
  EXPECT_FALSE(p->has_labels);
  EXPECT_FALSE(p->created_at.has_value());
}

TEST(CreatifyApiPersona, EmptyLabelsArrayCountsAsLabels) {
  auto p = parse_persona(js(R"({"id": "a", "process_status": "done", "labels": []})"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->has_labels);
  EXPECT_TRUE(p->labels.empty());
}

TEST(CreatifyApiPersona, FailedReasonTextOrJson) {
  auto text = parse_persona(js(R"({"id": "a", "process_status": "failed",
    "failed_reason": "consent video missing"})"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->failed_reason, "consent video missing");
  auto obj = parse_persona(js(R"({"id": "a", "process_status": "failed",
    "failed_reason": {"code": 7}})"));
  ASSERT_TRUE(obj.ok());
  EXPECT_EQ(obj->failed_reason, R"({"code":7})");
}

TEST(CreatifyApiPersona, CreatedAtWithOffsetAndFraction) {
  auto p = parse_persona(js(R"({"id": "a", "process_status": "pending",
    "created_at": "2023-11-07T07:31:56.123456+02:00"})"));
  ASSERT_TRUE(p.ok()) << p.message();
  EXPECT_EQ(*p->created_at, at("2023-11-07T05:31:56.123Z"));
}

struct BadPersona {
  const char* json;
  const char* fragment;  // expected in the error message
};

class CreatifyApiPersonaErrors : public ::testing::TestWithParam<BadPersona> {};

TEST_P(CreatifyApiPersonaErrors, NamesTheProblem) {
  auto p = parse_persona(js(GetParam().json));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.message().find(GetParam().fragment), std::string::npos) << p.message();
}

INSTANTIATE_TEST_SUITE_P(
    CreatifyApi, CreatifyApiPersonaErrors,
    ::testing::Values(
        BadPersona{R"([1, 2])", "not a JSON object"},
        BadPersona{R"({"process_status": "pending"})", "no id"},
        BadPersona{R"({"id": null, "process_status": "pending"})", "no id"},
        BadPersona{R"({"id": 7, "process_status": "pending"})", "id is not a non-empty string"},
        BadPersona{R"({"id": "", "process_status": "pending"})", "id is not a non-empty string"},
        BadPersona{R"({"id": "a"})", "persona a has no process_status"},
        BadPersona{R"({"id": "a", "process_status": 3})", "process_status is not a string"},
        BadPersona{R"({"id": "a", "process_status": "x", "is_active": "yes"})",
                   "is_active is not a boolean"},
        BadPersona{R"({"id": "a", "process_status": "x", "labels": "acme"})",
                   "labels is not an array"},
        BadPersona{R"({"id": "a", "process_status": "x", "labels": ["ok", 1]})",
                   "labels holds a value that is not a string"},
        BadPersona{R"({"id": "a", "process_status": "x", "created_at": "yesterday"})",
                   "created_at is not an RFC 3339 time"},
        BadPersona{R"({"id": "a", "process_status": "x", "created_at": 12})",
                   "created_at is not an RFC 3339 time"},
        BadPersona{R"({"id": "a", "process_status": "x", "creator_name": 5})",
                   "creator_name is not a string"},
        BadPersona{R"({"id": "a", "process_status": "x", "gender": []})",
                   "gender is not a string"}));

// ---- parse_list_page ----

TEST(CreatifyApiListPage, PlainArray) {
  auto page = parse_list_page(js(R"([{"id": "a", "process_status": "done"},
                                     {"id": "b", "process_status": "pending"}])"));
  ASSERT_TRUE(page.ok()) << page.message();
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[1].id, "b");
  EXPECT_EQ(page->next, "");
}

TEST(CreatifyApiListPage, PaginatedWithNext) {
  auto page = parse_list_page(js(R"({"count": 3, "next": "/api/personas_v2/?page=2",
    "previous": null, "results": [{"id": "a", "process_status": "done"}]})"));
  ASSERT_TRUE(page.ok()) << page.message();
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_EQ(page->next, "/api/personas_v2/?page=2");
}

TEST(CreatifyApiListPage, LastPageHasNullOrNoNext) {
  auto with_null = parse_list_page(js(R"({"count": 0, "next": null, "results": []})"));
  ASSERT_TRUE(with_null.ok());
  EXPECT_EQ(with_null->next, "");
  auto without = parse_list_page(js(R"({"results": []})"));
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(without->next, "");
}

TEST(CreatifyApiListPage, Errors) {
  auto not_json_shape = parse_list_page(js("42"));
  ASSERT_FALSE(not_json_shape.ok());
  EXPECT_NE(not_json_shape.message().find("neither an array nor an object"), std::string::npos);

  auto no_results = parse_list_page(js(R"({"count": 1})"));
  ASSERT_FALSE(no_results.ok());
  EXPECT_NE(no_results.message().find("\"results\""), std::string::npos);

  auto bad_results = parse_list_page(js(R"({"results": {}})"));
  EXPECT_FALSE(bad_results.ok());

  auto bad_next = parse_list_page(js(R"({"results": [], "next": 2})"));
  ASSERT_FALSE(bad_next.ok());
  EXPECT_NE(bad_next.message().find("next is not a string"), std::string::npos);

  auto bad_item = parse_list_page(js(R"([{"id": "a", "process_status": "x"}, {"id": "b"}])"));
  ASSERT_FALSE(bad_item.ok());
  EXPECT_NE(bad_item.message().find("list item 1: persona b has no process_status"),
            std::string::npos)
      << bad_item.message();
}

// ---- error_message_from_body ----

TEST(CreatifyApiErrorBody, DrfFieldErrors) {
  EXPECT_EQ(error_message_from_body(
                R"({"creator_name": ["This field is required."],
                    "gender": ["\"x\" is not a valid choice."]})"),
            "creator_name: This field is required.; gender: \"x\" is not a valid choice.");
}

TEST(CreatifyApiErrorBody, SeveralMessagesForOneField) {
  EXPECT_EQ(error_message_from_body(R"({"keywords": ["Too long.", "Bad words."]})"),
            "keywords: Too long. Bad words.");
}

TEST(CreatifyApiErrorBody, DetailMessageAndError) {
  EXPECT_EQ(error_message_from_body(R"({"detail": "Invalid API key."})"), "Invalid API key.");
  EXPECT_EQ(error_message_from_body(R"({"message": "Insufficient credits", "code": 7})"),
            "Insufficient credits");
  EXPECT_EQ(error_message_from_body(R"({"error": "quota exceeded"})"), "quota exceeded");
}

TEST(CreatifyApiErrorBody, NonFieldAndNestedErrors) {
  EXPECT_EQ(error_message_from_body(R"({"non_field_errors": ["Duplicate persona."]})"),
            "Duplicate persona.");
  EXPECT_EQ(error_message_from_body(R"({"labels": [{}, ["Too long."]]})"), "labels[1]: Too long.");
  EXPECT_EQ(error_message_from_body(R"({"spec": {"gender": ["Bad."]}})"), "spec.gender: Bad.");
  EXPECT_EQ(error_message_from_body(R"({"count": 3})"), "count: 3");
}

TEST(CreatifyApiErrorBody, TopLevelStringOrArray) {
  EXPECT_EQ(error_message_from_body(R"("plain json string")"), "plain json string");
  EXPECT_EQ(error_message_from_body(R"(["one", "two"])"), "one two");
}

TEST(CreatifyApiErrorBody, PlainTextOnOneLine) {
  EXPECT_EQ(error_message_from_body("upstream\r\n   unavailable\n"), "upstream unavailable");
  EXPECT_EQ(error_message_from_body(""), "");
  EXPECT_EQ(error_message_from_body("{}"), "{}");
}

TEST(CreatifyApiErrorBody, HtmlPageGivesItsTitle) {
  EXPECT_EQ(error_message_from_body(
                "<html>\n<head><TITLE>502 Bad Gateway</TITLE></head><body>nginx</body></html>"),
            "502 Bad Gateway");
}

TEST(CreatifyApiErrorBody, LongBodiesAreCut) {
  std::string body(5000, 'x');
  auto m = error_message_from_body(body);
  EXPECT_LT(m.size(), 320u);
  EXPECT_EQ(m.substr(m.size() - 3), "…");
}

TEST(CreatifyApiErrorBody, CutNeverSplitsUtf8) {
  std::string body;
  for (int i = 0; i < 400; ++i) body += "é";  // two bytes each
  auto m = error_message_from_body(body);
  std::string head = m.substr(0, m.size() - std::string("…").size());
  EXPECT_EQ(head.size() % 2, 0u);
  EXPECT_EQ(head.find("é"), 0u);
}

// ---- create_request_json ----

TEST(CreatifyApiCreateBody, AllFields) {
  auto o = create_request_json(sample_spec(), "ref-1");
  EXPECT_EQ(o.at("gender"), "f");
  EXPECT_EQ(o.at("creator_name"), "Jane Doe");
  EXPECT_EQ(o.at("video_scene"), "office");
  EXPECT_EQ(o.at("keywords"), "friendly, professional");
  EXPECT_EQ(o.at("lipsync_input"), "https://cdn.example.com/jane/lipsync.mp4");
  EXPECT_EQ(o.at("consent_video"), "https://cdn.example.com/jane/consent.mp4");
  EXPECT_EQ(o.at("webhook_url"), "https://hooks.example.com/creatify");
  EXPECT_EQ(o.at("gdown_url"), "https://drive.example.com/x");
  EXPECT_EQ(o.at("labels"), js(R"(["acme", "personad:ref-1"])"));
  EXPECT_FALSE(o.contains("key"));  // ours, not the API's
  EXPECT_EQ(o.size(), 9u);
}

TEST(CreatifyApiCreateBody, OmitsEmptyOptionalFields) {
  auto spec = sample_spec();
  spec.keywords.clear();
  spec.consent_video.clear();
  spec.webhook_url.clear();
  spec.gdown_url.clear();
  spec.labels.clear();
  auto o = create_request_json(spec, "r");
  EXPECT_FALSE(o.contains("keywords"));
  EXPECT_FALSE(o.contains("consent_video"));
  EXPECT_FALSE(o.contains("webhook_url"));
  EXPECT_FALSE(o.contains("gdown_url"));
  EXPECT_EQ(o.at("labels"), js(R"(["personad:r"])"));
  EXPECT_TRUE(o.contains("gender"));
  EXPECT_TRUE(o.contains("lipsync_input"));
}

// ---- map_persona_response ----

const TimePoint kNow = at("2024-05-01T12:00:00Z");

TEST(CreatifyApiMapResponse, CreatedPersona) {
  auto r = map_persona_response(201, R"({"id": "p1", "process_status": "pending"})", "", kNow);
  EXPECT_EQ(r.outcome, Outcome::ok);
  EXPECT_EQ(r.http_status, 201);
  EXPECT_EQ(r.value.id, "p1");
  EXPECT_EQ(r.value.process_status, "pending");
  EXPECT_TRUE(r.message.empty());
}

TEST(CreatifyApiMapResponse, MalformedSuccessIsTransient) {
  auto garbage = map_persona_response(201, "<html>oops", "", kNow);
  EXPECT_EQ(garbage.outcome, Outcome::transient);
  EXPECT_EQ(garbage.http_status, 201);
  EXPECT_EQ(garbage.message.rfind("malformed response: ", 0), 0u) << garbage.message;

  auto no_id = map_persona_response(200, R"({"process_status": "pending"})", "", kNow);
  EXPECT_EQ(no_id.outcome, Outcome::transient);
  EXPECT_EQ(no_id.message, "malformed response: persona has no id");

  auto empty = map_persona_response(204, "", "", kNow);
  EXPECT_EQ(empty.outcome, Outcome::transient);
  EXPECT_EQ(empty.message.rfind("malformed response: ", 0), 0u);
}

TEST(CreatifyApiMapResponse, ValidationErrorIsPermanentWithFieldErrors) {
  auto r = map_persona_response(400, R"({"creator_name": ["This field is required."]})", "", kNow);
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.message, "HTTP 400: creator_name: This field is required.");
  EXPECT_FALSE(r.retry_after.has_value());
}

TEST(CreatifyApiMapResponse, NotFoundIsPermanent) {
  auto r = map_persona_response(404, R"({"detail": "Not found."})", "", kNow);
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_EQ(r.message, "HTTP 404: Not found.");
}

TEST(CreatifyApiMapResponse, AuthErrors) {
  auto r = map_persona_response(401, R"({"detail": "Invalid token."})", "", kNow);
  EXPECT_EQ(r.outcome, Outcome::unauthorized);
  EXPECT_EQ(r.message, "HTTP 401: Invalid token.");
  EXPECT_EQ(map_persona_response(403, "", "", kNow).outcome, Outcome::unauthorized);
}

TEST(CreatifyApiMapResponse, TooManyRequestsHonoursRetryAfter) {
  auto r = map_persona_response(429, "slow down", "7", kNow);
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.retry_after, Millis(7'000));
  EXPECT_EQ(r.message, "HTTP 429: slow down");
}

TEST(CreatifyApiMapResponse, ServerErrorWithDateRetryAfter) {
  auto r = map_persona_response(503, "", "Wed, 01 May 2024 12:01:00 GMT", kNow);
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.retry_after, Millis(60'000));
  EXPECT_EQ(r.message, "HTTP 503");
}

TEST(CreatifyApiMapResponse, UnparsableRetryAfterIsIgnored) {
  auto r = map_persona_response(500, "boom", "later", kNow);
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_FALSE(r.retry_after.has_value());
}

}  // namespace
}  // namespace personad
