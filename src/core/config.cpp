// Loads personad.toml into a validated Config and resolves the API credentials.
// Every error names file, line and key; toml++ exceptions are caught here and never escape.
#include "personad/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include "personad/toml_support.hpp"
#include "personad/url.hpp"
#include "personad/listen_address.hpp"
#include "personad/webhook_token.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <new>
#include <sstream>
#include <system_error>

namespace personad {

namespace fs = std::filesystem;
using toml_support::directory_of;
using toml_support::format_size;
using toml_support::in_quotes;
using toml_support::line_of;
using toml_support::read_text_file;
using toml_support::type_name;

// ---------------------------------------------------------------------------------------------
// Durations

namespace {

struct DurationUnit {
  std::string_view suffix;
  std::int64_t ms;
};
// Largest first: format_duration picks the first unit that divides exactly.
constexpr DurationUnit kUnits[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};

Error duration_error(std::string_view text) {
  return make_error("invalid duration \"" + std::string(text) +
                    "\" (expected an integer and a unit: ms, s, m, h or d, e.g. \"30s\")");
}

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
  const auto digits_end =
      std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; });
  const auto digits = std::string_view(text.begin(), digits_end);
  const auto suffix = std::string_view(digits_end, text.end());
  if (digits.empty()) return duration_error(text);

  const auto unit = std::find_if(std::begin(kUnits), std::end(kUnits),
                                 [&](const DurationUnit& u) { return u.suffix == suffix; });
  if (unit == std::end(kUnits)) return duration_error(text);

  std::int64_t count = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (ec != std::errc{} || end != digits.data() + digits.size() ||
      count > std::numeric_limits<std::int64_t>::max() / unit->ms)
    return make_error("duration \"" + std::string(text) + "\" is too large");
  return Millis{count * unit->ms};
}

std::string format_duration(Millis d) {
  const std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms < 0) return std::to_string(ms) + "ms";
  for (const auto& unit : kUnits)
    if (ms % unit.ms == 0) return std::to_string(ms / unit.ms) + std::string(unit.suffix);
  return std::to_string(ms) + "ms";  // unreachable: every count divides by 1 ms
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the config and credentials readers

