// What personad needs from the Creatify API, as an interface the tracker depends on (and tests
// fake), plus the pure mapping of HTTP responses to ok / transient / permanent.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/result.hpp"

namespace personad {

// The fields of a persona object personad uses.
struct RemotePersona {
  std::string id;
  std::string process_status;
  std::string failed_reason;
  bool is_active = false;
  bool has_labels = false;  // the object carried a "labels" field at all
  std::vector<std::string> labels;
  std::string creator_name;
  std::string gender;
  std::string video_scene;
  std::string keywords;
  std::optional<TimePoint> created_at;
};

enum class Outcome {
  ok,
  transient,     // timeout, reset, 5xx, 429, malformed body: try again later
  permanent,     // a 4xx the request itself caused: do not resend
  unauthorized,  // 401/403: the credentials are wrong; nothing about this job is at fault
};

std::string_view to_string(Outcome o);

template <class T>
struct ApiResult {
  Outcome outcome = Outcome::transient;
  T value{};
  int http_status = 0;                // 0 when no response arrived
  std::optional<Millis> retry_after;  // from a Retry-After header
  std::string message;                // for an operator; never holds a secret
  // False only when the request certainly never reached the API (connect refused, DNS failure,
  // local file unreadable before sending). A create with sent=true and outcome != ok has an
  // unknown result and must be reconciled before anything is resent.
  bool sent = true;
};

// One page of a list of personas.
struct ListPage {
  std::vector<RemotePersona> items;
  // The next page: as parsed, the body's absolute or relative URL; as returned by
  // CreatifyApi::list_page, the target to pass to the next call. Empty on the last page.
  std::string next;
};

// GET /api/personas_v2/count/: the workspace's avatar capacity.
struct AvatarCapacity {
  std::int64_t max_count = 0;
  std::int64_t current_count = 0;
};

class CreatifyApi {
 public:
  virtual ~CreatifyApi() = default;
  // POST /api/personas_v2/ with the spec and labels_as_sent(spec, client_ref).
  virtual boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                                  std::string client_ref) = 0;
  // GET /api/personas/{id}/
  virtual boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) = 0;
  // One page of GET {list_path}: `target` empty for the first page, else the `next` of the
  // page before, exactly as this call returned it (a path and query on base_url). Paging,
  // retries of a failed page and loop detection are the caller's (see remote_list.hpp).
  virtual boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string target) = 0;
  // GET /api/personas_v2/count/ → {max_count, current_count}. An answer of another shape is a
  // permanent outcome (the check is then off). The default: not offered (permanent, 404).
  virtual boost::asio::awaitable<ApiResult<AvatarCapacity>> count();
};

// Reads {max_count, current_count} (non-negative integers); else what is wrong.
Result<AvatarCapacity> parse_capacity(const boost::json::value& v);

// ---- Pure helpers (no I/O), shared by the client and its tests ----

// Outcome for an HTTP status code: 2xx ok; 408, 425, 429, 5xx transient; 401, 403 unauthorized;
// other 4xx permanent; anything else transient.
Outcome classify_http_status(int status);

// Retry-After as seconds ("120") or an HTTP date relative to `now`.
std::optional<Millis> parse_retry_after(std::string_view value, TimePoint now);

// Reads a persona object; an error message when required fields (id) are missing or mistyped.
Result<RemotePersona> parse_persona(const boost::json::value& v);

// Accepts a plain JSON array or {count, next, previous, results}; `next` as the body gives it.
Result<ListPage> parse_list_page(const boost::json::value& v);

// A readable message from an error body: DRF field errors {"field": ["msg", …]} become
// "field: msg; …"; {"detail": "…"} / {"message": "…"} / {"error": "…"} their text; else the
// body cut to a few hundred characters.
std::string error_message_from_body(std::string_view body);

// The JSON body of a create request with URL videos.
boost::json::object create_request_json(const PersonaSpec& spec, std::string_view client_ref);

// Maps a complete HTTP response for a request that returns one persona.
ApiResult<RemotePersona> map_persona_response(int status, std::string_view body,
                                              std::string_view retry_after_header, TimePoint now);

}  // namespace personad
