// Pure mapping between personad and the Creatify API's wire formats: status classes, Retry-After,
// persona and list JSON, readable error bodies, the create request body. No I/O, never throws.
#include "personad/creatify_api.hpp"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cctype>
#include <charconv>

namespace personad {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxBodyExcerpt = 300;  // raw (non-JSON) bodies quoted in a message
constexpr std::size_t kMaxMessage = 1000;     // whole messages built from JSON error bodies

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Cuts at `max` bytes without splitting a UTF-8 sequence, marking the cut.
std::string cut(std::string_view s, std::size_t max) {
  if (s.size() <= max) return std::string(s);
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "…";
}

// Control characters (newlines of an HTML page, say) would break a one-line log entry.
std::string one_line(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool last_space = false;
  for (char c : s) {
    bool space =
        std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x20;
    if (space && last_space) continue;
    out.push_back(space ? ' ' : c);
    last_space = space;
  }
  return std::string(trim(out));
}

// ---- Retry-After ----

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<unsigned> month_number(std::string_view name) {
  static constexpr std::array<std::string_view, 12> kMonths = {
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  for (unsigned i = 0; i < kMonths.size(); ++i)
    if (iequals(name, kMonths[i])) return i + 1;
  return std::nullopt;
}

std::optional<std::chrono::seconds> parse_clock_time(std::string_view s) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return std::nullopt;
  auto h = parse_int(s.substr(0, 2)), m = parse_int(s.substr(3, 2)),
       sec = parse_int(s.substr(6, 2));
  if (!h || !m || !sec || *h > 23 || *m > 59 || *sec > 60) return std::nullopt;
  return std::chrono::hours(*h) + std::chrono::minutes(*m) + std::chrono::seconds(*sec);
}

std::vector<std::string_view> date_tokens(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  auto sep = [](char c) { return c == ' ' || c == ',' || c == '-'; };
  while (i < s.size()) {
    while (i < s.size() && sep(s[i])) ++i;
    std::size_t start = i;
    while (i < s.size() && !sep(s[i])) ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// The three HTTP-date forms of RFC 9110 §5.6.7: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"),
// the obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37
// 1994"). Split on spaces, commas and dashes, the first and second differ only in the year.
std::optional<TimePoint> parse_http_date(std::string_view s) {
  auto t = date_tokens(s);
  std::optional<std::int64_t> day, year;
  std::optional<unsigned> month;
  std::optional<std::chrono::seconds> time;
  if (t.size() == 6 && iequals(t[5], "GMT")) {
    day = parse_int(t[1]);
    month = month_number(t[2]);
    year = parse_int(t[3]);
    if (year && t[3].size() == 2) *year += *year < 70 ? 2000 : 1900;
    time = parse_clock_time(t[4]);
  } else if (t.size() == 5) {
    month = month_number(t[1]);
    day = parse_int(t[2]);
    time = parse_clock_time(t[3]);
    year = parse_int(t[4]);
  }
  if (!day || !month || !year || !time || *year < 1900 || *year > 9999 || *day < 1 || *day > 31)
    return std::nullopt;  // checked before the casts below, so a huge day cannot wrap to 1
  std::chrono::year_month_day ymd{std::chrono::year{static_cast<int>(*year)},
                                  std::chrono::month{*month},
                                  std::chrono::day{static_cast<unsigned>(*day)}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::time_point_cast<Millis>(std::chrono::sys_days{ymd} + *time);
}

// ---- Persona JSON ----

// An optional text field: absent or null reads as "", anything but a string is an error.
bool read_text(const json::object& o, std::string_view key, std::string& out, std::string& error) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return true;
  if (!it->value().is_string()) {
    error = std::string(key) + " is not a string";
    return false;
  }
  out = std::string(it->value().get_string());
  return true;
}

bool read_labels(const json::object& o, RemotePersona& p, std::string& error) {
  auto it = o.find("labels");
  if (it == o.end() || it->value().is_null()) return true;
  const auto* arr = it->value().if_array();
  if (!arr) {
    error = "labels is not an array";
    return false;
  }
  p.has_labels = true;
  for (const auto& item : *arr) {
    if (!item.is_string()) {
      error = "labels holds a value that is not a string";
      return false;
    }
    p.labels.emplace_back(item.get_string());
  }
  return true;
}

// failed_reason is only shown to people, so an unexpected shape is kept as its JSON text
// rather than failing the whole persona.
void read_failed_reason(const json::object& o, RemotePersona& p) {
  auto it = o.find("failed_reason");
  if (it == o.end() || it->value().is_null()) return;
  if (it->value().is_string())
    p.failed_reason = std::string(it->value().get_string());
  else
    p.failed_reason = json::serialize(it->value());
}

bool read_created_at(const json::object& o, RemotePersona& p, std::string& error) {
  auto it = o.find("created_at");
  if (it == o.end() || it->value().is_null()) return true;
  if (const auto* s = it->value().if_string()) {
    p.created_at = parse_rfc3339(*s);
    if (p.created_at) return true;
  }
  error = "created_at is not an RFC 3339 time: " + cut(json::serialize(it->value()), 80);
  return false;
}

// ---- Error bodies ----

// Flattens DRF-style error JSON into "field: message" entries; nested fields are joined with
// dots and list positions shown as [i], so "labels[1]: Too long." names the culprit.
void collect_errors(const json::value& v, const std::string& field, std::vector<std::string>& out) {
  auto with_field = [&](std::string text) {
    return field.empty() || field == "non_field_errors" ? text : field + ": " + text;
  };
  switch (v.kind()) {
    case json::kind::string:
      out.push_back(with_field(std::string(v.get_string())));
      break;
    case json::kind::array: {
      const auto& arr = v.get_array();
      bool all_strings =
          std::all_of(arr.begin(), arr.end(), [](const json::value& e) { return e.is_string(); });
      if (all_strings && !arr.empty()) {
        std::string joined;
        for (const auto& e : arr)
          joined += (joined.empty() ? "" : " ") + std::string(e.get_string());
        out.push_back(with_field(joined));
      } else {
        for (std::size_t i = 0; i < arr.size(); ++i)
          collect_errors(arr[i], field + "[" + std::to_string(i) + "]", out);
      }
      break;
    }
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        std::string key(kv.key());
        collect_errors(kv.value(), field.empty() ? key : field + "." + key, out);
      }
      break;
    case json::kind::null:
      break;
    default:
      out.push_back(with_field(json::serialize(v)));
  }
}

std::string message_from_json(const json::value& v) {
  if (const auto* o = v.if_object()) {
    for (std::string_view key : {"detail", "message", "error"}) {
      auto it = o->find(key);
      if (it != o->end() && it->value().is_string()) return std::string(it->value().get_string());
    }
  }
  std::vector<std::string> parts;
  collect_errors(v, "", parts);
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

// Proxies answer 502/504 with an HTML page; its <title> is the useful part.
std::optional<std::string> html_title(std::string_view body) {
  std::string lower(body.substr(0, 4096));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto open = lower.find("<title>");
  if (open == std::string::npos) return std::nullopt;
  auto close = lower.find("</title>", open);
  if (close == std::string::npos) return std::nullopt;
  auto title = one_line(body.substr(open + 7, close - open - 7));
  if (title.empty()) return std::nullopt;
  return title;
}

}  // namespace

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::ok:
      return "ok";
    case Outcome::transient:
      return "transient";
    case Outcome::permanent:
      return "permanent";
    case Outcome::unauthorized:
      return "unauthorized";
  }
  return "unknown";
}

