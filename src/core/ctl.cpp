// personactl's commands (see ctl.hpp): each asks the daemon over the control socket, or reads
// the database when it is down, and prints a table or the JSON document of the contract.
#include "personad/ctl.hpp"

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include "personad/batch.hpp"
#include "personad/control.hpp"
#include "personad/instance_lock.hpp"
#include "personad/job_json.hpp"
#include "personad/store.hpp"

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

Result<Answer> from_socket(const Context& ctx, const std::string& method, const std::string& target,
                           const std::string& body, bool* unreachable) {
  auto reply = control_call(ctx.config.control_socket, method, target, body, ctx.timeout,
                            unreachable);
  if (!reply) return reply.error();
  boost::system::error_code ec;
  json::value v = json::parse(reply->body, ec);
  if (ec) return make_error("personad answered with invalid JSON: " + ec.message());
  return Answer{reply->status, std::move(v)};
}

Result<std::unique_ptr<Store>> open_db(const Context& ctx) {
  return Store::open(ctx.config.store_path, OpenMode::read_only);
}

// GET through the daemon, else straight from the database.
Result<Answer> read(const Context& ctx, const std::string& target,
                    const std::function<Result<Answer>(Store&)>& from_db) {
  bool unreachable = false;
  auto a = from_socket(ctx, "GET", target, "", &unreachable);
  if (a || !unreachable) return a;
  auto store = open_db(ctx);
  if (!store)
    return make_error("personad is not running (" + ctx.config.control_socket +
                      ") and the database cannot be read: " + store.message());
  return from_db(**store);
}

int print_error(const Context& ctx, const std::string& message, int code) {
  ctx.err << "personactl: " << message << '\n';
  return code;
}

std::string error_of(const Answer& a) {
  if (a.body.is_object())
    if (auto it = a.body.get_object().find("error"); it != a.body.get_object().end())
      return text(it->value());
  return "personad answered HTTP " + std::to_string(a.status);
}

void print_json(const Context& ctx, const json::value& v) { ctx.out << json::serialize(v) << '\n'; }

