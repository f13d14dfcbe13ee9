// Tests of create-request parsing and validation: JSON, multipart and urlencoded bodies, and
// the exact DRF-style errors the simulator answers with.
#include "persona_request.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace creatify_sim {
namespace {

namespace json = boost::json;

const char* kJson = "application/json";

json::object valid_fields() {
  return {{"gender", "f"},
          {"creator_name", "Jane Doe"},
          {"video_scene", "office"},
          {"lipsync_input", "https://cdn.example.com/l.mp4"},
          {"consent_video", "https://cdn.example.com/c.mp4"}};
}

PersonaInput expect_ok(const CreateRequest& r) {
  if (const auto* e = std::get_if<RequestError>(&r)) {
    ADD_FAILURE() << "unexpected error " << e->status << " " << json::serialize(e->body);
    return {};
  }
  return std::get<PersonaInput>(r);
}

RequestError expect_error(const CreateRequest& r) {
  if (!std::holds_alternative<RequestError>(r)) {
    ADD_FAILURE() << "expected an error";
    return {};
  }
  return std::get<RequestError>(r);
}

// The errors for a JSON body made of valid_fields() with `changes` applied.
json::value errors_for(const json::object& changes, const std::vector<std::string>& remove = {}) {
  json::object o = valid_fields();
  for (const auto& [k, v] : changes) o[k] = v;
  for (const auto& k : remove) o.erase(k);
  const RequestError e = expect_error(parse_create_request(kJson, json::serialize(o)));
  EXPECT_EQ(e.status, 400u);
  return e.body;
}

TEST(CreateRequestJson, ValidBodyBecomesInput) {
  json::object o = valid_fields();
  o["keywords"] = "friendly";
  o["labels"] = json::array{"acme", "personad:42"};
  o["webhook_url"] = "http://127.0.0.1:9000/hook";
  o["gdown_url"] = nullptr;
  const PersonaInput in = expect_ok(parse_create_request(kJson, json::serialize(o)));
  EXPECT_EQ(in.gender, "f");
  EXPECT_EQ(in.creator_name, "Jane Doe");
  EXPECT_EQ(in.video_scene, "office");
  EXPECT_EQ(in.keywords, "friendly");
  EXPECT_EQ(in.lipsync_input, "https://cdn.example.com/l.mp4");
  EXPECT_FALSE(in.lipsync_upload);
  EXPECT_EQ(in.consent_video, "https://cdn.example.com/c.mp4");
  EXPECT_EQ(in.labels, (std::vector<std::string>{"acme", "personad:42"}));
  EXPECT_EQ(in.webhook_url, "http://127.0.0.1:9000/hook");
  EXPECT_FALSE(in.gdown_url);
}

TEST(CreateRequestJson, TrimsWhitespaceLikeDrf) {
  const PersonaInput in = expect_ok(
      parse_create_request(kJson, json::serialize(json::object{{"gender", "m"},
                                                               {"creator_name", "  Bob \n"},
                                                               {"video_scene", "s"},
                                                               {"lipsync_input", "u"}})));
  EXPECT_EQ(in.creator_name, "Bob");
  EXPECT_FALSE(in.consent_video);
  EXPECT_TRUE(in.labels.empty());
}

TEST(CreateRequestJson, EveryMissingRequiredFieldIsReported) {
  const RequestError e = expect_error(parse_create_request(kJson, "{}"));
  EXPECT_EQ(e.status, 400u);
  EXPECT_EQ(e.body, json::parse(R"({"gender": ["This field is required."],
        "creator_name": ["This field is required."], "video_scene": ["This field is required."],
        "lipsync_input": ["This field is required."]})"));
}

TEST(CreateRequestJson, GenderMustBeAChoice) {
  EXPECT_EQ(errors_for({{"gender", "x"}}),
            json::parse(R"({"gender": ["\"x\" is not a valid choice."]})"));
  EXPECT_EQ(errors_for({{"gender", nullptr}}),
            json::parse(R"({"gender": ["This field may not be null."]})"));
  EXPECT_EQ(errors_for({{"gender", "M"}}),
            json::parse(R"({"gender": ["\"M\" is not a valid choice."]})"));
  for (const char* g : {"m", "f", "nb"}) {
    json::object o = valid_fields();
    o["gender"] = g;
    EXPECT_EQ(expect_ok(parse_create_request(kJson, json::serialize(o))).gender, g);
  }
}