Outcome classify_http_status(int status) {
  if (status >= 200 && status <= 299) return Outcome::ok;
  if (status == 401 || status == 403) return Outcome::unauthorized;
  if (status == 408 || status == 425 || status == 429) return Outcome::transient;
  if (status >= 400 && status <= 499) return Outcome::permanent;
  return Outcome::transient;  // 5xx, and 1xx/3xx, which this client never asks for
}

std::optional<Millis> parse_retry_after(std::string_view value, TimePoint now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delay-seconds of any length: a value past what Millis holds saturates (callers cap it).
    while (value.size() > 1 && value.front() == '0') value.remove_prefix(1);
    constexpr std::int64_t kMaxSeconds = Millis::max().count() / 1000;
    auto seconds = value.size() <= 18 ? parse_int(value) : std::nullopt;  // 18 digits fit
    if (!seconds || *seconds > kMaxSeconds) return Millis::max();
    return Millis(*seconds * 1000);
  }
  auto at = parse_http_date(value);
  if (!at) return std::nullopt;
  if (*at <= now) return Millis(0);
  // Both are within a few millennia of 1970 in practice, but `now` comes from outside.
  std::int64_t diff = 0;
  if (__builtin_sub_overflow(at->time_since_epoch().count(), now.time_since_epoch().count(),
                             &diff))
    return Millis::max();
  return Millis(diff);
}

Result<RemotePersona> parse_persona(const json::value& v) {
  const auto* o = v.if_object();
  if (!o) return make_error("persona is not a JSON object");
  RemotePersona p;
  auto id = o->find("id");
  if (id == o->end() || id->value().is_null()) return make_error("persona has no id");
  if (!id->value().is_string() || id->value().get_string().empty())
    return make_error("persona id is not a non-empty string");
  p.id = std::string(id->value().get_string());

  auto status = o->find("process_status");
  if (status == o->end() || status->value().is_null())
    return make_error("persona " + p.id + " has no process_status");
  if (!status->value().is_string())
    return make_error("persona " + p.id + ": process_status is not a string");
  p.process_status = std::string(status->value().get_string());

  auto active = o->find("is_active");
  if (active != o->end() && !active->value().is_null()) {
    if (!active->value().is_bool())
      return make_error("persona " + p.id + ": is_active is not a boolean");
    p.is_active = active->value().get_bool();
  }

  std::string error;
  read_failed_reason(*o, p);
  bool fine = read_labels(*o, p, error) && read_created_at(*o, p, error) &&
              read_text(*o, "creator_name", p.creator_name, error) &&
              read_text(*o, "gender", p.gender, error) &&
              read_text(*o, "video_scene", p.video_scene, error) &&
              read_text(*o, "keywords", p.keywords, error);
  if (!fine) return make_error("persona " + p.id + ": " + error);
  return p;
}

