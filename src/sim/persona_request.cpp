// Create-request parsing and validation, with Django REST framework's messages and rules
// (whitespace trimmed, lengths in code points, every failing field reported at once).
#include "persona_request.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <cstdint>
#include <map>

#include "multipart.hpp"
#include "query_string.hpp"

namespace creatify_sim {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxText = 255;
constexpr std::size_t kMaxUrl = 200;

struct UploadedFile {
  std::string filename;
  std::string content_type;
  std::size_t size = 0;
};
// A JSON bool, object or array where text was expected; `shown` is how DRF would quote it.
struct NotText {
  std::string shown;
};
using RawValue = std::variant<std::nullptr_t, std::string, UploadedFile, NotText>;

// The request's fields before validation, whatever the body's encoding.
struct RawFields {
  std::map<std::string, RawValue, std::less<>> values;  // the last value wins, like QueryDict
  bool has_labels = false;
  std::vector<RawValue> labels;
  std::optional<std::string> labels_type;  // Python type name when `labels` is not a list
};

RequestError detail(unsigned status, std::string message) {
  return RequestError{status, json::object{{"detail", std::move(message)}}};
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\r\n\f\v";
  const std::size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string_view python_type(const json::value& v) {
  switch (v.kind()) {
    case json::kind::array:
      return "list";
    case json::kind::string:
      return "str";
    case json::kind::int64:
    case json::kind::uint64:
      return "int";
    case json::kind::double_:
      return "float";
    case json::kind::bool_:
      return "bool";
    case json::kind::null:
      return "NoneType";
    case json::kind::object:
      return "dict";
  }
  return "object";
}

std::string shortest_text(double d) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  return ec == std::errc{} ? std::string(buf, end) : std::string();
}

RawValue from_json(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::null:
      return nullptr;
    // DRF's CharField accepts numbers and stores their text.
    case json::kind::int64:
      return std::to_string(v.get_int64());
    case json::kind::uint64:
      return std::to_string(v.get_uint64());
    case json::kind::double_:
      return shortest_text(v.get_double());
    case json::kind::bool_:
      return NotText{v.get_bool() ? "True" : "False"};
    default:
      return NotText{json::serialize(v)};
  }
}

std::string basename(std::string_view path) {
  const std::size_t slash = path.find_last_of("/\\");
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

void add_form_value(RawFields& raw, std::string name, RawValue value) {
  if (name == "labels") {
    raw.has_labels = true;
    raw.labels.push_back(std::move(value));
  } else {
    raw.values[std::move(name)] = std::move(value);
  }
}

std::variant<RawFields, RequestError> read_json(std::string_view body) {
  boost::system::error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec) return detail(400, "JSON parse error - " + ec.message());
  if (!doc.is_object()) {
    json::object errors;
    errors["non_field_errors"] = json::array{"Invalid data. Expected a dictionary, but got " +
                                             std::string(python_type(doc)) + "."};
    return RequestError{400, std::move(errors)};
  }
  RawFields raw;
  for (const auto& [key, value] : doc.get_object()) {
    if (key != "labels") {
      raw.values[std::string(key)] = from_json(value);
      continue;
    }
    raw.has_labels = true;
    if (!value.is_array()) {
      raw.labels_type = python_type(value);
      continue;
    }
    for (const auto& item : value.get_array()) raw.labels.push_back(from_json(item));
  }
  return raw;
}

std::variant<RawFields, RequestError> read_multipart(std::string_view content_type,
                                                     std::string_view body) {
  const auto boundary = multipart_boundary(content_type);
  if (!boundary)
    return detail(400, "Multipart form parse error - Invalid boundary in multipart: None");
  MultipartParse parsed = parse_multipart(body, *boundary);
  if (parsed.error) return detail(400, "Multipart form parse error - " + *parsed.error);
  RawFields raw;
  for (auto& part : parsed.parts) {
    RawValue value;
    if (part.filename)
      value = UploadedFile{basename(*part.filename), part.content_type, part.data.size()};
    else
      value = std::string(part.data);
    add_form_value(raw, std::move(part.name), std::move(value));
  }
  return raw;
}

RawFields read_urlencoded(std::string_view body) {
  RawFields raw;
  for (auto& [key, value] : parse_query_string(body))
    add_form_value(raw, std::move(key), std::move(value));
  return raw;
}

// Collects DRF-style field errors while extracting the validated values.
class Validator {
 public:
  explicit Validator(const RawFields& raw) : raw_(raw) {}

  std::optional<std::string> text(std::string_view field, bool required, std::size_t max) {
    const RawValue* v = find(field);
    if (!v && required) return fail(field, "This field is required.");
    if (!v) return std::nullopt;
    if (std::holds_alternative<std::nullptr_t>(*v))
      return required ? fail(field, "This field may not be null.") : std::nullopt;
    const std::string* s = std::get_if<std::string>(v);
    if (!s) return fail(field, "Not a valid string.");
    return checked_text(field, *s, required, max);
  }

  std::optional<std::string> gender() {
    const RawValue* v = find("gender");
    if (!v) return fail("gender", "This field is required.");
    if (std::holds_alternative<std::nullptr_t>(*v))
      return fail("gender", "This field may not be null.");
    std::string shown;
    if (const auto* s = std::get_if<std::string>(v))
      shown = *s;
    else if (const auto* n = std::get_if<NotText>(v))
      shown = n->shown;
    else
      shown = std::get<UploadedFile>(*v).filename;
    if (shown == "m" || shown == "f" || shown == "nb") return shown;
    return fail("gender", "\"" + shown + "\" is not a valid choice.");
  }

