// The selection's one parser and its query string (see selection.hpp).
#include "personad/selection.hpp"

#include <algorithm>
#include <array>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <charconv>

#include "personad/config.hpp"

namespace personad {

namespace {

constexpr std::array<std::string_view, 11> kNames = {
    "state", "label", "source", "key", "remote_status", "since", "until",
    "needs_operator", "stuck", "after", "limit"};

// The contract's keys are at most 128 characters: longer is no key at all.
constexpr std::size_t kMaxKeyChars = 128;
// Longer texts are no label, file name or remote status either: refused rather than searched.
constexpr std::size_t kMaxValueChars = 4096;

Error bad(std::string_view name, std::string why) {
  return make_error(ErrorKind::invalid, std::string(name) + ": " + why);
}

std::string quoted(std::string_view v) { return "'" + std::string(v) + "'"; }

// RFC 3339 (a date alone is midnight UTC), or a duration back from now.
Result<TimePoint> parse_time_arg(std::string_view name, std::string_view v, TimePoint now) {
  if (auto t = parse_rfc3339(v)) return *t;
  if (v.size() == 10 && v[4] == '-' && v[7] == '-') {
    std::string midnight(v);
    midnight.append("T00:00:00Z");
    if (auto t = parse_rfc3339(midnight)) return *t;
  }
  auto d = parse_duration(v);
  if (!d)
    return bad(name, "expected an RFC 3339 time (2026-11-30T08:00:00Z) or a duration back from "
                     "now (90m, 3d), got " + quoted(v));
  return TimePoint(now - *d);
}

Result<bool> parse_flag(std::string_view name, std::string_view v) {
  if (v.empty() || v == "1" || v == "true" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "no") return false;
  return bad(name, "expected 1 or 0, got " + quoted(v));
}

Result<std::int64_t> parse_limit(std::string_view v) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 1)
    return bad("limit", "expected a whole number of at least 1, got " + quoted(v));
  return n;
}

Result<void> check_text(std::string_view name, std::string_view v, std::size_t max) {
  if (v.empty()) return bad(name, "must not be empty");
  if (v.size() > max)
    return bad(name, "too long: " + std::to_string(v.size()) + " characters, at most " +
                         std::to_string(max));
  return {};
}

void add_unique(std::vector<std::string>& to, std::string v) {
  if (std::find(to.begin(), to.end(), v) == to.end()) to.push_back(std::move(v));
}

bool set_matches(std::string_view set, char c) {
  bool negate = !set.empty() && (set[0] == '!' || set[0] == '^');
  if (negate) set.remove_prefix(1);
  bool in = false;
  for (std::size_t k = 0; k < set.size(); ++k) {
    if (k + 2 < set.size() && set[k + 1] == '-') {
      in = in || (c >= set[k] && c <= set[k + 2]);
      k += 2;
    } else {
      in = in || c == set[k];
    }
  }
  return in != negate;
}

}  // namespace