TEST(CreateRequestJson, BlankNullAndWrongTypes) {
  EXPECT_EQ(errors_for({{"creator_name", "   "}}),
            json::parse(R"({"creator_name": ["This field may not be blank."]})"));
  EXPECT_EQ(errors_for({{"video_scene", nullptr}}),
            json::parse(R"({"video_scene": ["This field may not be null."]})"));
  EXPECT_EQ(errors_for({{"creator_name", json::array{"a"}}}),
            json::parse(R"({"creator_name": ["Not a valid string."]})"));
  EXPECT_EQ(errors_for({{"keywords", true}}),
            json::parse(R"({"keywords": ["Not a valid string."]})"));
}

TEST(CreateRequestJson, NumbersAreAcceptedAsText) {
  json::object o = valid_fields();
  o["keywords"] = 42;
  EXPECT_EQ(expect_ok(parse_create_request(kJson, json::serialize(o))).keywords, "42");
}

TEST(CreateRequestJson, LengthLimitsCountCharactersNotBytes) {
  std::string accented;
  for (int i = 0; i < 255; ++i) accented += "\xc3\xa9";  // é: two bytes, one character
  json::object o = valid_fields();
  o["creator_name"] = accented;
  o["video_scene"] = std::string(255, 's');
  o["keywords"] = std::string(255, 'k');
  EXPECT_EQ(expect_ok(parse_create_request(kJson, json::serialize(o))).creator_name, accented);

  const auto too_long = [](std::size_t n) {
    return "Ensure this field has no more than " + std::to_string(n) + " characters.";
  };
  EXPECT_EQ(errors_for({{"creator_name", std::string(256, 'a')}}),
            (json::object{{"creator_name", json::array{too_long(255)}}}));
  EXPECT_EQ(errors_for({{"video_scene", std::string(256, 'a')}}),
            (json::object{{"video_scene", json::array{too_long(255)}}}));
  EXPECT_EQ(errors_for({{"keywords", std::string(256, 'a')}}),
            (json::object{{"keywords", json::array{too_long(255)}}}));
  const std::string url201 = "https://example.com/" + std::string(181, 'a');
  EXPECT_EQ(errors_for({{"webhook_url", url201}}),
            (json::object{{"webhook_url", json::array{too_long(200)}}}));
  EXPECT_EQ(errors_for({{"consent_video", url201}}),
            (json::object{{"consent_video", json::array{too_long(200)}}}));
}

TEST(CreateRequestJson, WebhookMustBeAUrl) {
  EXPECT_EQ(errors_for({{"webhook_url", "not a url"}}),
            json::parse(R"({"webhook_url": ["Enter a valid URL."]})"));
  EXPECT_EQ(errors_for({{"webhook_url", "ftp://example.com/x"}}),
            json::parse(R"({"webhook_url": ["Enter a valid URL."]})"));
}

TEST(CreateRequestJson, LabelsMustBeAListOfStrings) {
  EXPECT_EQ(errors_for({{"labels", "acme"}}),
            json::parse(R"({"labels": ["Expected a list of items but got type \"str\"."]})"));
  EXPECT_EQ(errors_for({{"labels", json::array{"ok", 5.5, json::object{}}}}),
            json::parse(R"({"labels": {"2": ["Not a valid string."]}})"));
}

TEST(CreateRequestJson, ErrorsComeInFieldOrder) {
  const json::value e = errors_for({{"gender", "x"}, {"video_scene", ""}}, {"creator_name"});
  std::vector<std::string> keys;
  for (const auto& kv : e.as_object()) keys.emplace_back(kv.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"gender", "creator_name", "video_scene"}));
}

TEST(CreateRequestJson, MalformedOrNonObjectBody) {
  RequestError e = expect_error(parse_create_request(kJson, R"({"gender": )"));
  EXPECT_EQ(e.status, 400u);
  EXPECT_TRUE(std::string(e.body.at("detail").as_string()).starts_with("JSON parse error - "));

  e = expect_error(parse_create_request("application/json; charset=utf-8", "[1, 2]"));
  EXPECT_EQ(e.body, json::parse(R"({"non_field_errors":
        ["Invalid data. Expected a dictionary, but got list."]})"));
}

TEST(CreateRequest, UnsupportedMediaType) {
  const RequestError e = expect_error(parse_create_request("text/plain", "gender=m"));
  EXPECT_EQ(e.status, 415u);
  EXPECT_EQ(e.body,
            json::parse(R"({"detail": "Unsupported media type \"text/plain\" in request."})"));
}

