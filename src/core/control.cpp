// Routes of the control API (see control.hpp): JSON in, JSON out, errors as {error: …}.
#include "personad/control.hpp"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <sstream>

#include "personad/batch.hpp"
#include "personad/event_feed.hpp"
#include "personad/job_json.hpp"
#include "personad/job_query.hpp"
#include "personad/metrics.hpp"
#include "personad/store.hpp"
#include "personad/tracker.hpp"

namespace personad {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

// Every reply is valid UTF-8 whatever it echoes (a key from the URL, an API's text): the one
// place all of them pass.
ControlResponse reply(int status, json::value v) {
  make_valid_utf8(v);
  return ControlResponse{status, json::serialize(v), "application/json"};
}

ControlResponse error_reply(int status, const std::string& message) {
  return reply(status, json::object{{"error", message}});
}

ControlResponse action_reply(const Result<ActionOutcome>& r) {
  if (!r) return error_reply(http_status_for(r.kind()), r.message());
  return reply(200, json::object{{"message", r->message}, {"job", job_to_json(r->job)}});
}

// Parses a request body as a JSON object; an empty body is an empty object.
Result<json::object> body_object(const std::string& body) {
  if (body.empty()) return json::object{};
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) return make_error("request body: invalid JSON: " + ec.message());
  if (!v.is_object()) return make_error("request body: expected a JSON object");
  return v.get_object();
}

// Replies built outside the coroutines: GCC 12 miscompiles braced JSON initialisers holding
// string literals inside a coroutine ("array used as initializer").
ControlResponse health_reply() {
  return reply(200, json::object{{"status", "ok"},
                                 {"version", PERSONAD_VERSION},
                                 {"pid", static_cast<std::int64_t>(::getpid())}});
}

ControlResponse adopted_reply(std::size_t adopted) {
  return reply(200, json::object{{"adopted", adopted}});
}

ControlResponse invalid_reply(json::array errors) {
  return reply(400, json::object{{"error", "invalid personas; nothing was enqueued"},
                                 {"errors", std::move(errors)}});
}

ControlResponse valid_reply(std::size_t n) { return reply(200, json::object{{"valid", n}}); }

ControlResponse enqueued_reply(const std::vector<EnqueueOutcome>& outcome) {
  json::array results;
  for (const auto& o : outcome)
    results.push_back(json::object{{"key", o.key},
                                   {"result", o.inserted ? "queued" : "known"},
                                   {"state", to_string(o.state)},
                                   {"spec_changed", o.spec_changed}});
  return reply(200, json::object{{"results", results}});
}

json::object spec_error(std::size_t index, const std::string& message) {
  return json::object{{"index", index}, {"key", nullptr}, {"message", message}};
}

json::object field_error(std::size_t index, const std::string& key, const std::string& field,
                         const std::string& message) {
  return json::object{{"index", index}, {"key", key}, {"field", field}, {"message", message}};
}

bool flag(const json::object& o, std::string_view name) {
  auto it = o.find(name);
  return it != o.end() && it->value().is_bool() && it->value().get_bool();
}

// The contract's keys are [A-Za-z0-9._-]{1,128}.
constexpr std::size_t kKeyMaxChars = 128;

ControlResponse key_too_long_reply(std::size_t n) {
  return error_reply(400, "key too long: " + std::to_string(n) + " characters; keys are at most " +
                              std::to_string(kKeyMaxChars));
}

// ---- The peer's own access to a local file (see peer_read_problem) ----

