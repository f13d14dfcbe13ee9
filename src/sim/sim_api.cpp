// The simulated Creatify personas API. Listings are newest first; pagination follows Django
// REST framework's PageNumberPagination (404 "Invalid page." past the end, page_size capped).
#include "sim_api.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <charconv>

#include "persona_json.hpp"
#include "persona_request.hpp"
#include "query_string.hpp"

namespace creatify_sim {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxPageSize = 100;
constexpr std::string_view kV2Path = "/api/personas_v2/";
constexpr std::string_view kAllPath = "/api/personas/";
constexpr std::string_view kPaginatedPath = "/api/personas/paginated/";
constexpr std::string_view kCountPath = "/api/personas_v2/count/";
constexpr std::size_t kUnlimitedAvatars = 1'000'000;

struct Target {
  std::string_view path;
  std::string_view query;
};

Target split_target(std::string_view target) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

// "/api/personas/{id}/" → id; empty when the path is not of that shape.
std::string_view persona_id(std::string_view path) {
  if (!path.starts_with(kAllPath) || !path.ends_with('/')) return {};
  const std::string_view id = path.substr(kAllPath.size(), path.size() - kAllPath.size() - 1);
  return id.find('/') == std::string_view::npos ? id : std::string_view{};
}

std::optional<std::size_t> positive_int(std::string_view s) {
  std::size_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size() || v == 0) return std::nullopt;
  return v;
}

struct PageRequest {
  std::size_t page = 1;
  std::size_t size = 20;
};

// nullopt when ?page= is not a positive integer (DRF: 404 "Invalid page.").
// A bad ?page_size= falls back to the default, like DRF.
std::optional<PageRequest> parse_page_request(std::string_view query, std::size_t default_size) {
  PageRequest req{1, default_size};
  for (const auto& [key, value] : parse_query_string(query)) {
    if (key == "page") {
      const auto page = positive_int(value);
      if (!page) return std::nullopt;
      req.page = *page;
    } else if (key == "page_size") {
      if (const auto size = positive_int(value)) req.size = std::min(*size, kMaxPageSize);
    }
  }
  return req;
}

}  // namespace

RouteKind route_kind(http::verb method, std::string_view target) {
  const std::string_view path = split_target(target).path;
  if (path == kV2Path) return method == http::verb::post ? RouteKind::create : RouteKind::list;
  if (path == kAllPath || path == kPaginatedPath || path == kCountPath) return RouteKind::list;
  if (!persona_id(path).empty()) return RouteKind::get;
  return RouteKind::other;
}

bool SimApi::authorized(const Request& req) const {
  const std::string_view id = req["X-API-ID"];
  const std::string_view key = req["X-API-KEY"];
  if (id.empty() || key.empty()) return false;
  if (settings_.api_id && id != *settings_.api_id) return false;
  if (settings_.api_key && key != *settings_.api_key) return false;
  return true;
}

Response SimApi::handle(const Request& req) {
  const auto [path, query] = split_target(req.target());
  const bool v2 = path == kV2Path;
  const bool all = path == kAllPath;
  const bool paginated = path == kPaginatedPath;
  const bool count = path == kCountPath;
  const std::string_view id = paginated || count ? std::string_view{} : persona_id(path);
  if (!v2 && !all && !paginated && !count && id.empty())
    return detail_response(req, http::status::not_found, "Not found.");
  // Like DRF: authentication comes before the method check.
  if (!authorized(req))
    return detail_response(req, http::status::unauthorized, "Invalid API credentials.");

  const bool is_get = req.method() == http::verb::get;
  if (v2 && req.method() == http::verb::post) return create(req);
  if (v2 && is_get)
    return settings_.list_format == ListFormat::array ? list_array(req)
                                                      : list_page(req, path, query);
  if (all && is_get) return list_array(req);
  if (count && is_get) {
    json::object body;
    body["max_count"] = settings_.max_avatars ? settings_.max_avatars : kUnlimitedAvatars;
    body["current_count"] = book_.size();
    return json_response(req, http::status::ok, body);
  }
  if (paginated && is_get) return list_page(req, path, query);
  if (!id.empty() && is_get) return get(req, id);
  return method_not_allowed(req, v2 ? "GET, POST" : "GET");
}

json::value SimApi::persona_json(const Persona& p, bool in_list) const {
  return persona_to_json(p, book_.status_of(p), !in_list || settings_.labels_in_lists);
}

Response SimApi::create(const Request& req) {
  CreateRequest parsed = parse_create_request(req[http::field::content_type], req.body());
  if (auto* error = std::get_if<RequestError>(&parsed))
    return json_response(req, static_cast<http::status>(error->status), error->body);
  if (settings_.max_avatars && book_.size() >= settings_.max_avatars)
    return detail_response(req, http::status::bad_request,
                           "Avatar capacity reached (" + std::to_string(book_.size()) + " of " +
                               std::to_string(settings_.max_avatars) + ").");
  const Persona& p = book_.create(std::move(std::get<PersonaInput>(parsed)));
  return json_response(req, http::status::created, persona_json(p, false));
}

Response SimApi::get(const Request& req, std::string_view id) {
  const Persona* p = book_.find(id);
  if (!p) return detail_response(req, http::status::not_found, "Not found.");
  return json_response(req, http::status::ok, persona_json(*p, false));
}

Response SimApi::list_array(const Request& req) {
  const std::vector<const Persona*> listed = book_.listed();
  json::array out;
  out.reserve(listed.size());
  for (const Persona* p : listed) out.push_back(persona_json(*p, true));
  return json_response(req, http::status::ok, out);
}

Response SimApi::list_page(const Request& req, std::string_view path, std::string_view query) {
  const auto page = parse_page_request(query, settings_.page_size);
  if (!page) return detail_response(req, http::status::not_found, "Invalid page.");
  const std::vector<const Persona*> listed = book_.listed();  // --list-lag-ms applies
  const std::size_t count = listed.size();
  // An empty first page is valid; any page past the last is not.
  const std::size_t pages = count == 0 ? 1 : (count + page->size - 1) / page->size;
  if (page->page > pages) return detail_response(req, http::status::not_found, "Invalid page.");

  const std::string_view host_header = req[http::field::host];
  const std::string base =
      "http://" + std::string(host_header.empty() ? settings_.fallback_host : host_header) +
      std::string(path) + "?page=";
  const auto link = [&](std::size_t n) {
    return json::value(base + std::to_string(n) + "&page_size=" + std::to_string(page->size));
  };
  const std::size_t first = (page->page - 1) * page->size;
  const std::size_t last = std::min(count, first + page->size);
  json::array results;
  results.reserve(last - first);
  for (std::size_t i = first; i < last; ++i) results.push_back(persona_json(*listed[i], true));

  json::object body;
  body["count"] = count;
  body["next"] = last < count ? link(page->page + 1) : json::value(nullptr);
  body["previous"] = page->page > 1 ? link(page->page - 1) : json::value(nullptr);
  body["results"] = std::move(results);
  return json_response(req, http::status::ok, body);
}

}  // namespace creatify_sim