namespace {

std::string expected(std::string_view what, const toml::node& got) {
  return "expected " + std::string(what) + ", got " + std::string(type_name(got));
}

// An absolute, lexically normal path; relative ones are taken from `base`.
std::string resolve_path(const fs::path& base, std::string_view value) {
  fs::path p(value);
  if (p.is_relative()) p = base / p;
  return p.lexically_normal().string();
}

// Errors with the line they belong to, reported in line order (toml++ tables iterate by name).
class ErrorList {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}
  void add(int line, std::string message) { items_.push_back({line, std::move(message)}); }
  bool empty() const { return items_.empty(); }
  Error to_error() {
    std::stable_sort(items_.begin(), items_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string text;
    for (const auto& [line, message] : items_) {
      if (!text.empty()) text += '\n';
      text += file_ + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + message;
    }
    return make_error(std::move(text));
  }

 private:
  std::string file_;
  std::vector<std::pair<int, std::string>> items_;
};

// ---------------------------------------------------------------------------------------------
// The schema of personad.toml: one entry per key, each with a check that stores the value.

// Returns an empty string when the value was accepted, else what is wrong with it.
using Apply = std::function<std::string(const toml::node&, Config&, const fs::path& base_dir)>;

struct KeySpec {
  std::string_view section;
  std::string_view key;
  Apply apply;
};

// Every duration has a range (README, "Ranges"): a value beyond it would overflow time
// arithmetic somewhere, or make no sense (a one-year request timeout).
struct DurationRange {
  Millis min;  // 0: "0s" is allowed
  Millis max;
};
constexpr Millis kSecond{1'000};
constexpr Millis kHour{3'600'000};
constexpr Millis kDay{86'400'000};
constexpr DurationRange kTimeout{Millis{1}, kHour};
constexpr DurationRange kUpToADay{Millis{1}, kDay};
constexpr DurationRange kUpTo30Days{Millis{1}, 30 * kDay};
constexpr DurationRange kUpToAYear{Millis{1}, 365 * kDay};

template <class Get>
Apply duration_key(Get get, DurationRange range) {
  return [get, range](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a duration string like \"30s\"", n);
    auto d = parse_duration(s->get());
    if (!d) return d.message();
    if (*d < range.min || *d > range.max) {
      if (range.min.count() == 1 && d->count() == 0)
        return "must be greater than 0 (and at most " + format_duration(range.max) + ")";
      return "must be between " + format_duration(range.min) + " and " +
             format_duration(range.max) + ", got " + in_quotes(s->get());
    }
    get(c) = *d;
    return {};
  };
}

template <class Get, class Valid>
Apply number_key(Get get, Valid valid, std::string_view rule) {
  return [get, valid, rule](const toml::node& n, Config& c, const fs::path&) -> std::string {
    std::optional<double> v;
    if (const auto* f = n.as_floating_point()) v = f->get();
    if (const auto* i = n.as_integer()) v = static_cast<double>(i->get());
    if (!v) return expected("a number", n);
    if (!std::isfinite(*v) || !valid(*v)) {
      std::ostringstream got;
      got << *v;
      return std::string(rule) + ", got " + got.str();
    }
    get(c) = *v;
    return {};
  };
}

template <class Get>
Apply int_key(Get get, std::int64_t lo, std::int64_t hi) {
  return [get, lo, hi](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* i = n.as_integer();
    if (i == nullptr) return expected("an integer", n);
    if (i->get() < lo || i->get() > hi)
      return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
             std::to_string(i->get());
    get(c) = static_cast<int>(i->get());
    return {};
  };
}

template <class Get>
Apply bool_key(Get get) {
  return [get](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* b = n.as_boolean();
    if (b == nullptr) return expected("true or false", n);
    get(c) = b->get();
    return {};
  };
}

template <class Get>
Apply choice_key(Get get, std::vector<std::string_view> choices) {
  return [get, choices](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a string", n);
    if (std::find(choices.begin(), choices.end(), s->get()) == choices.end()) {
      std::string list;
      for (auto choice : choices) list += (list.empty() ? "" : "|") + std::string(choice);
      return "must be one of " + list + ", got " + in_quotes(s->get());
    }
    get(c) = s->get();
    return {};
  };
}

// A NUL ends a path for every system call: "a\u0000b" would silently name "a".
constexpr const char* kNulInPath = "must not contain a NUL character (\\u0000)";
bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Paths are anchored at the config file's directory so the daemon does not depend on its cwd.
template <class Get>
Apply path_key(Get get, bool optional) {
  return [get, optional](const toml::node& n, Config& c, const fs::path& base) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a path string", n);
    if (has_nul(s->get())) return kNulInPath;
    if (s->get().empty()) {
      if (!optional) return "must not be empty";
      get(c).clear();
      return {};
    }
    get(c) = resolve_path(base, s->get());
    return {};
  };
}

// One directory, or a list of them; each anchored at the config file's directory.
Apply media_root_key() {
  return [](const toml::node& n, Config& c, const fs::path& base) -> std::string {
    std::vector<std::string> roots;
    if (const auto* s = n.as_string()) {
      if (s->get().empty()) return "must not be empty (leave the key out for no media root)";
      if (has_nul(s->get())) return kNulInPath;
      roots.push_back(resolve_path(base, s->get()));
    } else if (const auto* arr = n.as_array()) {
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto* e = (*arr)[i].as_string();
        if (e == nullptr)
          return "element " + std::to_string(i + 1) + ": " + expected("a path string", (*arr)[i]);
        if (e->get().empty()) return "element " + std::to_string(i + 1) + ": must not be empty";
        if (has_nul(e->get())) return "element " + std::to_string(i + 1) + ": " + kNulInPath;
        roots.push_back(resolve_path(base, e->get()));
      }
    } else {
      return expected("a directory path or an array of them", n);
    }
    c.media_roots = std::move(roots);
    return {};
  };
}

// The origin's shape is checked here (url.hpp, the parser the client uses too); whether an
// http:// one is allowed depends on api.allow_insecure, checked once every key is read.
Apply base_url_key() {
  return [](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a URL string", n);
    if (auto origin = parse_api_origin(s->get(), true); !origin) return origin.message();
    c.api.base_url = normal_base_url(s->get());
    return {};
  };
}

Apply list_path_key() {
  return [](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a string", n);
    if (s->get().empty() || s->get().front() != '/')
      return "must start with '/', got " + in_quotes(s->get());
    c.api.list_path = s->get();
    return {};
  };
}