Result<ListPage> parse_list_page(const json::value& v) {
  const json::array* items = v.if_array();
  ListPage page;
  if (!items) {
    const auto* o = v.if_object();
    if (!o) return make_error("list response is neither an array nor an object");
    auto results = o->find("results");
    if (results == o->end() || !results->value().is_array())
      return make_error("list response has no \"results\" array");
    items = &results->value().get_array();
    auto next = o->find("next");
    if (next != o->end() && !next->value().is_null()) {
      if (!next->value().is_string()) return make_error("list response: next is not a string");
      page.next = std::string(next->value().get_string());
    }
  }
  page.items.reserve(items->size());
  for (std::size_t i = 0; i < items->size(); ++i) {
    auto p = parse_persona((*items)[i]);
    if (!p) return make_error("list item " + std::to_string(i) + ": " + p.message());
    page.items.push_back(std::move(p).value());
  }
  return page;
}

std::string error_message_from_body(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec) {
    auto text = one_line(message_from_json(v));
    if (!text.empty()) return cut(text, kMaxMessage);
  }
  if (auto title = html_title(body)) return cut(*title, kMaxBodyExcerpt);
  return cut(one_line(body), kMaxBodyExcerpt);
}

json::object create_request_json(const PersonaSpec& spec, std::string_view client_ref) {
  json::object o;
  o["gender"] = spec.gender;
  o["creator_name"] = spec.creator_name;
  o["video_scene"] = spec.video_scene;
  if (!spec.keywords.empty()) o["keywords"] = spec.keywords;
  o["lipsync_input"] = spec.lipsync_input;
  if (!spec.consent_video.empty()) o["consent_video"] = spec.consent_video;
  json::array labels;
  for (auto& l : labels_as_sent(spec, client_ref)) labels.emplace_back(l);
  o["labels"] = std::move(labels);
  if (!spec.webhook_url.empty()) o["webhook_url"] = spec.webhook_url;
  if (!spec.gdown_url.empty()) o["gdown_url"] = spec.gdown_url;
  return o;
}

ApiResult<RemotePersona> map_persona_response(int status, std::string_view body,
                                              std::string_view retry_after_header, TimePoint now) {
  ApiResult<RemotePersona> r;
  r.http_status = status;
  r.outcome = classify_http_status(status);
  if (r.outcome == Outcome::ok) {
    boost::system::error_code ec;
    // The document lives only while its fields are copied out: an arena on the stack spares
    // the allocator a call per value (a poll's answer is a few hundred bytes; a larger one
    // takes the rest from the heap).
    unsigned char arena[4096];
    json::monotonic_resource scratch(arena, sizeof arena);
    json::value v = json::parse(body, ec, &scratch);
    if (ec) {
      r.outcome = Outcome::transient;
      r.message = "malformed response: HTTP " + std::to_string(status) + " body is not JSON (" +
                  ec.message() + ")";
      return r;
    }
    auto persona = parse_persona(v);
    if (!persona) {
      r.outcome = Outcome::transient;
      r.message = "malformed response: " + persona.message();
      return r;
    }
    r.value = std::move(persona).value();
    return r;
  }
  r.retry_after = parse_retry_after(retry_after_header, now);
  auto detail = error_message_from_body(body);
  r.message = "HTTP " + std::to_string(status) + (detail.empty() ? "" : ": " + detail);
  return r;
}

asio::awaitable<ApiResult<AvatarCapacity>> CreatifyApi::count() {
  ApiResult<AvatarCapacity> r;
  r.outcome = Outcome::permanent;
  r.http_status = 404;
  r.message = "the avatar count is not offered here";
  co_return r;
}

Result<AvatarCapacity> parse_capacity(const boost::json::value& v) {
  const auto* o = v.if_object();
  if (o == nullptr) return make_error(ErrorKind::invalid, "expected an object {max_count, current_count}");
  AvatarCapacity c;
  for (auto [name, field] : {std::pair{"max_count", &c.max_count},
                             std::pair{"current_count", &c.current_count}}) {
    const auto* f = o->if_contains(name);
    if (f == nullptr) return make_error(ErrorKind::invalid, std::string("no ") + name);
    if (f->is_int64()) *field = f->as_int64();
    else if (f->is_uint64() && f->as_uint64() < (1ULL << 62)) *field = static_cast<std::int64_t>(f->as_uint64());
    else return make_error(ErrorKind::invalid, std::string(name) + " is not an integer");
    if (*field < 0) return make_error(ErrorKind::invalid, std::string(name) + " is negative");
  }
  return c;
}

}  // namespace personad