// Inside a user namespace every id without a mapping reads as the overflow id; outside one, no
// id is ambiguous.
struct Overflow {
  bool active = false;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

Overflow read_overflow() {
  Overflow o;
  std::ifstream map("/proc/self/uid_map");
  std::string inside, outside, count;
  // The initial namespace maps everything: "0 0 4294967295".
  if (!(map >> inside >> outside >> count) || (inside == "0" && outside == "0" && count == "4294967295"))
    return o;
  o.active = true;
  o.uid = o.gid = 65534;
  if (std::ifstream f("/proc/sys/kernel/overflowuid"); f) f >> o.uid;
  if (std::ifstream f("/proc/sys/kernel/overflowgid"); f) f >> o.gid;
  return o;
}

const Overflow& overflow_ids() {
  static const Overflow o = read_overflow();
  return o;
}

struct AclEntry {
  std::uint16_t tag = 0;
  std::uint16_t perm = 0;
  std::uint32_t id = 0;
};

// The access ACL of a file (system.posix_acl_access, little-endian version 2), if it has one.
// Any size: falling back to the mode bits for a long ACL would let "other" grant what a named
// entry denies.
std::optional<std::vector<AclEntry>> read_acl(const std::string& path, bool& unreadable) {
  std::vector<char> buf(4 + 8 * 32);
  ssize_t n = -1;
  for (int attempt = 0; attempt < 4; ++attempt) {
    n = ::getxattr(path.c_str(), "system.posix_acl_access", buf.data(), buf.size());
    if (n >= 0 || errno != ERANGE) break;
    const ssize_t size = ::getxattr(path.c_str(), "system.posix_acl_access", nullptr, 0);
    if (size <= 0) break;
    buf.resize(static_cast<std::size_t>(size));
  }
  if (n < 0 && errno != ENODATA && errno != ENOTSUP)
    unreadable = true;  // it may hold entries that deny: grant nothing on the mode bits alone
  if (n < 4) return std::nullopt;  // none (ENODATA) or unsupported: the mode bits decide
  auto u16 = [&](std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned char>(buf[at]) |
                                      static_cast<unsigned char>(buf[at + 1]) << 8);
  };
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(u16(at)) | static_cast<std::uint32_t>(u16(at + 2)) << 16;
  };
  if (u32(0) != 2 || (n - 4) % 8 != 0) return std::nullopt;
  std::vector<AclEntry> acl;
  for (std::size_t at = 4; at + 8 <= static_cast<std::size_t>(n); at += 8)
    acl.push_back({u16(at), u16(at + 2), u32(at + 4)});
  return acl;
}

// Whether `peer` gets `want` (4 read, 1 search) on the inode, as the kernel decides it (acl(5)).
// `overflow_matches`: whether an overflow id of the peer counts as equal to an overflow id of
// the file (see peer_read_problem).
bool grants(const PeerCredentials& peer, const struct stat& st,
            const std::optional<std::vector<AclEntry>>& acl, unsigned want, bool overflow_matches) {
  const Overflow& ov = overflow_ids();
  auto is_user = [&](uid_t id) {
    return peer.uid == id && (overflow_matches || !ov.active || id != ov.uid);
  };
  auto in_group = [&](gid_t id) {
    if (!overflow_matches && ov.active && id == ov.gid) return false;
    return peer.gid == id || std::find(peer.groups.begin(), peer.groups.end(), id) != peer.groups.end();
  };
  auto has = [&](unsigned perm) { return (perm & want) == want; };
  if (!acl) {
    const unsigned mode = st.st_mode;
    if (is_user(st.st_uid)) return has(mode >> 6 & 7);
    if (in_group(st.st_gid)) return has(mode >> 3 & 7);
    return has(mode & 7);
  }
  constexpr std::uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08,
                          kMask = 0x10, kOther = 0x20;
  unsigned mask = 7;
  for (const auto& e : *acl)
    if (e.tag == kMask) mask = e.perm;
  if (is_user(st.st_uid)) {
    for (const auto& e : *acl)
      if (e.tag == kUserObj) return has(e.perm);
    return false;
  }
  for (const auto& e : *acl)
    if (e.tag == kUser && is_user(static_cast<uid_t>(e.id))) return has(e.perm & mask);
  bool matched = false;
  for (const auto& e : *acl) {
    const bool member = (e.tag == kGroupObj && in_group(st.st_gid)) ||
                        (e.tag == kGroup && in_group(static_cast<gid_t>(e.id)));
    if (!member) continue;
    matched = true;
    if (has(e.perm & mask)) return true;
  }
  if (matched) return false;
  for (const auto& e : *acl)
    if (e.tag == kOther) return has(e.perm);
  return false;
}