template <class Get>
Apply status_list_key(Get get, bool allow_empty) {
  return [get, allow_empty](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* arr = n.as_array();
    if (arr == nullptr) return expected("an array of strings", n);
    std::vector<std::string> values;
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const auto* s = (*arr)[i].as_string();
      if (s == nullptr)
        return "element " + std::to_string(i + 1) + ": " + expected("a string", (*arr)[i]);
      if (s->get().empty()) return "element " + std::to_string(i + 1) + ": must not be empty";
      values.push_back(s->get());
    }
    if (values.empty() && !allow_empty) return "must list at least one status";
    get(c) = std::move(values);
    return {};
  };
}

// An IP address and a port (listen_address.hpp: the one parser of both listeners).
Apply metrics_listen_key() {
  return [](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("an address string like \"127.0.0.1:9464\"", n);
    if (s->get().empty()) {
      c.metrics_listen.clear();
      return {};
    }
    if (auto a = parse_listen_address(s->get()); !a) return a.message();
    c.metrics_listen = s->get();
    return {};
  };
}

// [webhook] listen: an IP address and a port (listen_address.hpp).
Apply webhook_listen_key() {
  return [](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("an address string like \"127.0.0.1:8421\"", n);
    c.webhook.listen = s->get();  // (even when invalid: the key was meant to turn it on)
    if (!s->get().empty())
      if (auto a = parse_listen_address(s->get()); !a) return a.message();
    return {};
  };
}

// [webhook] public_url: where the API reaches the listener; the hook URL built on it must fit
// the API's 200 characters for webhook_url.
// [store] url: a libpq connection URI. Only its scheme is checked here (libpq reads the rest
// when it connects); a password in it is refused, so it is never in a file others may read, in
// a log line or in `personad --check-config` output.
Apply store_url_key() {
  return [](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a PostgreSQL URI like \"postgresql://db.example.com/personad\"", n);
    const std::string& url = s->get();
    if (!is_pg_url(url))
      return "must start with \"postgresql://\" or \"postgres://\" (a libpq connection URI)";
    if (pg_url_has_password(url))
      return "must not contain a password: use PGPASSWORD, ~/.pgpass or the pg_password "
             "credential (LoadCredential=pg_password:…)";
    c.store_url = url;
    return {};
  };
}