// Steering commands need the daemon: it is the only writer of job state.
int steer(const Context& ctx, const std::string& target, const json::object& body) {
  bool unreachable = false;
  auto a = from_socket(ctx, "POST", target, json::serialize(body), &unreachable);
  if (!a && unreachable)
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

int list(const Context& ctx, const std::string& state, bool as_json) {
  std::optional<State> filter;
  if (!state.empty()) {
    filter = parse_state(state);
    if (!filter) return print_error(ctx, "unknown state '" + state + "'", kInvalid);
  }
  auto a = read(ctx, "/v1/jobs" + (state.empty() ? "" : "?state=" + state), [&](Store& s) -> Result<Answer> {
    auto jobs = s.list(filter);
    if (!jobs) return jobs.error();
    json::array arr;
    for (const auto& j : *jobs) arr.push_back(job_to_json(j));
    return Answer{200, arr};
  });
  if (!a) return print_error(ctx, a.message(), kRefused);
  if (a->status != 200 || !a->body.is_array()) return print_error(ctx, error_of(*a), kRefused);
  if (as_json) {
    print_json(ctx, a->body);
    return kOk;
  }
  std::vector<std::vector<std::string>> rows{
      {"KEY", "STATE", "REMOTE_STATUS", "REMOTE_ID", "POLLS", "NEXT_POLL", "UPDATED"}};
  for (const auto& v : a->body.get_array()) {
    const auto& o = v.get_object();
    rows.push_back({field(o, "key"), field(o, "state"), field(o, "remote_status"),
                    field(o, "remote_id"), field(o, "polls"), field(o, "next_poll_at"),
                    field(o, "updated_at")});
  }
  print_table(ctx, rows);
  return kOk;
}

int show(const Context& ctx, const std::string& key, bool as_json) {
  auto a = read(ctx, "/v1/jobs/" + encode_key(key), [&](Store& s) -> Result<Answer> {
    auto j = s.find(key);
    if (!j) return j.error();
    if (!*j) return Answer{404, json::object{{"error", "unknown key '" + key + "'"}}};
    return Answer{200, job_to_json(**j)};
  });
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
  auto a = read(ctx, "/v1/jobs/" + encode_key(key) + "/history", [&](Store& s) -> Result<Answer> {
    auto j = s.find(key);
    if (!j) return j.error();
    if (!*j) return Answer{404, json::object{{"error", "unknown key '" + key + "'"}}};
    auto h = s.history((*j)->id);
    if (!h) return h.error();
    return Answer{200, history_to_json(*h)};
  });
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
  auto a = read(ctx, "/v1/stats", [&](Store& s) -> Result<Answer> {
    auto st = s.stats();
    if (!st) return st.error();
    return Answer{200, stats_to_json(*st)};
  });
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


int submit(const Context& ctx, const std::vector<std::string>& files) {
  int code = kOk;
  for (const auto& file : files) {
    BatchParse parse = load_batch_file(file);
    if (!parse.ok()) {
      for (const auto& e : parse.errors) ctx.err << "personactl: " << e.to_string() << '\n';
      ctx.err << "personactl: " << file << ": nothing enqueued from this file\n";
      code = kInvalid;
      continue;
    }
    std::vector<PersonaSpec> specs;
    json::array personas;
    for (auto& e : parse.entries) {
      personas.push_back(spec_to_json(e.spec));
      specs.push_back(std::move(e.spec));
    }
    bool unreachable = false;
    json::object body{{"source", file}, {"personas", personas}};
    auto a = from_socket(ctx, "POST", "/v1/submit", json::serialize(body), &unreachable);
    if (!a && unreachable) {
      // No daemon: the store is the queue. personad sends these when it starts.
      auto store = Store::open(ctx.config.store_path, OpenMode::read_write);
      if (!store) return print_error(ctx, store.message(), kRefused);
      auto r = (*store)->enqueue(specs, file, "enqueued from " + file + " (personactl, offline)",
                                 SystemClock().now(), [] { return new_client_ref(); });
      if (!r) return print_error(ctx, r.message(), kRefused);
      for (const auto& o : *r)
        ctx.out << (o.inserted ? "queued " + o.key : "known " + o.key + " " + std::string(to_string(o.state)))
                  << '\n';
      if (database_lock_held(ctx.config.store_path))
        ctx.err << "personactl: personad is running but its control socket "
                  << ctx.config.control_socket << " did not answer; " << file
                  << " was enqueued in the database and is sent after a reload (SIGHUP)\n";
      else
        ctx.err << "personactl: personad is not running; " << file
                  << " was enqueued in the database and is sent when personad starts\n";
      continue;
    }
    if (!a) return print_error(ctx, a.message(), kRefused);
    if (a->status == 400) {
      const auto& o = a->body.get_object();
      if (auto it = o.find("errors"); it != o.end())
        for (const auto& e : it->value().get_array()) {
          const auto& eo = e.get_object();
          ctx.err << "personactl: " << file << ": key '" << field(eo, "key") << "' field '"
                    << field(eo, "field") << "': " << field(eo, "message") << '\n';
        }
      ctx.err << "personactl: " << file << ": nothing enqueued from this file\n";
      code = kInvalid;
      continue;
    }
    if (a->status != 200) return print_error(ctx, error_of(*a), kRefused);
    for (const auto& r : a->body.get_object().at("results").get_array()) {
      const auto& o = r.get_object();
      if (field(o, "result") == "queued")
        ctx.out << "queued " << field(o, "key") << '\n';
      else
        ctx.out << "known " << field(o, "key") << ' ' << field(o, "state") << '\n';
    }
  }
  return code;
}

int cancel(const Context& ctx, const std::string& key) {
  return steer(ctx, "/v1/jobs/" + encode_key(key) + "/cancel", {});
}

int retry(const Context& ctx, const std::string& key, bool resubmit) {
  return steer(ctx, "/v1/jobs/" + encode_key(key) + "/retry", {{"resubmit", resubmit}});
}

int resolve(const Context& ctx, const std::string& key, const std::string& adopt, bool resubmit) {
  if (adopt.empty() == !resubmit)
    return print_error(ctx, "resolve needs exactly one of --adopt REMOTE_ID or --resubmit",
                       kInvalid);
  json::object body;
  if (!adopt.empty()) body["adopt"] = adopt;
  if (resubmit) body["resubmit"] = true;
  return steer(ctx, "/v1/jobs/" + encode_key(key) + "/resolve", body);
}

}  // namespace personad::ctl