bool peer_may(const PeerCredentials& peer, const std::string& path, const struct stat& st,
              unsigned want) {
  bool unreadable = false;
  const auto acl = read_acl(path, unreadable);
  if (unreadable) return false;
  // An ambiguous id (the overflow id on both sides) grants only if the answer is the same
  // whether or not it is the same user or group.
  return grants(peer, st, acl, want, true) && grants(peer, st, acl, want, false);
}

std::string join_path(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

std::string parent_of(const std::string& dir) {
  const auto slash = dir.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
}

void push_components(std::deque<std::string>& todo, const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find('/', start), path.size());
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  todo.insert(todo.begin(), parts.begin(), parts.end());
}

std::string uid_text(const PeerCredentials& peer) {
  return "uid " + std::to_string(peer.uid) + ", gid " + std::to_string(peer.gid);
}

// The local file a video field names, as the client will open it (see creatify_client).
std::string local_file_of(std::string_view value) {
  if (value.starts_with("file://")) value.remove_prefix(7);
  else if (value.starts_with("file:")) value.remove_prefix(5);
  return std::string(value);
}

// Every local-file field of a spec the peer may not read itself, as field errors. Checked before
// validate_spec, which opens the files as personad.
std::vector<FieldError> peer_access_errors(const PeerCredentials& peer, const PersonaSpec& spec) {
  std::vector<FieldError> out;
  const std::pair<const char*, const std::string*> fields[] = {
      {"lipsync_input", &spec.lipsync_input}, {"consent_video", &spec.consent_video}};
  for (const auto& [name, value] : fields) {
    if (value->empty() || !is_local_media(*value)) continue;
    const std::string path = local_file_of(*value);
    if (auto problem = peer_read_problem(peer, path); !problem.empty())
      out.push_back({name, "local file '" + path + "' may not be read by the requesting user (" +
                               uid_text(peer) + "): " + problem +
                               "; personad reads only files its requester could read"});
  }
  return out;
}

}  // namespace

std::string peer_read_problem(const PeerCredentials& peer, const std::string& path) {
  if (peer.uid == 0) return {};
  if (path.empty() || path.front() != '/') return {};
  std::deque<std::string> todo;
  push_components(todo, path);
  std::string dir = "/";  // a real path: only directories (never links) are appended to it
  int links = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    if (name == ".") continue;
    // Looking a name up in a directory needs search permission on it.
    struct stat ds {};
    if (::stat(dir.c_str(), &ds) != 0)
      return "cannot examine '" + dir + "': " + std::strerror(errno);
    if (!peer_may(peer, dir, ds, 1)) return "no search permission on directory '" + dir + "'";
    if (name == "..") {
      dir = parent_of(dir);
      continue;
    }
    const std::string next = join_path(dir, name);
    struct stat st {};
    if (::lstat(next.c_str(), &st) != 0)
      return "cannot examine '" + next + "': " + std::strerror(errno);
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40) return "too many symbolic links at '" + next + "'";
      std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 4096) + 1, '\0');
      const ssize_t n = ::readlink(next.c_str(), target.data(), target.size());
      if (n < 0) return "cannot read symbolic link '" + next + "': " + std::strerror(errno);
      target.resize(static_cast<std::size_t>(n));
      if (!target.empty() && target.front() == '/') dir = "/";
      push_components(todo, target);
      continue;
    }
    if (todo.empty()) {
      if (!S_ISREG(st.st_mode)) return "'" + next + "' is not a regular file";
      if (!peer_may(peer, next, st, 4))
        return next == path ? "no read permission on '" + next + "'"
                            : "no read permission on '" + next + "', where '" + path + "' leads";
      return {};
    }
    if (!S_ISDIR(st.st_mode)) return "'" + next + "' is not a directory";
    dir = next;
  }
  return "'" + path + "' names a directory, not a file";
}

ControlApi::ControlApi(Tracker& tracker, StoreRunner& store, const Clock& clock)
    : tracker_(&tracker), store_(store), clock_(clock) {}

ControlApi::ControlApi(StoreRunner& store, const Clock& clock) : store_(store), clock_(clock) {}

// A standby's action: to the active host, whose answer is this one.
asio::awaitable<ControlResponse> ControlApi::forward(ControlRequest request) {
  if (!forward_)
    co_return error_reply(503, "this personad is a standby host and cannot reach the active one");
  co_return co_await forward_(std::move(request));
}

