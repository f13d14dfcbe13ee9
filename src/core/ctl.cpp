// personactl's commands (see ctl.hpp): each asks the daemon over the control socket, or reads
// the database when it is down, and prints a table or the JSON document of the contract.
#include "personad/ctl.hpp"

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <csignal>
#include <thread>
#include <unordered_set>

#include "personad/batch.hpp"
#include "personad/control.hpp"
#include "personad/follow.hpp"
#include "personad/instance_lock.hpp"
#include "personad/job_json.hpp"
#include "personad/job_query.hpp"
#include "personad/store.hpp"
#include "personad/store_open.hpp"
#include "personad/watch_screen.hpp"

namespace personad::ctl {

namespace json = boost::json;

std::string render_table(const std::vector<std::vector<std::string>>& rows) {
  std::string out;
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + '\n';
  }
  return out;
}

namespace {

std::string encode_key(const std::string& key) {
  return boost::urls::encode(key, boost::urls::unreserved_chars);
}

std::string text(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.get_string());
  return json::serialize(v);
}

std::string field(const json::object& o, std::string_view name) {
  auto it = o.find(name);
  return it == o.end() ? "-" : text(it->value());
}

void print_table(const Context& ctx, const std::vector<std::vector<std::string>>& rows) {
  ctx.out << render_table(rows);
}

// Answer of the daemon, or of the database when the daemon is not running (reads only).
struct Answer {
  int status = 0;  // HTTP-like: 200, 404, …
  json::value body;
};

bool busy(const ControlReply& reply) {
  if (reply.status != 503) return false;
  boost::system::error_code ec;
  json::value v = json::parse(reply.body, ec);
  if (ec || !v.is_object()) return false;
  auto it = v.get_object().find("busy");
  return it != v.get_object().end() && it->value().is_bool() && it->value().get_bool();
}

// Fails with ErrorKind::unavailable when no daemon listens on the socket. A daemon that serves
// as many control connections as it will (a flood of idle clients, a script running many
// personactl at once) is asked again for a while.
Result<Answer> from_socket(const Context& ctx, const std::string& method, const std::string& target,
                           const std::string& body) {
  const auto give_up = std::chrono::steady_clock::now() + ctx.busy_wait;
  auto reply = control_call(ctx.config.control_socket, method, target, body, ctx.timeout);
  while (reply && busy(*reply) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(ctx.busy_retry);
    reply = control_call(ctx.config.control_socket, method, target, body, ctx.timeout);
  }
  if (!reply) return reply.error();
  boost::system::error_code ec;
  json::value v = json::parse(reply->body, ec);
  if (ec)
    return make_error(ErrorKind::io, "personad answered HTTP " + std::to_string(reply->status) +
                                         " with invalid JSON: " + ec.message());
  return Answer{reply->status, std::move(v)};
}

// GET through the daemon, else the same query code (job_query) on the database, read-only:
// online and offline answers are the same JSON. Once the daemon is found down, the rest of the
// command reads the database (opened once: opening checks the file).
class Reader {
 public:
  explicit Reader(const Context& ctx) : ctx_(ctx) {}

  Result<Answer> get(const std::string& target) {
    if (!store_) {
      auto a = from_socket(ctx_, "GET", target, "");
      if (a || a.kind() != ErrorKind::unavailable) return a;
      auto store = open_configured_store(ctx_.config, OpenMode::read_only);
      if (!store)
        return make_error("personad is not running (" + ctx_.config.control_socket +
                          ") and the database cannot be read: " + store.message());
      store_ = std::move(*store);
    }
    const QueryContext q{.now = SystemClock().now(), .stuck_after = ctx_.stuck_after};
    QueryAnswer answer = answer_query(*store_, target, q);
    return Answer{answer.status, std::move(answer.body)};
  }

 private:
  const Context& ctx_;
  std::unique_ptr<Store> store_;
};

Result<Answer> read(const Context& ctx, const std::string& target) {
  Reader reader(ctx);
  return reader.get(target);
}

int print_error(const Context& ctx, const std::string& message, int code) {
  ctx.err << "personactl: " << message << '\n';
  return code;
}

// A KEY argument no job can have: refused here, not sent (a 20,000-character key would not even
// fit the daemon's request header).
bool key_too_long(const Context& ctx, const std::string& key) {
  if (key.size() <= kMaxKeyChars) return false;
  print_error(ctx, "key too long: " + std::to_string(key.size()) + " characters; keys are at most " +
                       std::to_string(kMaxKeyChars),
              kInvalid);
  return true;
}

std::string error_of(const Answer& a) {
  if (a.body.is_object())
    if (auto it = a.body.get_object().find("error"); it != a.body.get_object().end())
      return text(it->value());
  if (a.status == 431) return "key too long: personad refused the request header as too large";
  return "personad answered HTTP " + std::to_string(a.status);
}

void print_json(const Context& ctx, const json::value& v) { ctx.out << json::serialize(v) << '\n'; }