std::string part(const std::string& name, const std::string& value) {
  return "--B\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n";
}
std::string file_part(const std::string& name, const std::string& filename, const std::string& type,
                      const std::string& data) {
  return "--B\r\nContent-Disposition: form-data; name=\"" + name + "\"; filename=\"" + filename +
         "\"\r\nContent-Type: " + type + "\r\n\r\n" + data + "\r\n";
}
const char* kMultipart = "multipart/form-data; boundary=B";

TEST(CreateRequestMultipart, FilePartsAreRecordedWithNameAndSize) {
  const std::string body =
      part("gender", "nb") + part("creator_name", "Sam") + part("video_scene", "studio") +
      part("labels", "acme") + part("labels", "personad:7") +
      file_part("lipsync_input", "C:\\videos\\jane.mp4", "video/mp4", std::string(1000, 'v')) +
      file_part("consent_video", "consent.mov", "video/quicktime", "cc") + "--B--\r\n";
  const PersonaInput in = expect_ok(parse_create_request(kMultipart, body));
  EXPECT_EQ(in.gender, "nb");
  EXPECT_EQ(in.creator_name, "Sam");
  EXPECT_EQ(in.lipsync_input, "uploaded:jane.mp4 (1000 bytes)");
  EXPECT_EQ(in.lipsync_upload, "jane.mp4");
  EXPECT_EQ(in.consent_video, "uploaded:consent.mov (2 bytes)");
  EXPECT_EQ(in.labels, (std::vector<std::string>{"acme", "personad:7"}));
}

TEST(CreateRequestMultipart, UrlsAsTextParts) {
  const std::string body = part("gender", "m") + part("creator_name", "Sam") +
                           part("video_scene", "studio") +
                           part("lipsync_input", "https://x/l.mp4") + "--B--\r\n";
  const PersonaInput in = expect_ok(parse_create_request(kMultipart, body));
  EXPECT_EQ(in.lipsync_input, "https://x/l.mp4");
  EXPECT_FALSE(in.lipsync_upload);
}

TEST(CreateRequestMultipart, RejectsWrongOrEmptyFiles) {
  const std::string common =
      part("gender", "m") + part("creator_name", "Sam") + part("video_scene", "s");
  RequestError e = expect_error(parse_create_request(
      kMultipart, common + file_part("lipsync_input", "a.txt", "text/plain", "x") + "--B--\r\n"));
  EXPECT_EQ(e.body, json::parse(R"({"lipsync_input":
        ["Unsupported file type \"text/plain\": upload video/mp4 or video/quicktime."]})"));
  e = expect_error(parse_create_request(
      kMultipart, common + file_part("lipsync_input", "a.mp4", "video/mp4", "") + "--B--\r\n"));
  EXPECT_EQ(e.body, json::parse(R"({"lipsync_input": ["The submitted file is empty."]})"));
  e = expect_error(parse_create_request(
      kMultipart, common + file_part("creator_name", "a.mp4", "video/mp4", "x") +
                      part("lipsync_input", "u") + "--B--\r\n"));
  EXPECT_EQ(e.body, json::parse(R"({"creator_name": ["Not a valid string."]})"));
}

TEST(CreateRequestMultipart, BadFraming) {
  RequestError e = expect_error(parse_create_request("multipart/form-data", "whatever"));
  EXPECT_EQ(e.status, 400u);
  EXPECT_TRUE(
      std::string(e.body.at("detail").as_string()).starts_with("Multipart form parse error"));
  e = expect_error(parse_create_request(kMultipart, part("gender", "m")));  // never closed
  EXPECT_TRUE(
      std::string(e.body.at("detail").as_string()).starts_with("Multipart form parse error"));
}

TEST(CreateRequestForm, UrlencodedBodyWithRepeatedLabels) {
  const PersonaInput in = expect_ok(parse_create_request(
      "application/x-www-form-urlencoded",
      "gender=f&creator_name=Jane+Doe&video_scene=office&lipsync_input=https%3A%2F%2Fx%2Fl.mp4"
      "&labels=a&labels=b"));
  EXPECT_EQ(in.creator_name, "Jane Doe");
  EXPECT_EQ(in.lipsync_input, "https://x/l.mp4");
  EXPECT_EQ(in.labels, (std::vector<std::string>{"a", "b"}));
}

TEST(CreateRequest, EmptyBodyWithoutContentTypeReportsRequiredFields) {
  const RequestError e = expect_error(parse_create_request("", ""));
  EXPECT_EQ(e.status, 400u);
  EXPECT_TRUE(e.body.as_object().contains("creator_name"));
}

TEST(Utf8Length, CountsCodePoints) {
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"), 3u);  // é € 😀
}

}  // namespace
}  // namespace creatify_sim
