// The simulated Creatify personas API: authentication, create, get by id and the three list
// endpoints, answered from the persona book. No sockets and no faults here (see sim_server).
#pragma once

#include <optional>
#include <string>

#include "persona_book.hpp"
#include "sim_http.hpp"

namespace creatify_sim {

enum class ListFormat { paginated, array };

struct ApiSettings {
  std::optional<std::string> api_id;               // when set, X-API-ID must equal it
  std::optional<std::string> api_key;              // when set, X-API-KEY must equal it
  ListFormat list_format = ListFormat::paginated;  // for GET /api/personas_v2/
  std::size_t page_size = 20;                      // default page size; ?page_size= up to 100
  bool labels_in_lists = true;                     // --no-labels clears it
  std::string fallback_host = "127.0.0.1";         // for links when a request has no Host
  // --max-avatars N: the workspace's capacity (GET /api/personas_v2/count/; a create beyond it
  // is refused 400). 0: no limit (the count says max_count 1,000,000).
  std::size_t max_avatars = 0;
};

// What a request does, for counters and for deciding whether a lost create can apply.
enum class RouteKind { create, get, list, other };
RouteKind route_kind(http::verb method, std::string_view target);

class SimApi {
 public:
  SimApi(PersonaBook& book, ApiSettings settings) : book_(book), settings_(std::move(settings)) {}

  Response handle(const Request& req);

  ApiSettings& settings() { return settings_; }

 private:
  bool authorized(const Request& req) const;
  Response create(const Request& req);
  Response get(const Request& req, std::string_view id);
  Response list_array(const Request& req);
  Response list_page(const Request& req, std::string_view path, std::string_view query);
  boost::json::value persona_json(const Persona& p, bool in_list) const;

  PersonaBook& book_;
  ApiSettings settings_;
};

}  // namespace creatify_sim