Apply webhook_public_url_key() {
  return [](const toml::node& n, Config& c, const fs::path&) -> std::string {
    const auto* s = n.as_string();
    if (s == nullptr) return expected("a URL string", n);
    if (s->get().empty()) {
      c.webhook.public_url.clear();
      return {};
    }
    if (auto u = parse_http_url(s->get()); !u) return u.message();
    if (s->get().find_first_of("?#") != std::string::npos)
      return "must not have a query or a fragment, got " + in_quotes(s->get());
    std::string url = s->get();
    while (!url.empty() && url.back() == '/') url.pop_back();
    constexpr std::size_t kMax = 200 - kWebhookSuffixChars;
    if (url.size() > kMax)
      return "must be at most " + std::to_string(kMax) + " characters (the API takes a "
             "webhook_url of 200, and /hooks/<client_ref>/<token> adds " +
             std::to_string(kWebhookSuffixChars) + "), got " + std::to_string(url.size());
    c.webhook.public_url = std::move(url);
    return {};
  };
}

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> keys = {
      {"api", "base_url", base_url_key()},
      {"api", "credentials_file",
       path_key([](Config& c) -> std::string& { return c.api.credentials_file; }, true)},
      {"api", "ca_file", path_key([](Config& c) -> std::string& { return c.api.ca_file; }, true)},
      {"api", "allow_insecure", bool_key([](Config& c) -> bool& { return c.api.allow_insecure; })},
      {"api", "timeout", duration_key([](Config& c) -> Millis& { return c.api.timeout; }, kTimeout)},
      {"api", "max_requests_per_second",
       number_key([](Config& c) -> double& { return c.api.max_requests_per_second; },
                  [](double v) { return v >= 0.01 && v <= 1'000'000; },
                  "must be between 0.01 and 1000000")},
      {"api", "max_in_flight",
       int_key([](Config& c) -> int& { return c.api.max_in_flight; }, 1, 256)},
      {"api", "done_statuses",
       status_list_key(
           [](Config& c) -> std::vector<std::string>& { return c.api.status.done_statuses; },
           false)},
      {"api", "failed_statuses",
       status_list_key(
           [](Config& c) -> std::vector<std::string>& { return c.api.status.failed_statuses; },
           true)},
      {"api", "list_path", list_path_key()},
      {"api", "require_active",
       bool_key([](Config& c) -> bool& { return c.api.status.require_active; })},
      {"api", "check_capacity", bool_key([](Config& c) -> bool& { return c.api.check_capacity; })},
      {"api", "capacity_recheck",
       duration_key([](Config& c) -> Millis& { return c.api.capacity_recheck; }, kUpToADay)},
      {"api", "retry_initial",
       duration_key([](Config& c) -> Millis& { return c.api.retry_initial; }, kTimeout)},
      {"api", "retry_max",
       duration_key([](Config& c) -> Millis& { return c.api.retry_max; }, kUpToADay)},
      {"api", "reconcile_after",
       duration_key([](Config& c) -> Millis& { return c.api.reconcile_after; }, kUpToADay)},
      {"api", "reconcile_give_up",
       duration_key([](Config& c) -> Millis& { return c.api.reconcile_give_up; }, kUpTo30Days)},
      {"store", "path", path_key([](Config& c) -> std::string& { return c.store_path; }, false)},
      {"store", "url", store_url_key()},
      {"store", "takeover_after",
       duration_key([](Config& c) -> Millis& { return c.takeover_after; },
                    DurationRange{kSecond, kHour})},
      {"batches", "directory",
       path_key([](Config& c) -> std::string& { return c.batches_directory; }, false)},
      {"batches", "media_root", media_root_key()},
      {"poll", "first_after",
       duration_key([](Config& c) -> Millis& { return c.poll.first_after; },
                    DurationRange{Millis{0}, 30 * kDay})},
      {"poll", "initial_interval",
       duration_key([](Config& c) -> Millis& { return c.poll.initial_interval; }, kUpTo30Days)},
      {"poll", "multiplier",
       number_key([](Config& c) -> double& { return c.poll.multiplier; },
                  [](double v) { return v >= 1 && v <= 10; }, "must be between 1 and 10")},
      {"poll", "max_interval",
       duration_key([](Config& c) -> Millis& { return c.poll.max_interval; }, kUpTo30Days)},
      {"poll", "jitter",
       number_key([](Config& c) -> double& { return c.poll.jitter; },
                  [](double v) { return v >= 0 && v < 1; }, "must be in [0, 1)")},
      {"poll", "give_up_after",
       duration_key([](Config& c) -> Millis& { return c.poll.give_up_after; }, kUpToAYear)},
      {"poll", "expected_after",
       duration_key([](Config& c) -> Millis& { return c.poll.expected_after; },
                    DurationRange{Millis{0}, 365 * kDay})},
      {"poll", "sparse_interval",
       duration_key([](Config& c) -> Millis& { return c.poll.sparse_interval; }, kUpTo30Days)},
      {"poll", "max_interval_with_webhook",
       duration_key([](Config& c) -> Millis& { return c.poll.max_interval_with_webhook; },
                    kUpTo30Days)},
      {"control", "socket",
       path_key([](Config& c) -> std::string& { return c.control_socket; }, false)},
      {"webhook", "listen", webhook_listen_key()},
      {"webhook", "public_url", webhook_public_url_key()},
      {"webhook", "secret_file",
       path_key([](Config& c) -> std::string& { return c.webhook.secret_file; }, true)},
      {"log", "level",
       choice_key([](Config& c) -> std::string& { return c.log.level; },
                  {"trace", "debug", "info", "warn", "error"})},
      {"log", "format",
       choice_key([](Config& c) -> std::string& { return c.log.format; },
                  {"text", "json", "journal"})},
      {"daemon", "shutdown_grace",
       duration_key([](Config& c) -> Millis& { return c.shutdown_grace; },
                    DurationRange{Millis{0}, kHour})},
      {"hooks", "on_transition",
       path_key([](Config& c) -> std::string& { return c.hook_on_transition; }, true)},
      {"hooks", "timeout",
       duration_key([](Config& c) -> Millis& { return c.hook_timeout; }, kTimeout)},
      {"metrics", "listen", metrics_listen_key()},
      {"alerts", "stuck_after",
       duration_key([](Config& c) -> Millis& { return c.stuck_after; }, kUpToAYear)},
  };
  return keys;
}

bool is_section(std::string_view name) {
  const auto& keys = schema();
  return std::any_of(keys.begin(), keys.end(), [&](const KeySpec& k) { return k.section == name; });
}