bool is_selection_param(std::string_view name) {
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

std::string glob_problem(std::string_view glob) {
  for (std::size_t i = 0; i < glob.size(); ++i) {
    if (glob[i] == '\\') {
      ++i;
    } else if (glob[i] == '[') {
      const std::size_t end = glob_set_end(glob, i);
      if (end == std::string_view::npos)
        return "the set at character " + std::to_string(i + 1) + " has no closing ']'";
      i = end;
    }
  }
  return {};
}

std::size_t glob_set_end(std::string_view glob, std::size_t i) {
  std::size_t j = i + 1;
  if (j < glob.size() && (glob[j] == '!' || glob[j] == '^')) ++j;
  if (j < glob.size() && glob[j] == ']') ++j;
  while (j < glob.size() && glob[j] != ']') ++j;
  return j < glob.size() ? j : std::string_view::npos;
}

bool glob_match(std::string_view glob, std::string_view key) {
  // Iterative matching with one backtrack point (the last '*'): linear in practice, never
  // exponential whatever the pattern.
  std::size_t g = 0, k = 0;
  std::size_t star_g = std::string_view::npos, star_k = 0;
  while (k < key.size()) {
    bool step = false;
    if (g < glob.size()) {
      const char c = glob[g];
      if (c == '*') {
        star_g = g++;
        star_k = k;
        continue;
      }
      if (c == '?') {
        step = true;
        g += 1;
      } else if (c == '[' && glob_set_end(glob, g) != std::string_view::npos) {
        const std::size_t end = glob_set_end(glob, g);
        if (set_matches(glob.substr(g + 1, end - g - 1), key[k])) {
          step = true;
          g = end + 1;
        }
      } else if (c == '\\' && g + 1 < glob.size()) {
        if (glob[g + 1] == key[k]) {
          step = true;
          g += 2;
        }
      } else if (c == key[k]) {
        step = true;
        g += 1;
      }
    }
    if (step) {
      ++k;
      continue;
    }
    if (star_g == std::string_view::npos) return false;
    g = star_g + 1;
    k = ++star_k;
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

Result<Selection> parse_selection(const std::vector<SelectionParam>& params, TimePoint now) {
  Selection s;
  for (const auto& [name, value] : params) {
    if (name == "state") {
      auto st = parse_state(value);
      if (!st)
        return bad(name, "unknown state " + quoted(value) +
                             " (queued, submitting, pending, done, failed, expired, cancelled)");
      if (std::find(s.states.begin(), s.states.end(), *st) == s.states.end())
        s.states.push_back(*st);
    } else if (name == "label" || name == "source" || name == "remote_status") {
      if (auto r = check_text(name, value, kMaxValueChars); !r) return r.error();
      add_unique(name == "label"    ? s.labels
                 : name == "source" ? s.sources
                                    : s.remote_statuses,
                 value);
    } else if (name == "key") {
      if (auto r = check_text(name, value, kMaxValueChars); !r) return r.error();
      if (auto problem = glob_problem(value); !problem.empty())
        return bad(name, "bad glob " + quoted(value) + ": " + problem);
      s.key_glob = value;
    } else if (name == "since" || name == "until") {
      auto t = parse_time_arg(name, value, now);
      if (!t) return t.error();
      (name == "since" ? s.since : s.until) = *t;
    } else if (name == "needs_operator" || name == "stuck") {
      auto f = parse_flag(name, value);
      if (!f) return f.error();
      (name == "stuck" ? s.stuck : s.needs_operator) = *f;
    } else if (name == "after") {
      if (auto r = check_text(name, value, kMaxKeyChars); !r) return r.error();
      s.after = value;
    } else if (name == "limit") {
      auto n = parse_limit(value);
      if (!n) return n.error();
      s.limit = *n;
    } else {
      return make_error(ErrorKind::invalid, "unknown parameter " + quoted(name));
    }
  }
  return s;
}

std::vector<SelectionParam> selection_params(const Selection& s) {
  std::vector<SelectionParam> out;
  for (State st : s.states) out.emplace_back("state", std::string(to_string(st)));
  for (const auto& l : s.labels) out.emplace_back("label", l);
  for (const auto& src : s.sources) out.emplace_back("source", src);
  if (s.key_glob) out.emplace_back("key", *s.key_glob);
  for (const auto& r : s.remote_statuses) out.emplace_back("remote_status", r);
  if (s.since) out.emplace_back("since", format_rfc3339(*s.since));
  if (s.until) out.emplace_back("until", format_rfc3339(*s.until));
  if (s.needs_operator) out.emplace_back("needs_operator", "1");
  if (s.stuck) out.emplace_back("stuck", "1");
  if (s.after) out.emplace_back("after", *s.after);
  if (s.limit) out.emplace_back("limit", std::to_string(*s.limit));
  return out;
}

std::string selection_query(const Selection& s) {
  std::string q;
  for (const auto& [name, value] : selection_params(s)) {
    if (!q.empty()) q += '&';
    q += name;
    q += '=';
    q += boost::urls::encode(value, boost::urls::unreserved_chars);
  }
  return q;
}

}  // namespace personad