// "role" in a stats or health answer (an object), when the daemon has one.
ControlResponse ControlApi::with_role(ControlResponse r) const {
  if (!role_ || r.status != 200) return r;
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return r;
  v.get_object()["role"] = role_();
  r.body = json::serialize(v);
  return r;
}

namespace {

// One background refresh of GET /v1/stats' campaign estimate (KeptCampaignEta). `kept` is
// shared, so the answer lands even if no stats call waits for it.
asio::awaitable<void> refresh_eta(std::shared_ptr<KeptCampaignEta> kept, StoreRunner& store,
                                  QueryContext qctx) {
  auto eta = co_await store.read(
      [&qctx](Store& st) -> Result<std::optional<SelectionEta>> { return campaign_eta(st, qctx); });
  kept->refreshing = false;
  if (!eta) co_return;  // the next stats call after a minute tries again
  kept->eta = std::move(*eta);
  kept->at = qctx.now;
}

}  // namespace

QueryContext ControlApi::query_context() const {
  QueryContext qctx{.now = clock_.now(), .stuck_after = stuck_after_};
  if (eta_model_) qctx.eta = eta_model_();
  return qctx;
}

asio::awaitable<void> ControlApi::warm_stats_eta() {
  if (stats_eta_->at || stats_eta_->refreshing) co_return;
  QueryContext qctx = query_context();
  if (!qctx.eta) co_return;
  stats_eta_->refreshing = true;
  co_await refresh_eta(stats_eta_, store_, std::move(qctx));
}

asio::awaitable<ControlResponse> ControlApi::handle(ControlRequest req) {
  auto parsed = boost::urls::parse_origin_form(req.target);
  if (!parsed) co_return error_reply(400, "bad request target");
  boost::urls::url_view url = *parsed;
  std::vector<std::string> seg;
  for (auto s : url.segments()) seg.emplace_back(s);
  const bool get = req.method == "GET";
  const bool post = req.method == "POST";

  if (get && seg == std::vector<std::string>{"metrics"}) co_return co_await metrics();
  if (seg.empty() || seg[0] != "v1") co_return error_reply(404, "no such route: " + req.target);
  seg.erase(seg.begin());

  if (get && seg == std::vector<std::string>{"health"}) co_return with_role(health_reply());
  // The query side (job_query.hpp): reads only, on the store's thread. personactl runs the same
  // code on the database when the daemon is down.
  if (get && is_query_route(req.target)) {
    QueryContext qctx = query_context();
    const bool stats = seg == std::vector<std::string>{"stats"};
    // The campaign's estimate groups every active job: worked out by the first stats call,
    // then refreshed in the background once it is a minute old (KeptCampaignEta).
    const bool kept_eta = stats && stats_eta_->at;
    const bool work_out_eta = stats && !kept_eta;
    if (kept_eta) {
      qctx.stats_eta = stats_eta_->eta;
      if (qctx.eta && !stats_eta_->refreshing && qctx.now - *stats_eta_->at >= kStatsEtaMaxAge) {
        stats_eta_->refreshing = true;
        asio::co_spawn(co_await asio::this_coro::executor, refresh_eta(stats_eta_, store_, qctx),
                       asio::detached);
      }
    }
    const std::string& target = req.target;
    auto answer = co_await store_.read(
        [&target, &qctx, work_out_eta](Store& st) -> Result<QueryAnswer> {
          if (work_out_eta) qctx.stats_eta = campaign_eta(st, qctx);
          return answer_query(st, target, qctx);
        });
    if (!answer) co_return error_reply(500, answer.message());
    if (work_out_eta && qctx.eta) {
      stats_eta_->eta = qctx.stats_eta;
      stats_eta_->at = qctx.now;
    }
    ControlResponse r = reply(answer->status, std::move(answer->body));
    if (stats) r = with_role(std::move(r));
    co_return r;
  }
  if (post && seg == std::vector<std::string>{"submit"})
    co_return co_await submit(std::move(req.body), false, std::move(req.peer));
  if (post && seg == std::vector<std::string>{"submit", "check"})
    co_return co_await submit(std::move(req.body), true, std::move(req.peer));
  // A standby has no tracker: the other actions go to the active host as they came.
  if (tracker_ == nullptr) {
    if (get && seg == std::vector<std::string>{"events"})
      co_return error_reply(503, "this personad is a standby host: follow the active one");
    if (post) co_return co_await forward(std::move(req));
  }
  if (post && seg == std::vector<std::string>{"adopt-queued"}) {
    const std::size_t adopted = co_await tracker_->adopt_queued();
    co_return adopted_reply(adopted);
  }
  if (post && seg.size() == 2 && seg[0] == "bulk")
    co_return co_await bulk(seg[1], std::move(req.target), std::move(req.body));
  if (get && seg == std::vector<std::string>{"events"}) co_return co_await events(std::move(req.target));
  if (seg.empty() || seg[0] != "jobs") co_return error_reply(404, "no such route: " + req.target);

  // The action side: what changes a job goes to the tracker, the only writer of job state.
  if (seg.size() < 2) co_return error_reply(404, "no such route: " + req.target);
  const std::string key = seg[1];
  if (key.size() > kKeyMaxChars) co_return key_too_long_reply(key.size());

  if (post && seg.size() == 3) {
    auto body = body_object(req.body);
    if (!body) co_return error_reply(400, body.message());
    if (seg[2] == "cancel") co_return action_reply(co_await tracker_->cancel(key));
    if (seg[2] == "retry") co_return action_reply(co_await tracker_->retry(key, flag(*body, "resubmit")));
    if (seg[2] == "resolve") {
      std::optional<std::string> adopt;
      if (auto it = body->find("adopt"); it != body->end() && it->value().is_string())
        adopt = std::string(it->value().get_string());
      co_return action_reply(co_await tracker_->resolve(key, adopt, flag(*body, "resubmit")));
    }
  }
  co_return error_reply(get || post ? 404 : 405, "no such route: " + req.method + " " + req.target);
}