const KeySpec* find_key(std::string_view section, std::string_view key) {
  for (const auto& spec : schema())
    if (spec.section == section && spec.key == key) return &spec;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Reading a parsed document against the schema

class ConfigReader {
 public:
  explicit ConfigReader(const std::string& source)
      : errors_(source), base_dir_(directory_of(source)) {
    config_.source_path = source;
    config_.poll.expected_after = kDefaultExpectedAfter;
  }

  Result<Config> read(const toml::table& root) {
    for (const auto& [name, node] : root) read_section(name, node);
    check_relations();
    if (!errors_.empty()) return errors_.to_error();
    return std::move(config_);
  }

 private:
  void read_section(const toml::key& name, const toml::node& node) {
    if (!is_section(name.str())) {
      errors_.add(line_of(name.source()),
                  node.is_table() ? "unknown section '[" + std::string(name.str()) + "]'"
                                  : "unknown key '" + std::string(name.str()) + "'");
      return;
    }
    const auto* table = node.as_table();
    if (table == nullptr) {
      errors_.add(line_of(name.source()),
                  std::string(name.str()) + ": " +
                      expected("a table [" + std::string(name.str()) + "]", node));
      return;
    }
    for (const auto& [key, value] : *table) read_key(name.str(), key, value);
  }

  void read_key(std::string_view section, const toml::key& key, const toml::node& value) {
    const std::string dotted = std::string(section) + "." + std::string(key.str());
    const int line = line_of(key.source());
    const KeySpec* spec = find_key(section, key.str());
    if (spec == nullptr) {
      errors_.add(line, "unknown key '" + dotted + "'");
      return;
    }
    lines_[dotted] = line;
    if (auto problem = spec->apply(value, config_, base_dir_); !problem.empty())
      errors_.add(line, dotted + ": " + problem);
  }

  // Rules between keys; reported at the line of whichever key the operator wrote.
  void check_relations() {
    if (auto origin = parse_api_origin(config_.api.base_url, config_.api.allow_insecure); !origin)
      errors_.add(line_for("api.base_url", "api.allow_insecure"),
                  "api.base_url: " + origin.message());
    // An operator's own schedule (any of its shape keys set) keeps the meaning it had: the
    // plain backoff, unless the file also asks for a window (expected_after).
    if (!lines_.count("poll.expected_after") &&
        (lines_.count("poll.first_after") || lines_.count("poll.initial_interval") ||
         lines_.count("poll.multiplier") || lines_.count("poll.max_interval")))
      config_.poll.expected_after = Millis{0};
    if (config_.poll.max_interval < config_.poll.initial_interval)
      errors_.add(line_for("poll.max_interval", "poll.initial_interval"),
                  "poll.max_interval: must be at least poll.initial_interval (" +
                      format_duration(config_.poll.initial_interval) + "), got " +
                      format_duration(config_.poll.max_interval));
    if (config_.api.retry_max < config_.api.retry_initial)
      errors_.add(line_for("api.retry_max", "api.retry_initial"),
                  "api.retry_max: must be at least api.retry_initial (" +
                      format_duration(config_.api.retry_initial) + "), got " +
                      format_duration(config_.api.retry_max));
    if (config_.api.reconcile_give_up <= config_.api.reconcile_after)
      errors_.add(line_for("api.reconcile_give_up", "api.reconcile_after"),
                  "api.reconcile_give_up: must be longer than api.reconcile_after (" +
                      format_duration(config_.api.reconcile_after) + "), got " +
                      format_duration(config_.api.reconcile_give_up));
    if (lines_.count("store.path") && lines_.count("store.url"))
      errors_.add(line_for("store.url", "store.path"),
                  "store.url: give either store.path (SQLite) or store.url (PostgreSQL), not both");
    check_webhook();
    for (const auto& status : config_.api.status.done_statuses) {
      const auto& failed = config_.api.status.failed_statuses;
      if (std::find(failed.begin(), failed.end(), status) != failed.end())
        errors_.add(
            line_for("api.failed_statuses", "api.done_statuses"),
            "api.failed_statuses: " + in_quotes(status) + " is also listed in api.done_statuses");
    }
  }

  void check_webhook() {
    const WebhookConfig& w = config_.webhook;
    if (w.enabled() && w.public_url.empty())
      errors_.add(line_for("webhook.listen", "webhook.listen"),
                  "webhook.public_url: required with webhook.listen (the URL the API calls, "
                  "e.g. \"https://hooks.example.com/personad\")");
    if (!w.enabled() && (!w.public_url.empty() || !w.secret_file.empty()))
      errors_.add(line_for("webhook.public_url", "webhook.secret_file"),
                  "webhook.listen: required with webhook.public_url and webhook.secret_file "
                  "(without it the listener is off)");
  }

  int line_for(const std::string& key, const std::string& other) const {
    if (auto it = lines_.find(key); it != lines_.end()) return it->second;
    if (auto it = lines_.find(other); it != lines_.end()) return it->second;
    return 0;
  }

  ErrorList errors_;
  fs::path base_dir_;
  Config config_;
  std::map<std::string, int> lines_;  // dotted key -> line, for errors between keys
};

std::string parse_error_text(const std::string& source, const toml::parse_error& e) {
  const auto& begin = e.source().begin;
  return source + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) + ": " +
         std::string(e.description());
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& source) {
  try {
    const toml::table root = toml::parse(text, std::string_view(source));
    return ConfigReader(source).read(root);
  } catch (const toml::parse_error& e) {
    return make_error(parse_error_text(source, e));
  } catch (const std::bad_alloc&) {
    return make_error(ErrorKind::io, source + ": out of memory while reading it");
  } catch (const std::exception& e) {
    return make_error(source + ": " + e.what());
  }
}