// Steering commands need the daemon: it is the only writer of job state.
int steer(const Context& ctx, const std::string& target, const json::object& body) {
  auto a = from_socket(ctx, "POST", target, json::serialize(body));
  if (!a && a.kind() == ErrorKind::unavailable)
    return print_error(ctx, "personad is not running (no answer on " + ctx.config.control_socket +
                           "); start it and try again",
                       kRefused);
  if (!a) return print_error(ctx, a.message(), kRefused);
  if (a->status != 200) return print_error(ctx, error_of(*a), kRefused);
  const auto& o = a->body.get_object();
  const auto& job = o.at("job").get_object();
  ctx.out << field(job, "key") << ' ' << field(job, "state") << ": " << field(o, "message")
            << '\n';
  return kOk;
}

}  // namespace

// ---- Commands ----

namespace {

// Text of a job field for CSV: null (or absent) is empty.
std::string csv_text(const json::object& o, std::string_view name) {
  auto it = o.find(name);
  if (it == o.end() || it->value().is_null()) return {};
  if (it->value().is_string()) return std::string(it->value().get_string());
  return json::serialize(it->value());
}

// The operator's labels of a job object (its spec's labels as sent, personad's own left out).
std::string operator_labels(const json::object& o) {
  std::string out;
  const auto* spec = o.if_contains("spec");
  const auto* labels = spec && spec->is_object() ? spec->get_object().if_contains("labels") : nullptr;
  if (labels == nullptr || !labels->is_array()) return out;
  for (const auto& l : labels->get_array()) {
    if (!l.is_string() || l.get_string().starts_with("personad:")) continue;
    if (!out.empty()) out += ';';
    out += l.get_string();
  }
  return out;
}

constexpr const char* kCsvColumns[] = {"key",        "state",        "remote_status", "remote_id",
                                       "failed_reason", "source",   "labels",        "created_at",
                                       "submitted_at", "updated_at", "polls",         "attempts",
                                       "eta"};

// "/v1/select?QUERY&count=1" with the parts that are there.
std::string select_target(const Selection& page, bool count) {
  std::string q = selection_query(page);
  if (count) q += q.empty() ? "count=1" : "&count=1";
  return "/v1/select" + (q.empty() ? std::string() : "?" + q);
}

}  // namespace