  // lipsync_input / consent_video: a URL (text) or an uploaded video file.
  struct Video {
    std::string stored;
    std::optional<std::string> upload;
  };
  std::optional<Video> video(std::string_view field, bool required, std::size_t max_url) {
    const RawValue* v = find(field);
    if (const auto* file = v ? std::get_if<UploadedFile>(v) : nullptr)
      return uploaded(field, *file);
    auto url = text(field, required, max_url);
    if (!url) return std::nullopt;
    return Video{std::move(*url), std::nullopt};
  }

  std::vector<std::string> labels() {
    std::vector<std::string> out;
    if (!raw_.has_labels) return out;
    if (raw_.labels_type) {
      if (*raw_.labels_type == "NoneType")
        fail("labels", "This field may not be null.");
      else
        fail("labels", "Expected a list of items but got type \"" + *raw_.labels_type + "\".");
      return out;
    }
    json::object item_errors;  // DRF's ListField reports child errors by index
    for (std::size_t i = 0; i < raw_.labels.size(); ++i) {
      if (const char* problem = label_problem(raw_.labels[i]))
        item_errors[std::to_string(i)] = json::array{problem};
      else
        out.emplace_back(trim(std::get<std::string>(raw_.labels[i])));
    }
    if (!item_errors.empty()) errors_["labels"] = std::move(item_errors);
    return out;
  }

  std::optional<std::string> webhook_url() {
    auto url = text("webhook_url", false, kMaxUrl);
    if (url && !url->empty() && !is_http_url(*url)) fail("webhook_url", "Enter a valid URL.");
    return url;
  }

  json::object take_errors() { return std::move(errors_); }

 private:
  const RawValue* find(std::string_view field) const {
    const auto it = raw_.values.find(field);
    return it == raw_.values.end() ? nullptr : &it->second;
  }

  // Records the error; returns nullopt so that `return fail(...)` ends any extractor.
  std::nullopt_t fail(std::string_view field, std::string message) {
    json::value& slot = errors_[field];
    if (!slot.is_array()) slot = json::array{};
    slot.get_array().emplace_back(std::move(message));
    return std::nullopt;
  }

  static const char* label_problem(const RawValue& v) {
    if (std::holds_alternative<std::nullptr_t>(v)) return "This field may not be null.";
    const auto* s = std::get_if<std::string>(&v);
    if (!s) return "Not a valid string.";
    return trim(*s).empty() ? "This field may not be blank." : nullptr;
  }

  std::optional<std::string> checked_text(std::string_view field, std::string_view value,
                                          bool required, std::size_t max) {
    const std::string_view trimmed = trim(value);
    if (required && trimmed.empty()) return fail(field, "This field may not be blank.");
    if (utf8_length(trimmed) > max)
      return fail(field,
                  "Ensure this field has no more than " + std::to_string(max) + " characters.");
    return std::string(trimmed);
  }

  std::optional<Video> uploaded(std::string_view field, const UploadedFile& file) {
    if (file.filename.empty()) return fail(field, "No filename could be determined.");
    if (file.size == 0) return fail(field, "The submitted file is empty.");
    if (file.content_type != "video/mp4" && file.content_type != "video/quicktime")
      return fail(field, "Unsupported file type \"" + file.content_type +
                             "\": upload video/mp4 or video/quicktime.");
    return Video{"uploaded:" + file.filename + " (" + std::to_string(file.size) + " bytes)",
                 file.filename};
  }

  static bool is_http_url(std::string_view s) {
    const auto url = boost::urls::parse_absolute_uri(s);
    if (!url) return false;
    const auto scheme = url->scheme_id();
    return (scheme == boost::urls::scheme::http || scheme == boost::urls::scheme::https) &&
           !url->encoded_host().empty();
  }

  const RawFields& raw_;
  json::object errors_;
};

CreateRequest validate(const RawFields& raw) {
  Validator v(raw);
  PersonaInput in;
  // Field order follows the API's sample, so errors come out in the same order.
  auto gender = v.gender();
  auto creator_name = v.text("creator_name", true, kMaxText);
  auto video_scene = v.text("video_scene", true, kMaxText);
  in.keywords = v.text("keywords", false, kMaxText);
  auto lipsync = v.video("lipsync_input", true, SIZE_MAX);
  auto consent = v.video("consent_video", false, kMaxUrl);
  in.labels = v.labels();
  in.webhook_url = v.webhook_url();
  in.gdown_url = v.text("gdown_url", false, SIZE_MAX);

  json::object errors = v.take_errors();
  if (!errors.empty()) return RequestError{400, std::move(errors)};
  in.gender = std::move(*gender);
  in.creator_name = std::move(*creator_name);
  in.video_scene = std::move(*video_scene);
  in.lipsync_input = std::move(lipsync->stored);
  in.lipsync_upload = std::move(lipsync->upload);
  if (consent) in.consent_video = std::move(consent->stored);
  return in;
}

}  // namespace

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (const unsigned char c : s) n += (c & 0xC0) != 0x80;  // count every non-continuation byte
  return n;
}

CreateRequest parse_create_request(std::string_view content_type, std::string_view body) {
  const std::string media = parse_header_value(content_type).value;
  std::variant<RawFields, RequestError> raw;
  if (media == "application/json" ||
      (media.starts_with("application/") && media.ends_with("+json")))
    raw = read_json(body);
  else if (media == "multipart/form-data")
    raw = read_multipart(content_type, body);
  else if (media == "application/x-www-form-urlencoded" || (media.empty() && body.empty()))
    raw = read_urlencoded(body);
  else
    return RequestError{
        415, json::object{{"detail", "Unsupported media type \"" + std::string(content_type) +
                                         "\" in request."}}};
  if (auto* error = std::get_if<RequestError>(&raw)) return std::move(*error);
  return validate(std::get<RawFields>(raw));
}

}  // namespace creatify_sim