Result<Config> load_config(const std::string& path) {
  try {
    auto text = read_text_file(path, toml_support::kMaxConfigBytes);
    if (!text)
      return make_error(text.kind(), "cannot read config file '" + path + "': " + text.message());
    return parse_config(*text, path);
  } catch (const std::bad_alloc&) {
    return make_error(ErrorKind::io, "cannot read config file '" + path + "': out of memory");
  }
}

// ---------------------------------------------------------------------------------------------
// Credentials. Each source answers: absent (try the next one), broken (stop with an error), or
// found. A source that is half set up is an error rather than a silent fallthrough, so the
// operator never runs with credentials from a place they did not mean.

namespace {

using Source = std::optional<Result<Credentials>>;

constexpr std::string_view kIdEnv = "CREATIFY_API_ID";
constexpr std::string_view kKeyEnv = "CREATIFY_API_KEY";
constexpr std::string_view kIdFile = "creatify_api_id";
constexpr std::string_view kKeyFile = "creatify_api_key";

std::optional<std::string> non_empty(std::optional<std::string> v) {
  if (v && v->empty()) return std::nullopt;
  return v;
}

Source from_environment(const EnvLookup& env) {
  auto id = non_empty(env(kIdEnv));
  auto key = non_empty(env(kKeyEnv));
  if (!id && !key) return std::nullopt;
  if (!id || !key) {
    const auto set = id ? kIdEnv : kKeyEnv;
    const auto missing = id ? kKeyEnv : kIdEnv;
    return Result<Credentials>(make_error(std::string(set) + " is set but " + std::string(missing) +
                                          " is not: set both, or neither"));
  }
  return Result<Credentials>(Credentials{std::move(*id), std::move(*key), "environment"});
}

Result<std::string> read_secret_file(const fs::path& path) {
  auto text = read_text_file(path, toml_support::kMaxCredentialsBytes);
  if (!text) return make_error("cannot read " + path.string() + ": " + text.message());
  std::string value = std::move(*text);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
  if (value.empty()) return make_error(path.string() + " is empty");
  return value;
}

Source from_credentials_directory(const EnvLookup& env) {
  const auto dir = non_empty(env("CREDENTIALS_DIRECTORY"));
  if (!dir) return std::nullopt;
  const fs::path id_path = fs::path(*dir) / kIdFile;
  const fs::path key_path = fs::path(*dir) / kKeyFile;
  std::error_code ec;
  const bool has_id = fs::exists(id_path, ec);
  const bool has_key = fs::exists(key_path, ec);
  // systemd may pass other credentials in the same directory: no files of ours means absent.
  if (!has_id && !has_key) return std::nullopt;
  if (!has_id || !has_key)
    return Result<Credentials>(make_error("$CREDENTIALS_DIRECTORY (" + *dir + ") has " +
                                          std::string(has_id ? kIdFile : kKeyFile) + " but not " +
                                          std::string(has_id ? kKeyFile : kIdFile)));
  auto id = read_secret_file(id_path);
  if (!id) return Result<Credentials>(id.error());
  auto key = read_secret_file(key_path);
  if (!key) return Result<Credentials>(key.error());
  return Result<Credentials>(
      Credentials{std::move(*id), std::move(*key), "$CREDENTIALS_DIRECTORY"});
}

// The document holds secrets: toml++ error descriptions may quote a character of a value, so
// only the position is reported.
Result<Credentials> read_credentials_toml(const std::string& path, const toml::table& root) {
  ErrorList errors(path);
  Credentials found{{}, {}, path};
  std::map<std::string_view, std::string*> wanted = {{"api_id", &found.api_id},
                                                     {"api_key", &found.api_key}};
  for (const auto& [key, node] : root) {
    const int line = line_of(key.source());
    auto it = wanted.find(key.str());
    if (it == wanted.end()) {
      errors.add(line, "unknown key '" + std::string(key.str()) + "'");
      continue;
    }
    const auto* s = node.as_string();
    if (s == nullptr)
      errors.add(line, std::string(key.str()) + ": " + expected("a string", node));
    else if (s->get().empty())
      errors.add(line, std::string(key.str()) + ": must not be empty");
    else
      *it->second = s->get();
  }
  for (const auto& [name, target] : wanted)
    if (target->empty() && !root.contains(name)) errors.add(0, "missing " + std::string(name));
  if (!errors.empty()) return errors.to_error();
  return found;
}

// Like ssh with a private key: a secrets file that every user of the host may read (or
// write) is refused, whatever it holds.
Result<void> check_private(const std::string& path, std::string_view key) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};  // reading it reports the problem
  if ((st.st_mode & 0007) == 0) return {};
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return make_error(ErrorKind::invalid,
                    std::string(key) + " '" + path + "' has mode " + mode +
                        ": other users may access it, so it is refused; make it readable by "
                        "its owner (and group) only, e.g. chmod 600 '" + path + "'");
}

