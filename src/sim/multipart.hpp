// A multipart/form-data body parser (RFC 7578) for the create endpoint. Parts refer into the
// body without copying, so a large uploaded video is only ever held once, in the request.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace creatify_sim {

// A header value with parameters, e.g. `form-data; name="x"; filename="y.mp4"`.
struct HeaderValue {
  std::string value;                                        // lower-cased
  std::vector<std::pair<std::string, std::string>> params;  // names lower-cased, unquoted

  const std::string* param(std::string_view name) const;
};
HeaderValue parse_header_value(std::string_view text);

struct MultipartPart {
  std::string name;
  std::optional<std::string> filename;  // present for file parts
  std::string content_type;             // lower-cased, without parameters; "" if not given
  std::string_view data;                // into the body passed to parse_multipart
};

struct MultipartParse {
  std::vector<MultipartPart> parts;
  std::optional<std::string> error;  // set when the body is not valid multipart
};

// The boundary parameter of a `multipart/form-data` Content-Type; nullopt if absent or invalid.
std::optional<std::string> multipart_boundary(std::string_view content_type);

MultipartParse parse_multipart(std::string_view body, std::string_view boundary);

}  // namespace creatify_sim