namespace {

std::vector<SelectionParam> query_params(const std::string& target) {
  std::vector<SelectionParam> out;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return out;
  for (auto p : parsed->params()) out.emplace_back(std::string(p.key), std::string(p.value));
  return out;
}

ControlResponse bulk_reply(const std::vector<BulkLine>& lines, BulkAction action) {
  json::array results;
  results.reserve(lines.size());
  const char* verb = action == BulkAction::cancel ? "cancelled" : "retried";
  for (const auto& l : lines) {
    json::object o;
    o["key"] = l.key;
    o["result"] = l.result == BulkLine::Kind::acted     ? verb
                  : l.result == BulkLine::Kind::skipped ? "skipped"
                                                          : "failed";
    o["state"] = l.state;
    o["why"] = l.why;
    results.push_back(std::move(o));
  }
  json::object body;
  body["results"] = std::move(results);
  return reply(200, std::move(body));
}

// wait_ms, after, max and epoch of GET /v1/events; the rest is refused.
Result<FeedRequest> feed_request(const std::string& target) {
  FeedRequest r;
  for (const auto& [name, value] : query_params(target)) {
    try {
      if (name == "epoch") {
        r.epoch = value;
      } else if (name == "after") {
        r.after = std::stoll(value);
      } else if (name == "wait_ms") {
        r.wait = std::clamp(Millis(std::stoll(value)), Millis(0), kMaxEventWait);
      } else if (name == "max") {
        r.max = static_cast<std::size_t>(std::clamp<long long>(std::stoll(value), 1, 10'000));
      } else {
        return make_error(ErrorKind::invalid, "events: unknown parameter '" + name + "'");
      }
    } catch (const std::exception&) {
      return make_error(ErrorKind::invalid, "events: " + name + ": not a number: '" + value + "'");
    }
  }
  return r;
}

}  // namespace

asio::awaitable<ControlResponse> ControlApi::bulk(std::string action_name, std::string target,
                                                  std::string body_text) {
  if (action_name != "cancel" && action_name != "retry")
    co_return error_reply(404, "no such bulk action: " + action_name);
  const BulkAction action = action_name == "cancel" ? BulkAction::cancel : BulkAction::retry;
  auto body = body_object(body_text);
  if (!body) co_return error_reply(400, body.message());
  const TimePoint now = clock_.now();
  auto sel = parse_selection(query_params(target), now);
  if (!sel) co_return error_reply(400, sel.message());
  SelectOptions options;
  options.stuck_before = add_saturating(now, Millis(-stuck_after_.count()));
  auto lines = co_await tracker_->act_on_selection(action, std::move(*sel), options,
                                                  flag(*body, "resubmit"));
  if (!lines) co_return error_reply(http_status_for(lines.kind()), lines.message());
  co_return bulk_reply(*lines, action);
}

asio::awaitable<ControlResponse> ControlApi::events(std::string target) {
  if (feed_ == nullptr) co_return error_reply(404, "this personad has no event stream");
  auto request = feed_request(target);
  if (!request) co_return error_reply(400, request.message());
  FeedBatch batch = co_await feed_->next(std::move(*request));
  co_return ControlResponse{200, feed_batch_json(batch), "application/json"};
}

asio::awaitable<ControlResponse> ControlApi::submit(std::string body_text, bool check_only,
                                                    std::optional<PeerCredentials> peer) {
  auto body = body_object(body_text);
  if (!body) co_return error_reply(400, body.message());
  std::string source = "personactl";
  if (auto it = body->find("source"); it != body->end() && it->value().is_string())
    source = std::string(it->value().get_string());
  auto it = body->find("personas");
  if (it == body->end() || !it->value().is_array())
    co_return error_reply(400, "request body: 'personas' must be an array");

  std::vector<PersonaSpec> specs;
  json::array errors;
  std::size_t index = 0;
  for (const auto& v : it->value().get_array()) {
    auto spec = spec_from_json(v);
    if (!spec) {
      errors.push_back(spec_error(index, spec.message()));
    } else if (auto denied = peer ? peer_access_errors(*peer, *spec) : std::vector<FieldError>{};
               !denied.empty()) {
      // Refused before validate_spec opens anything for this requester.
      for (const auto& fe : denied) errors.push_back(field_error(index, spec->key, fe.field, fe.message));
    } else {
      for (const auto& fe : validate_spec(*spec))
        errors.push_back(field_error(index, spec->key, fe.field, fe.message));
      specs.push_back(std::move(*spec));
    }
    ++index;
  }
  if (!errors.empty()) co_return invalid_reply(std::move(errors));
  if (check_only) co_return valid_reply(specs.size());
  if (tracker_ == nullptr) {  // a standby: checked here, enqueued by the active host
    // Named first: GCC 12 miscompiles a braced temporary inside a co_await expression.
    ControlRequest forwarded{"POST", "/v1/submit", std::move(body_text), {}};
    co_return co_await forward(std::move(forwarded));
  }
  auto outcome = co_await tracker_->enqueue(std::move(specs), source);
  if (!outcome) co_return error_reply(503, outcome.message());
  co_return enqueued_reply(*outcome);
}

asio::awaitable<std::string> ControlApi::metrics_text() {
  const TimePoint now = clock_.now();
  const Millis stuck_after = stuck_after_;
  // Without the store the page still says what the tracker knows (store families left out).
  auto read = co_await store_.read([now, stuck_after](Store& st) -> Result<MetricsSnapshot> {
    MetricsSnapshot s;
    if (auto r = read_store_metrics(st, now, stuck_after, s); !r) return r.error();
    return s;
  });
  MetricsSnapshot snap = read ? std::move(*read) : MetricsSnapshot{};
  snap.version = PERSONAD_VERSION;
  if (tracker_ != nullptr) {
    snap.tracker = tracker_->metrics();
    snap.in_flight = tracker_->in_flight();
  }
  if (auto due = tracker_ ? tracker_->next_due() : std::nullopt)
    snap.next_due_seconds =
        std::max<double>(0, std::chrono::duration<double>(*due - clock_.now()).count());
  if (metrics_extras_) metrics_extras_(snap);
  co_return render_metrics(snap);
}

asio::awaitable<ControlResponse> ControlApi::metrics() {
  // Awaited apart: GCC 12 miscompiles a co_await inside a braced initializer.
  std::string page = co_await metrics_text();
  co_return ControlResponse{200, std::move(page), "text/plain; version=0.0.4"};
}

}  // namespace personad