Source from_credentials_file(const Config& config) {
  const std::string& path = config.api.credentials_file;
  if (path.empty()) return std::nullopt;
  if (auto r = check_private(path, "api.credentials_file"); !r)
    return Result<Credentials>(r.error());
  auto text = read_text_file(path, toml_support::kMaxCredentialsBytes);
  if (!text)
    return Result<Credentials>(make_error(
        ErrorKind::invalid, "cannot read api.credentials_file '" + path + "': " + text.message()));
  try {
    const toml::table root = toml::parse(*text, std::string_view(path));
    return read_credentials_toml(path, root);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    return Result<Credentials>(
        make_error(path + ":" + std::to_string(begin.line) + ":" + std::to_string(begin.column) +
                   ": not valid TOML (details withheld: the file holds secrets)"));
  }
}

}  // namespace

Result<std::string> load_webhook_secret(const Config& config, const EnvLookup& env) {
  std::string path;
  if (const auto dir = non_empty(env("CREDENTIALS_DIRECTORY"))) {
    std::error_code ec;
    if (fs::exists(fs::path(*dir) / "webhook_secret", ec))
      path = (fs::path(*dir) / "webhook_secret").string();
  }
  if (path.empty()) {
    path = config.webhook.secret_file;
    if (path.empty())
      return make_error(ErrorKind::invalid,
                        "webhook.secret_file: required with webhook.listen (or a file "
                        "webhook_secret in $CREDENTIALS_DIRECTORY)");
    if (auto r = check_private(path, "webhook.secret_file"); !r) return r.error();
  }
  auto secret = read_secret_file(path);
  if (!secret) return make_error(ErrorKind::invalid, "webhook secret: " + secret.message());
  if (secret->size() < 16)
    return make_error(ErrorKind::invalid, "webhook secret " + path + ": must be at least 16 "
                                          "characters (e.g. openssl rand -hex 32 > " + path + ")");
  return std::move(*secret);
}

Result<std::string> load_pg_password(const EnvLookup& env) {
  const auto dir = non_empty(env("CREDENTIALS_DIRECTORY"));
  if (!dir) return std::string();
  const fs::path path = fs::path(*dir) / "pg_password";
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::string();
  auto password = read_secret_file(path.string());
  if (!password) return make_error(ErrorKind::invalid, "PostgreSQL password: " + password.message());
  return std::move(*password);
}

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Result<Credentials> load_credentials(const Config& config, const EnvLookup& env) {
  try {
    if (auto found = from_environment(env)) return std::move(*found);
    if (auto found = from_credentials_directory(env)) return std::move(*found);
    if (auto found = from_credentials_file(config)) return std::move(*found);
  } catch (const std::exception& e) {
    return make_error(ErrorKind::invalid, std::string("cannot load credentials: ") + e.what());
  }
  return make_error(
      ErrorKind::not_found,
      "no Creatify API credentials: set CREATIFY_API_ID and CREATIFY_API_KEY in the "
      "environment, or provide files creatify_api_id and creatify_api_key in "
      "$CREDENTIALS_DIRECTORY (systemd LoadCredential=), or set api.credentials_file in " +
      (config.source_path.empty() ? std::string("the config file") : config.source_path));
}

