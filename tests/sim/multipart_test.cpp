// Tests of the multipart/form-data parser: boundaries from Content-Type, text and file parts,
// binary data, preamble and epilogue, and the malformed bodies it must refuse.
#include "multipart.hpp"

#include <gtest/gtest.h>

namespace creatify_sim {
namespace {

std::string body_of(std::initializer_list<std::string> parts, std::string boundary = "XyZ") {
  std::string body;
  for (const auto& part : parts) body += "--" + boundary + "\r\n" + part + "\r\n";
  return body + "--" + boundary + "--\r\n";
}

TEST(MultipartBoundary, FromContentType) {
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(multipart_boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b:c\""), "a b:c");
  EXPECT_EQ(
      multipart_boundary("multipart/form-data;boundary=------------------------d74496d66958873e"),
      "------------------------d74496d66958873e");
}

TEST(MultipartBoundary, MissingOrInvalid) {
  EXPECT_FALSE(multipart_boundary("multipart/form-data"));
  EXPECT_FALSE(multipart_boundary("multipart/form-data; boundary="));
  EXPECT_FALSE(multipart_boundary("application/json; boundary=abc"));
  EXPECT_FALSE(multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'a')));
}

TEST(HeaderValueParse, QuotedParametersWithEscapes) {
  const HeaderValue h = parse_header_value(R"(form-data; name="file"; filename="my \"clip\".mp4")");
  EXPECT_EQ(h.value, "form-data");
  ASSERT_NE(h.param("name"), nullptr);
  EXPECT_EQ(*h.param("name"), "file");
  ASSERT_NE(h.param("filename"), nullptr);
  EXPECT_EQ(*h.param("filename"), "my \"clip\".mp4");
  EXPECT_EQ(h.param("missing"), nullptr);
}

TEST(MultipartParse, TextAndFileParts) {
  const std::string body = body_of({
      "Content-Disposition: form-data; name=\"creator_name\"\r\n\r\nJane Doe",
      "content-disposition: form-data; name=\"lipsync_input\"; filename=\"clip.mp4\"\r\n"
      "Content-Type: video/mp4\r\n\r\nVIDEO-BYTES",
  });
  const MultipartParse r = parse_multipart(body, "XyZ");
  ASSERT_FALSE(r.error) << *r.error;
  ASSERT_EQ(r.parts.size(), 2u);
  EXPECT_EQ(r.parts[0].name, "creator_name");
  EXPECT_FALSE(r.parts[0].filename);
  EXPECT_EQ(r.parts[0].content_type, "");
  EXPECT_EQ(r.parts[0].data, "Jane Doe");
  EXPECT_EQ(r.parts[1].name, "lipsync_input");
  EXPECT_EQ(r.parts[1].filename, "clip.mp4");
  EXPECT_EQ(r.parts[1].content_type, "video/mp4");
  EXPECT_EQ(r.parts[1].data, "VIDEO-BYTES");
}

TEST(MultipartParse, BinaryDataWithCrlfAndDashesIsKeptWhole) {
  constexpr char raw[] = "\0\r\n--Xy\r\n--\xff\r\n";  // almost a boundary, twice
  const std::string data(raw, sizeof raw - 1);
  const std::string body =
      body_of({"Content-Disposition: form-data; name=\"f\"; filename=\"b.mov\"\r\n"
               "Content-Type: video/quicktime\r\n\r\n" +
               data});
  const MultipartParse r = parse_multipart(body, "XyZ");
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].data, data);
  EXPECT_EQ(r.parts[0].data.size(), 14u);
}

TEST(MultipartParse, RepeatedFieldsAndEmptyValues) {
  const std::string body = body_of({
      "Content-Disposition: form-data; name=\"labels\"\r\n\r\na",
      "Content-Disposition: form-data; name=\"labels\"\r\n\r\nb",
      "Content-Disposition: form-data; name=\"keywords\"\r\n\r\n",
  });
  const MultipartParse r = parse_multipart(body, "XyZ");
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.parts.size(), 3u);
  EXPECT_EQ(r.parts[0].data, "a");
  EXPECT_EQ(r.parts[1].data, "b");
  EXPECT_EQ(r.parts[2].data, "");
}

TEST(MultipartParse, IgnoresPreambleAndEpilogue) {
  const std::string body = "preamble text\r\n" +
                           body_of({"Content-Disposition: form-data; name=\"a\"\r\n\r\n1"}) +
                           "epilogue";
  const MultipartParse r = parse_multipart(body, "XyZ");
  ASSERT_FALSE(r.error);
  ASSERT_EQ(r.parts.size(), 1u);
  EXPECT_EQ(r.parts[0].data, "1");
}

TEST(MultipartParse, NoPartsIsValid) {
  const MultipartParse r = parse_multipart("--XyZ--\r\n", "XyZ");
  EXPECT_FALSE(r.error);
  EXPECT_TRUE(r.parts.empty());
}

TEST(MultipartParse, RefusesMalformedBodies) {
  const std::string part = "Content-Disposition: form-data; name=\"a\"\r\n\r\n1";
  const std::string good = body_of({part});
  // No boundary at all, a truncated body, a part without a name, headers never ending.
  EXPECT_TRUE(parse_multipart("", "XyZ").error);
  EXPECT_TRUE(parse_multipart("just text", "XyZ").error);
  EXPECT_TRUE(parse_multipart(good.substr(0, good.size() - 12), "XyZ").error);
  EXPECT_TRUE(parse_multipart(body_of({"Content-Disposition: form-data\r\n\r\n1"}), "XyZ").error);
  EXPECT_TRUE(parse_multipart(body_of({"Content-Type: text/plain\r\n\r\n1"}), "XyZ").error);
  EXPECT_TRUE(parse_multipart("--XyZ\r\nContent-Disposition: form-data; name=\"a\"", "XyZ").error);
  EXPECT_TRUE(parse_multipart("--XyZjunk\r\n", "XyZ").error);
  EXPECT_TRUE(parse_multipart(good, "other").error);
}

}  // namespace
}  // namespace creatify_sim