std::string csv_field(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string csv_header() {
  std::string out;
  for (const char* c : kCsvColumns) out += (out.empty() ? "" : ",") + std::string(c);
  return out + "\r\n";
}

std::string csv_row(const json::object& job) {
  std::string out;
  bool first = true;
  for (const char* c : kCsvColumns) {
    if (!first) out += ',';
    first = false;
    out += csv_field(std::string_view(c) == "labels" ? operator_labels(job) : csv_text(job, c));
  }
  return out + "\r\n";
}

// Pages of GET /v1/select, one after the other (keyset: each starts after the last job of the
// one before, so jobs that change meanwhile are neither skipped nor repeated), each printed as
// it comes: a listing of 100,000 jobs never sits whole in memory, here or in the daemon.
int list(const Context& ctx, const std::vector<SelectionParam>& params, ListFormat format) {
  auto sel = parse_selection(params, SystemClock().now());
  if (!sel) return print_error(ctx, sel.message(), kInvalid);
  const bool table = format == ListFormat::table;
  std::optional<std::int64_t> cap = sel->limit;
  if (table && !cap) cap = kTableRows;

  Reader reader(ctx);
  Selection page = *sel;
  std::int64_t shown = 0;
  std::int64_t more = 0;  // matching jobs after the last one shown (table)
  std::vector<std::vector<std::string>> rows{
      {"KEY", "STATE", "REMOTE_STATUS", "REMOTE_ID", "POLLS", "NEXT_POLL", "UPDATED"}};
  if (format == ListFormat::csv) ctx.out << csv_header();
  if (format == ListFormat::json) ctx.out << '[';
  for (;;) {
    page.limit = cap ? std::min(*cap - shown, kDefaultPage) : kDefaultPage;
    auto a = reader.get(select_target(page, table));
    if (!a) return print_error(ctx, a.message(), kRefused);
    if (a->status != 200) return print_error(ctx, error_of(*a), a->status == 400 ? kInvalid : kRefused);
    const auto* body = a->body.if_object();
    const auto* jobs = body ? body->if_contains("jobs") : nullptr;
    const auto* next = body ? body->if_contains("next_after") : nullptr;
    if (jobs == nullptr || !jobs->is_array() || next == nullptr)
      return print_error(ctx, "personad answered a page without jobs", kRefused);
    for (const auto& v : jobs->get_array()) {
      if (!v.is_object()) continue;
      const auto& o = v.get_object();
      switch (format) {
        case ListFormat::table:
          rows.push_back({field(o, "key"), field(o, "state"), field(o, "remote_status"),
                          field(o, "remote_id"), field(o, "polls"), field(o, "next_poll_at"),
                          field(o, "updated_at")});
          break;
        case ListFormat::json:
          ctx.out << (shown > 0 ? "," : "") << json::serialize(v);
          break;
        case ListFormat::jsonl:
          ctx.out << json::serialize(v) << '\n';
          break;
        case ListFormat::csv:
          ctx.out << csv_row(o);
          break;
        case ListFormat::keys:
          ctx.out << field(o, "key") << '\n';
          break;
      }
      ++shown;
    }
    if (!next->is_string()) break;  // the last page
    if (cap && shown >= *cap) {
      if (const auto* m = body->if_contains("more"); m && m->is_int64()) more = m->get_int64();
      break;
    }
    page.after = std::string(next->get_string());
  }
  if (format == ListFormat::json) ctx.out << "]\n";
  if (table) {
    print_table(ctx, rows);
    if (more > 0) ctx.out << "\u2026 " << more << " more\n";
  }
  return kOk;
}

int show(const Context& ctx, const std::string& key, bool as_json) {
  if (key_too_long(ctx, key)) return kInvalid;
  auto a = read(ctx, "/v1/jobs/" + encode_key(key));
  if (!a) return print_error(ctx, a.message(), kRefused);
  if (a->status != 200) return print_error(ctx, error_of(*a), kRefused);
  if (as_json) {
    print_json(ctx, a->body);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& kv : a->body.get_object()) {
    if (kv.key() == "spec") {
      for (const auto& skv : kv.value().get_object())
        rows.push_back({"spec." + std::string(skv.key()) + ":", text(skv.value())});
    } else {
      rows.push_back({std::string(kv.key()) + ":", text(kv.value())});
    }
  }
  print_table(ctx, rows);
  return kOk;
}

int history(const Context& ctx, const std::string& key, bool as_json) {
  if (key_too_long(ctx, key)) return kInvalid;
  auto a = read(ctx, "/v1/jobs/" + encode_key(key) + "/history");
  if (!a) return print_error(ctx, a.message(), kRefused);
  if (a->status != 200) return print_error(ctx, error_of(*a), kRefused);
  if (as_json) {
    print_json(ctx, a->body);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows{{"AT", "FROM", "TO", "REMOTE_STATUS", "REASON"}};
  for (const auto& v : a->body.get_array()) {
    const auto& o = v.get_object();
    rows.push_back({field(o, "at"), field(o, "from"), field(o, "to"), field(o, "remote_status"),
                    field(o, "reason")});
  }
  print_table(ctx, rows);
  return kOk;
}

int stats(const Context& ctx, bool as_json) {
  auto a = read(ctx, "/v1/stats");
  if (!a) return print_error(ctx, a.message(), kRefused);
  if (a->status != 200) return print_error(ctx, error_of(*a), kRefused);
  if (as_json) {
    print_json(ctx, a->body);
    return kOk;
  }
  const auto& o = a->body.get_object();
  std::vector<std::vector<std::string>> rows;
  for (const auto& kv : o.at("counts").get_object())
    rows.push_back({std::string(kv.key()) + ":", text(kv.value())});
  rows.push_back({"total:", field(o, "total")});
  rows.push_back({"polls:", field(o, "polls")});
  rows.push_back({"attempts:", field(o, "attempts")});
  std::string next = field(o, "next_due_at");
  if (next != "-") next += " (" + field(o, "next_due_key") + ")";
  rows.push_back({"next_due:", next});
  print_table(ctx, rows);
  return kOk;
}


// ---- submit ----
//
// A file is parsed and validated whole first: a file with any error enqueues nothing. Then its
// entries go to the daemon in chunks (each one transaction there), small enough for the control
// socket's body limit whatever the batch's size. Every chunk is checked by the daemon before the
// first is enqueued, so a file the daemon finds invalid (a local video it may not read) still
// enqueues nothing. Known keys answer `known KEY STATE`, so sending a file again is always safe.

namespace {

struct Chunk {
  std::size_t begin = 0;  // entries [begin, end) of the file
  std::size_t end = 0;
  std::string body;       // the POST /v1/submit request
};

std::vector<Chunk> make_chunks(const std::string& file, const std::vector<PersonaSpec>& specs) {
  const std::string head = "{\"source\":" + json::serialize(json::value(file)) + ",\"personas\":[";
  std::vector<Chunk> chunks;
  Chunk c;
  c.body = head;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    std::string entry = json::serialize(spec_to_json(specs[i]));
    const std::size_t n = i - c.begin;
    if (n > 0 && (n >= kSubmitChunkEntries || c.body.size() + entry.size() + 2 > kSubmitChunkBytes)) {
      c.end = i;
      c.body += "]}";
      chunks.push_back(std::move(c));
      c = Chunk{i, i, head};
    }
    if (i > c.begin) c.body += ',';
    c.body += entry;
  }
  c.end = specs.size();
  c.body += "]}";
  if (c.end > c.begin) chunks.push_back(std::move(c));
  return chunks;
}

// `known KEY STATE` (the contract's prefix), and when the file's entry differs from the job's
// spec, a note that the change was not sent (a new key is the way to create it anew).
void print_outcome(const Context& ctx, const std::string& key, bool inserted,
                   std::string_view state, bool spec_changed) {
  if (inserted)
    ctx.out << "queued " << key << '\n';
  else if (spec_changed)
    ctx.out << "known " << key << ' ' << state << " (spec changed: not sent again)\n";
  else
    ctx.out << "known " << key << ' ' << state << '\n';
}

void print_field_errors(const Context& ctx, const std::string& file, const Answer& a) {
  if (a.body.is_object())
    if (auto it = a.body.get_object().find("errors");
        it != a.body.get_object().end() && it->value().is_array())
      for (const auto& e : it->value().get_array()) {
        if (!e.is_object()) continue;
        const auto& eo = e.get_object();
        ctx.err << "personactl: " << file << ": key '" << field(eo, "key") << "' field '"
                << field(eo, "field") << "': " << field(eo, "message") << '\n';
      }
}

// What became of a file's first `done` entries when the rest could not be sent.
void print_partial(const Context& ctx, const std::string& file, std::size_t done,
                   std::size_t total) {
  if (done == 0) {
    ctx.err << "personactl: " << file << ": nothing enqueued from this file\n";
    return;
  }
  ctx.err << "personactl: " << file << ": the first " << done << " of " << total
          << " entries were enqueued (or already known, as printed above), the other "
          << total - done << " were not; submitting the file again is safe (known keys are "
          << "reported, never sent twice)\n";
}

// Files written straight into the database, and the store they were written with.
struct Offline {
  std::unique_ptr<Store> store;
  std::vector<std::string> files;
};

// No daemon on the socket: the store is the queue. Entries [from, end) of the file, in chunks
// of their own transaction.
int write_offline(const Context& ctx, Offline& offline, const std::string& file,
                  const std::vector<PersonaSpec>& specs, std::size_t from) {
  // A shared PostgreSQL store has an active host somewhere, which would not learn of rows
  // written behind its back: submits go through a running personad (any host forwards them).
  if (uses_pg_store(ctx.config)) {
    print_error(ctx,
                "personad is not running (" + ctx.config.control_socket +
                    "); with a PostgreSQL store ([store] url) submit through a running personad "
                    "on any host",
                kRefused);
    print_partial(ctx, file, from, specs.size());
    return kRefused;
  }
  if (!offline.store) {
    auto store = open_configured_store(ctx.config, OpenMode::read_write);
    if (!store) {
      print_error(ctx, store.message(), kRefused);
      print_partial(ctx, file, from, specs.size());
      return kRefused;
    }
    offline.store = std::move(*store);
  }
  const std::string reason = "enqueued from " + file + " (personactl, offline)";
  for (std::size_t i = from; i < specs.size(); i += kOfflineChunkEntries) {
    const std::size_t end = std::min(specs.size(), i + kOfflineChunkEntries);
    std::vector<PersonaSpec> chunk(specs.begin() + static_cast<std::ptrdiff_t>(i),
                                   specs.begin() + static_cast<std::ptrdiff_t>(end));
    auto r = offline.store->enqueue(chunk, file, reason, SystemClock().now(),
                                    [] { return new_client_ref(); });
    if (!r) {
      print_error(ctx, r.message(), kRefused);
      print_partial(ctx, file, i, specs.size());
      return kRefused;
    }
    for (const auto& o : *r)
      print_outcome(ctx, o.key, o.inserted, to_string(o.state), o.spec_changed);
  }
  offline.files.push_back(file);
  return kOk;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// After writing into the database: a daemon that holds the database but did not answer on its
// socket is (almost always) starting: it takes the lock before it listens, and loads the queue
// in between. Wait for it a little, then ask it to pick up what was written meanwhile.
void after_offline(const Context& ctx, Offline& offline) {
  offline.store.reset();
  const std::string what = join(offline.files) + (offline.files.size() == 1 ? " was" : " were");
  const auto deadline = std::chrono::steady_clock::now() + ctx.startup_wait;
  for (;;) {
    if (!database_lock_held(ctx.config.store_path)) {
      ctx.err << "personactl: personad is not running; " << what
              << " enqueued in the database and is sent when personad starts\n";
      return;
    }
    auto a = from_socket(ctx, "POST", "/v1/adopt-queued", "");
    if (a && a->status == 200) {
      std::string n = a->body.is_object() ? field(a->body.get_object(), "adopted") : "-";
      ctx.err << "personactl: personad was starting; " << what
              << " enqueued in the database and personad has picked it up (" << n
              << " queued jobs scheduled now)\n";
      return;
    }
    if (!a && a.kind() == ErrorKind::unavailable && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    std::string why = !a ? a.message()
                         : a->status == 404 ? "this personad has no adopt-queued route"
                                            : error_of(*a);
    ctx.err << "personactl: personad is running but its control socket "
            << ctx.config.control_socket << " did not take the jobs (" << why << "); " << what
            << " enqueued in the database and is sent after a reload (SIGHUP)\n";
    return;
  }
}

// Through the daemon; `offline` when it does not listen. Returns an exit code; `stop` when the
// command should not go on with the next file.
int submit_file(const Context& ctx, Offline& offline, const std::string& file,
                const std::vector<PersonaSpec>& specs, bool& stop) {
  const auto chunks = make_chunks(file, specs);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    auto a = from_socket(ctx, "POST", "/v1/submit/check", chunks[i].body);
    if (!a && a.kind() == ErrorKind::unavailable) return write_offline(ctx, offline, file, specs, 0);
    if (!a) {
      stop = true;
      print_error(ctx, a.message(), kRefused);
      print_partial(ctx, file, 0, specs.size());
      return kRefused;
    }
    if (a->status == 404) break;  // a personad without the check: each chunk is checked as sent
    if (a->status == 400) {
      print_field_errors(ctx, file, *a);
      print_partial(ctx, file, 0, specs.size());
      return kInvalid;
    }
    if (a->status != 200) {
      stop = true;
      print_error(ctx, error_of(*a), kRefused);
      print_partial(ctx, file, 0, specs.size());
      return kRefused;
    }
  }
  for (const auto& c : chunks) {
    auto a = from_socket(ctx, "POST", "/v1/submit", c.body);
    if (!a && a.kind() == ErrorKind::unavailable) {
      // It stopped between two chunks: the rest waits in the database like any offline write.
      if (c.begin > 0)
        ctx.err << "personactl: personad stopped answering after " << c.begin << " entries of "
                << file << "; the rest is written into the database\n";
      return write_offline(ctx, offline, file, specs, c.begin);
    }
    if (!a || a->status != 200 || !a->body.is_object() ||
        !a->body.get_object().contains("results")) {
      stop = !a || a->status != 400;
      if (a && a->status == 400) print_field_errors(ctx, file, *a);
      print_error(ctx, !a ? a.message() : error_of(*a), kRefused);
      print_partial(ctx, file, c.begin, specs.size());
      return a && a->status == 400 ? kInvalid : kRefused;
    }
    const auto& results = a->body.get_object().at("results");
    if (results.is_array())
      for (const auto& r : results.get_array()) {
        if (!r.is_object()) continue;
        const auto& o = r.get_object();
        const auto* changed = o.if_contains("spec_changed");
        print_outcome(ctx, field(o, "key"), field(o, "result") == "queued", field(o, "state"),
                      changed != nullptr && changed->is_bool() && changed->get_bool());
      }
  }
  return kOk;
}

}  // namespace

int submit(const Context& ctx, const std::vector<std::string>& files) {
  int code = kOk;
  Offline offline;
  for (const auto& file : files) {
    // The config's media roots, as the daemon will check them (none: the file's own tree).
    BatchParse parse = load_batch_file(
        file, {ctx.config.media_roots.begin(), ctx.config.media_roots.end()});
    if (!parse.ok()) {
      for (const auto& e : parse.errors) ctx.err << "personactl: " << e.to_string() << '\n';
      ctx.err << "personactl: " << file << ": nothing enqueued from this file\n";
      code = kInvalid;
      continue;
    }
    std::vector<PersonaSpec> specs;
    specs.reserve(parse.entries.size());
    for (auto& e : parse.entries) specs.push_back(std::move(e.spec));
    bool stop = false;
    int r = submit_file(ctx, offline, file, specs, stop);
    if (r != kOk) code = code == kOk ? r : code;
    if (stop) break;
  }
  if (!offline.files.empty()) after_offline(ctx, offline);
  return code;
}

int cancel(const Context& ctx, const std::string& key) {
  if (key_too_long(ctx, key)) return kInvalid;
  return steer(ctx, "/v1/jobs/" + encode_key(key) + "/cancel", {});
}

int retry(const Context& ctx, const std::string& key, bool resubmit) {
  if (key_too_long(ctx, key)) return kInvalid;
  return steer(ctx, "/v1/jobs/" + encode_key(key) + "/retry", {{"resubmit", resubmit}});
}

int resolve(const Context& ctx, const std::string& key, const std::string& adopt, bool resubmit) {
  if (key_too_long(ctx, key)) return kInvalid;
  if (adopt.empty() == !resubmit)
    return print_error(ctx, "resolve needs exactly one of --adopt REMOTE_ID or --resubmit",
                       kInvalid);
  json::object body;
  if (!adopt.empty()) body["adopt"] = adopt;
  if (resubmit) body["resubmit"] = true;
  return steer(ctx, "/v1/jobs/" + encode_key(key) + "/resolve", body);
}

// ---- Bulk actions ----

ConfirmStep confirm_step(bool dry_run, bool yes, bool stdin_is_terminal) {
  if (dry_run) return ConfirmStep::preview_only;
  if (yes) return ConfirmStep::go;
  return stdin_is_terminal ? ConfirmStep::ask : ConfirmStep::need_yes;
}

bool is_yes(std::string_view answer) {
  while (!answer.empty() && std::isspace(static_cast<unsigned char>(answer.front())))
    answer.remove_prefix(1);
  while (!answer.empty() && std::isspace(static_cast<unsigned char>(answer.back())))
    answer.remove_suffix(1);
  std::string a(answer);
  for (auto& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return a == "y" || a == "yes";
}

std::string bulk_result_line(const json::object& r) {
  const std::string result = field(r, "result");
  if (result == "cancelled" || result == "retried") return result + ' ' + field(r, "key");
  return result + ' ' + field(r, "key") + ' ' + field(r, "state") + ": " + field(r, "why");
}

namespace {

std::string with_query(std::string path, const std::string& query) {
  return query.empty() ? path : path + "?" + query;
}

}  // namespace

int bulk(const Context& ctx, const BulkOptions& o, std::istream& in, bool stdin_is_terminal) {
  auto sel = parse_selection(o.selection, SystemClock().now());
  if (!sel) return print_error(ctx, sel.message(), kInvalid);
  if (*sel == Selection{})
    return print_error(ctx, std::string(to_string(o.action)) + " needs KEYs or filters", kInvalid);
  // The count and the first keys: one page of ten, with the count of the rest.
  Selection preview = *sel;
  preview.limit = sel->limit ? std::min<std::int64_t>(*sel->limit, kPreviewKeys)
                             : static_cast<std::int64_t>(kPreviewKeys);
  auto a = read(ctx, select_target(preview, true));
  if (!a) return print_error(ctx, a.message(), kRefused);
  if (a->status != 200) return print_error(ctx, error_of(*a), a->status == 400 ? kInvalid : kRefused);
  const auto* body = a->body.if_object();
  const auto* jobs = body ? body->if_contains("jobs") : nullptr;
  if (jobs == nullptr || !jobs->is_array())
    return print_error(ctx, "personad answered a page without jobs", kRefused);
  std::int64_t total = static_cast<std::int64_t>(jobs->get_array().size());
  if (const auto* m = body->if_contains("more"); m && m->is_int64()) total += m->get_int64();
  if (sel->limit) total = std::min(total, *sel->limit);
  ctx.out << total << (total == 1 ? " job matches" : " jobs match") << '\n';
  for (const auto& j : jobs->get_array())
    if (j.is_object()) ctx.out << "  " << field(j.get_object(), "key") << '\n';
  if (total > static_cast<std::int64_t>(jobs->get_array().size()))
    ctx.out << "  \u2026 " << total - static_cast<std::int64_t>(jobs->get_array().size())
            << " more\n";
  switch (confirm_step(o.dry_run, o.yes, stdin_is_terminal)) {
    case ConfirmStep::preview_only:
      return kOk;
    case ConfirmStep::need_yes:
      return print_error(ctx, "stdin is not a terminal: add --yes to " +
                                  std::string(to_string(o.action)) + " these " +
                                  std::to_string(total) + " jobs",
                         kInvalid);
    case ConfirmStep::ask: {
      if (total == 0) return kOk;
      ctx.out << to_string(o.action) << ' ' << total << (total == 1 ? " job" : " jobs")
              << "? [y/N] " << std::flush;
      std::string answer;
      if (!std::getline(in, answer) || !is_yes(answer)) {
        ctx.out << "nothing done\n";
        return kOk;
      }
      break;
    }
    case ConfirmStep::go:
      break;
  }
  if (total == 0) return kOk;
  json::object req;
  if (o.resubmit) req["resubmit"] = true;
  auto r = from_socket(ctx, "POST",
                       with_query("/v1/bulk/" + std::string(to_string(o.action)), selection_query(*sel)),
                       json::serialize(req));
  if (!r && r.kind() == ErrorKind::unavailable)
    return print_error(ctx, "personad is not running (no answer on " + ctx.config.control_socket +
                                "); start it and try again",
                       kRefused);
  if (!r) return print_error(ctx, r.message(), kRefused);
  if (r->status != 200) return print_error(ctx, error_of(*r), r->status == 400 ? kInvalid : kRefused);
  const auto* results = r->body.is_object() ? r->body.get_object().if_contains("results") : nullptr;
  if (results == nullptr || !results->is_array())
    return print_error(ctx, "personad answered without results", kRefused);
  int code = kOk;
  for (const auto& v : results->get_array()) {
    if (!v.is_object()) continue;
    ctx.out << bulk_result_line(v.get_object()) << '\n';
    if (field(v.get_object(), "result") == "failed") code = kRefused;
  }
  return code;
}

// ---- Following ----

namespace {

volatile std::sig_atomic_t g_interrupted = 0;  // set by SIGINT while following
extern "C" void on_interrupt(int) { g_interrupted = 1; }

// Ctrl-C ends the follow loop (within one wait of the stream) instead of the process, so the
// terminal is restored and the summary printed.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_);
  }
  ~InterruptGuard() { ::sigaction(SIGINT, &old_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction old_ {};
};

// The selected jobs and their events: read once (the daemon, or the database when it is down),
// then moved on by GET /v1/events. A gap (events gone, or the daemon restarted) reads the jobs
// again, so nothing is lost.
class Follower {
 public:
  Follower(const Context& ctx, std::vector<std::string> keys, Selection sel)
      : ctx_(ctx), keys_(keys.begin(), keys.end()), key_list_(std::move(keys)),
        sel_(std::move(sel)), reader_(ctx) {}

  Campaign campaign;
  bool daemon_seen = false;
  std::string status;  // why the stream does not answer, for the screen

  // The stream's position first, then the jobs: events committed in between are applied
  // again on top of what was read, which ends in the same state.
  Result<void> load() {
    auto pos = from_socket(ctx_, "GET", "/v1/events?wait_ms=0&max=1", "");
    if (pos && pos->status == 200 && pos->body.is_object()) {
      daemon_seen = true;
      const auto& o = pos->body.get_object();
      epoch_ = field(o, "epoch");
      if (const auto* l = o.if_contains("last_seq"); l && l->is_int64()) seq_ = l->get_int64();
    } else if (pos && pos->status != 200) {
      return make_error(error_of(*pos));
    }
    campaign.clear();
    if (!key_list_.empty() && sel_ == Selection{}) return load_keys();
    return load_selection();
  }

  // The next events (waiting up to `wait` on the daemon), applied; the lines of the followed
  // jobs' events are returned.
  Result<std::vector<std::string>> next(Millis wait) {
    std::vector<std::string> lines;
    auto a = from_socket(ctx_, "GET",
                         "/v1/events?after=" + std::to_string(seq_) + "&epoch=" + epoch_ +
                             "&wait_ms=" + std::to_string(wait.count()),
                         "");
    if (!a) return a.error();
    if (a->status != 200 || !a->body.is_object())
      return make_error(ErrorKind::invalid, error_of(*a));  // an answer, but a refusal
    daemon_seen = true;
    const auto& o = a->body.get_object();
    const auto* gap = o.if_contains("gap");
    if (gap && gap->is_bool() && gap->get_bool()) {
      if (auto r = load(); !r) return r.error();
      return lines;
    }
    if (const auto* events = o.if_contains("events"); events && events->is_array())
      for (const auto& e : events->get_array()) {
        if (!e.is_object()) continue;
        const auto& eo = e.get_object();
        if (const auto* s = eo.if_contains("seq"); s && s->is_int64()) seq_ = s->get_int64();
        if (campaign.apply(eo)) lines.push_back(event_line(eo));
      }
    return lines;
  }

 private:
  Result<void> load_keys() {
    for (const auto& key : key_list_) {
      if (key.size() > kMaxKeyChars) return make_error(ErrorKind::invalid, "key too long: " + key);
      auto a = reader_.get("/v1/jobs/" + encode_key(key));
      if (!a) return a.error();
      if (a->status != 200 || !a->body.is_object())
        return make_error(a->status == 404 ? ErrorKind::not_found : ErrorKind::io, error_of(*a));
      campaign.add(a->body.get_object());
    }
    return {};
  }

  Result<void> load_selection() {
    Selection page = sel_;
    std::int64_t seen = 0;
    for (;;) {
      page.limit = sel_.limit ? std::min(*sel_.limit - seen, kDefaultPage) : kDefaultPage;
      auto a = reader_.get(select_target(page, false));
      if (!a) return a.error();
      if (a->status != 200)
        return make_error(a->status == 400 ? ErrorKind::invalid : ErrorKind::io, error_of(*a));
      const auto* body = a->body.if_object();
      const auto* jobs = body ? body->if_contains("jobs") : nullptr;
      const auto* next = body ? body->if_contains("next_after") : nullptr;
      if (jobs == nullptr || !jobs->is_array() || next == nullptr)
        return make_error("personad answered a page without jobs");
      for (const auto& v : jobs->get_array()) {
        if (!v.is_object()) continue;
        ++seen;
        if (keys_.empty() || keys_.contains(field(v.get_object(), "key"))) campaign.add(v.get_object());
      }
      if (!next->is_string() || (sel_.limit && seen >= *sel_.limit)) return {};
      page.after = std::string(next->get_string());
    }
  }

  const Context& ctx_;
  std::unordered_set<std::string> keys_;
  std::vector<std::string> key_list_;
  Selection sel_;
  Reader reader_;
  std::string epoch_;
  std::int64_t seq_ = 0;
};

using Clock = std::chrono::steady_clock;

// The loop of watch and wait: until every followed job is final, `deadline` passes, or Ctrl-C.
// `wait_step` bounds each wait on the stream (how soon Ctrl-C and a redraw are noticed).
enum class FollowEnd { all_final, timed_out, interrupted, failed };

template <class OnLines>
FollowEnd follow(const Context& ctx, Follower& f, std::optional<Clock::time_point> deadline,
                 Millis wait_step, OnLines on_lines) {
  for (;;) {
    if (f.campaign.all_final()) return FollowEnd::all_final;
    if (g_interrupted) return FollowEnd::interrupted;
    Millis wait = wait_step;
    if (deadline) {
      const auto left = std::chrono::duration_cast<Millis>(*deadline - Clock::now());
      if (left.count() <= 0) return FollowEnd::timed_out;
      wait = std::min(wait, left);
    }
    auto lines = f.next(wait);
    const bool dropped = !lines && (lines.kind() == ErrorKind::unavailable || lines.kind() == ErrorKind::io);
    if (dropped && f.daemon_seen) {
      // The daemon stopped (its connection closed, nobody listens) or is restarting: ask
      // again shortly; the events are read from where we were, or the jobs again (a gap).
      f.status = "personad is not answering on " + ctx.config.control_socket + "; retrying";
      on_lines(std::vector<std::string>{});
      std::this_thread::sleep_for(std::min(wait, Millis(500)));
      continue;
    }
    if (!lines) {
      print_error(ctx, lines.message(), kRefused);
      return FollowEnd::failed;
    }
    f.status.clear();
    on_lines(*lines);
  }
}

Result<Selection> follow_selection(const Context& ctx, const std::vector<SelectionParam>& params) {
  (void)ctx;
  auto sel = parse_selection(params, SystemClock().now());
  if (!sel) return sel.error();
  if (sel->after)
    return make_error(ErrorKind::invalid, "--after pages a listing; watch and wait follow the whole selection");
  return sel;
}

int load_or_fail(const Context& ctx, Follower& f) {
  if (auto r = f.load(); !r)
    return print_error(ctx, r.message(), r.kind() == ErrorKind::invalid ? kInvalid : kRefused);
  if (!f.daemon_seen && !f.campaign.all_final())
    return print_error(ctx, "personad is not running (no answer on " + ctx.config.control_socket +
                                "): nothing moves until it starts",
                       kRefused);
  return kOk;
}

}  // namespace

int watch(const Context& ctx, const std::vector<SelectionParam>& params, bool screen) {
  auto sel = follow_selection(ctx, params);
  if (!sel) return print_error(ctx, sel.message(), kInvalid);
  InterruptGuard guard;
  Follower f(ctx, {}, *sel);
  if (int code = load_or_fail(ctx, f); code != kOk) return code;
  const std::string query = selection_query(*sel);
  const std::string title = "personactl watch" + (query.empty() ? std::string() : " " + query);
  WatchScreen view;
  if (screen && !view.open()) screen = false;  // a terminal ncurses cannot drive: lines
  FollowEnd end;
  if (screen) {
    constexpr Millis kRedraw{250};  // at most 4 times a second
    auto last = Clock::now() - kRedraw;
    bool dirty = true;
    auto redraw = [&](bool force) {
      if (!dirty && !force) return;
      if (!force && Clock::now() - last < kRedraw) return;
      view.draw(f.campaign, title, f.status);
      last = Clock::now();
      dirty = false;
    };
    redraw(true);
    end = follow(ctx, f, std::nullopt, kRedraw, [&](const std::vector<std::string>& lines) {
      dirty = dirty || !lines.empty() || !f.status.empty();
      redraw(false);
    });
    redraw(true);
    view.close();
  } else {
    end = follow(ctx, f, std::nullopt, Millis(1'000), [&](const std::vector<std::string>& lines) {
      for (const auto& l : lines) ctx.out << l << '\n';
      ctx.out << std::flush;
    });
  }
  ctx.out << summary_line(f.campaign) << '\n';
  if (end == FollowEnd::interrupted) return kInterrupted;
  return end == FollowEnd::all_final ? kOk : kRefused;
}

int wait(const Context& ctx, const std::vector<std::string>& keys,
         const std::vector<SelectionParam>& params, std::optional<Millis> timeout) {
  auto sel = follow_selection(ctx, params);
  if (!sel) return print_error(ctx, sel.message(), kInvalid);
  if (keys.empty() && *sel == Selection{})
    return print_error(ctx, "wait needs KEYs or filters", kInvalid);
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout;
  Follower f(ctx, keys, *sel);
  if (int code = load_or_fail(ctx, f); code != kOk) return code;
  const FollowEnd end = follow(ctx, f, deadline, Millis(10'000), [](const std::vector<std::string>&) {});
  switch (end) {
    case FollowEnd::all_final:
      ctx.out << summary_line(f.campaign) << '\n';
      return wait_exit_code(f.campaign);
    case FollowEnd::timed_out:
      ctx.out << summary_line(f.campaign) << "; timed out\n";
      return kTimedOut;
    case FollowEnd::interrupted:
      return kInterrupted;
    case FollowEnd::failed:
      return kRefused;
  }
  return kRefused;
}

}  // namespace personad::ctl