// ---------------------------------------------------------------------------------------------
// Start-up checks shared by `personad --check-config` and start-up

namespace {

// faccessat with the effective ids: sees read-only file systems, immutable files (chattr +i)
// and permissions, without opening anything (closing a descriptor of a SQLite file this
// process has open would drop SQLite's locks).
bool may_access(const fs::path& p, int mode, int& err) {
  if (::faccessat(AT_FDCWD, p.c_str(), mode, AT_EACCESS) == 0) return true;
  err = errno;
  return false;
}

std::string why_not(int err) {
  std::string text = std::strerror(err);
  if (err == EPERM) text += " (an immutable file? see lsattr)";
  return text;
}

}  // namespace

Result<void> check_store_writable(const std::string& path) {
  std::error_code ec;
  fs::path file(path);
  // SQLite follows a symlinked database to its real place and keeps its -wal and -shm there.
  if (fs::is_symlink(fs::symlink_status(file, ec))) {
    const fs::path real = fs::canonical(file, ec);
    if (!ec) file = real;
  }
  const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  int err = 0;
  const auto status = fs::status(file, ec);
  if (fs::exists(status)) {
    if (!fs::is_regular_file(status))
      return make_error(ErrorKind::io,
                        "store.path '" + path + "' is not a regular file, so not a database");
    if (!may_access(file, R_OK | W_OK, err))
      return make_error(ErrorKind::io, "store.path '" + file.string() +
                                           "': the database cannot be written: " + why_not(err));
    for (const char* suffix : {"-wal", "-shm", "-journal"}) {
      const fs::path side = file.string() + suffix;
      if (fs::exists(fs::symlink_status(side, ec)) && !may_access(side, R_OK | W_OK, err))
        return make_error(ErrorKind::io, "store.path: '" + side.string() +
                                             "' (SQLite's file beside the database) cannot be "
                                             "written: " + why_not(err));
    }
  }
  if (fs::is_directory(dir, ec)) {
    if (!may_access(dir, W_OK | X_OK, err))
      return make_error(ErrorKind::io, "store.path: directory '" + dir.string() +
                                           "' cannot be written (SQLite creates its -wal and "
                                           "-shm files there): " + why_not(err));
    return {};
  }
  // A directory that does not exist yet is made at start, with the parents it needs: the
  // nearest one that exists must let us.
  std::error_code abs_ec;
  fs::path above = fs::absolute(dir, abs_ec).parent_path();
  struct stat st {};
  while (!abs_ec && ::lstat(above.c_str(), &st) != 0 && errno == ENOENT &&
         above != above.parent_path())
    above = above.parent_path();
  if (!abs_ec && fs::is_directory(above, ec) && !may_access(above, W_OK | X_OK, err))
    return make_error(ErrorKind::io, "store.path: directory '" + dir.string() +
                                         "' does not exist and cannot be made in '" +
                                         above.string() + "': " + why_not(err));
  return {};
}

StartupCheck check_startup(const Config& config, const EnvLookup& env) {
  StartupCheck out;
  auto credentials = load_credentials(config, env);
  if (credentials)
    out.credentials = std::move(*credentials);
  else if (credentials.kind() == ErrorKind::not_found)
    out.credentials_missing = credentials.message();
  else
    out.errors.push_back({"credentials", credentials.message()});
  // A PostgreSQL store is checked when it is reached (the database may be down at this
  // moment and come up before the daemon starts); its password credential must load.
  if (!config.store_url.empty()) {
    if (auto p = load_pg_password(env); !p) out.errors.push_back({"store", p.message()});
  } else if (auto w = check_store_writable(config.store_path); !w) {
    out.errors.push_back({"store", w.message()});
  }
  // The client loads it the same way (add_ca_file) when it starts: a file it cannot use is an
  // error here, not a daemon that starts and then fails every request.
  if (!config.api.ca_file.empty())
    if (auto ca = check_ca_file(config.api.ca_file); !ca)
      out.errors.push_back({"api.ca_file", ca.message()});
  if (config.webhook.enabled())
    if (auto secret = load_webhook_secret(config, env); !secret)
      out.errors.push_back({"webhook.secret_file", secret.message()});
  for (const auto& root : config.media_roots) {
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      out.warnings.push_back({"batches.media_root",
                              "batches.media_root '" + root +
                                  "' is not a directory (yet): no local video is allowed from it"});
  }
  return out;
}

}  // namespace personad
