// Selections as SQL (see selection_sql.hpp).
#include "personad/selection_sql.hpp"

#include <cctype>
#include <cstdio>

#include "personad/stored_job.hpp"

namespace personad {

namespace {

// One character as a literal of a regular expression, inside or outside a bracket: letters and
// digits as they are, every other ASCII character as \uXXXX (never special, never ambiguous).
void regex_literal(std::string& out, char c) {
  const auto u = static_cast<unsigned char>(c);
  if (std::isalnum(u) != 0 || u >= 0x80) {
    out += c;
    return;
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", u);
  out += buf;
}

}  // namespace

// glob_match (selection.cpp) is the reference: `*` → .*, `?` → ., a set → a bracket
// expression, everything else literal.
std::optional<std::string> glob_regex(std::string_view glob) {
  std::string out = "^";
  for (std::size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '*') {
      out += ".*";
    } else if (c == '?') {
      out += '.';
    } else if (c == '\\' && i + 1 < glob.size()) {
      regex_literal(out, glob[++i]);
    } else if (c == '[' && glob_set_end(glob, i) != std::string_view::npos) {
      const std::size_t end = glob_set_end(glob, i);
      std::string_view set = glob.substr(i + 1, end - i - 1);
      const bool negate = !set.empty() && (set[0] == '!' || set[0] == '^');
      if (negate) set.remove_prefix(1);
      std::string members;
      for (std::size_t k = 0; k < set.size(); ++k) {
        if (k + 2 < set.size() && set[k + 1] == '-') {
          if (set[k] <= set[k + 2]) {  // a reversed range holds nothing (glob_match)
            regex_literal(members, set[k]);
            members += '-';
            regex_literal(members, set[k + 2]);
          }
          k += 2;
        } else {
          regex_literal(members, set[k]);
        }
      }
      if (members.empty()) {
        if (!negate) return std::nullopt;
        out += '.';
      } else {
        out += (negate ? "[^" : "[") + members + "]";
      }
      i = end;
    } else {
      regex_literal(out, c);
    }
  }
  return out + "$";
}

std::string sqlite_glob(std::string_view glob) {
  std::string out;
  for (std::size_t i = 0; i < glob.size(); ++i) {
    const char c = glob[i];
    if (c == '\\' && i + 1 < glob.size()) {
      const char e = glob[++i];
      if (e == '*' || e == '?' || e == '[') {
        out += '[';
        out += e;
        out += ']';
      } else {
        out += e;  // nothing else is special outside a set
      }
    } else if (c == '[') {
      // Copied whole (a ']' first in the set is a member), '!' turned into '^'.
      std::size_t j = i + 1;
      out += '[';
      if (j < glob.size() && (glob[j] == '!' || glob[j] == '^')) {
        out += '^';
        ++j;
      }
      if (j < glob.size() && glob[j] == ']') out += glob[j++];
      while (j < glob.size() && glob[j] != ']') out += glob[j++];
      if (j < glob.size()) out += ']';
      i = j;
    } else {
      out += c;
    }
  }
  return out;
}

std::string SelectionSql::bind(SqlValue v) {
  std::string p;
  if (dialect == SqlDialect::sqlite) {
    p = "?";
  } else {
    p = "$" + std::to_string(values.size() + 1) +
        (std::holds_alternative<std::string>(v) ? "::text" : "::bigint");
  }
  values.push_back(std::move(v));
  return p;
}

void SelectionSql::in_list(std::string_view column, const std::vector<std::string>& v) {
  where += " AND ";
  where += column;
  if (v.size() == 1) {
    where += " = " + bind(v[0]);
    return;
  }
  where += " IN (";
  for (std::size_t i = 0; i < v.size(); ++i) where += (i == 0 ? "" : ", ") + bind(v[i]);
  where += ")";
}

std::string SelectionSql::after(std::int64_t created_at, std::string key) {
  const std::string at = bind(created_at);
  return " AND (" + order + ".created_at, " + order + ".key) > (" + at + ", " +
         bind(std::move(key)) + ")";
}

std::string SelectionSql::limit(std::optional<std::int64_t> n) {
  // SQLite: a negative limit is none; PostgreSQL: NULL.
  if (!n) return " LIMIT " + bind(dialect == SqlDialect::sqlite ? SqlValue(std::int64_t{-1})
                                                                : SqlValue(std::monostate{}));
  return " LIMIT " + bind(*n);
}

SelectionSql selection_sql(SqlDialect dialect, const Selection& s, TimePoint stuck_before) {
  const bool sqlite = dialect == SqlDialect::sqlite;
  // The non-final jobs, word for word as the partial indexes over them say it (0011).
  const std::string active =
      sqlite ? PERSONAD_SQL_ACTIVE("j.state") : "j.state IN " PERSONAD_ACTIVE_STATES;
  SelectionSql q;
  q.dialect = dialect;
  q.where = sqlite ? "1 = 1" : "true";
  const bool one_label = s.labels.size() == 1;
  if (one_label) {
    q.order = "l";
    q.in_list("l.label", s.labels);
  }
  // What the order's table holds (job_labels has the key and creation time too).
  const std::string t = q.order;
  if (s.key_glob) {
    if (sqlite) {
      q.where += " AND " + t + ".key GLOB " + q.bind(sqlite_glob(*s.key_glob));
    } else if (auto regex = glob_regex(*s.key_glob)) {
      q.where += " AND " + t + ".key ~ " + q.bind(*regex);
    } else {
      q.where += " AND false";
    }
  }
  if (s.since) q.where += " AND " + t + ".created_at >= " + q.bind(to_unix_ms(*s.since));
  if (s.until) q.where += " AND " + t + ".created_at < " + q.bind(to_unix_ms(*s.until));
  // What only the job row holds.
  bool on_jobs = false;
  if (!s.states.empty()) {
    std::vector<std::string> names;
    for (State st : s.states) names.emplace_back(to_string(st));
    q.in_list("j.state", names);
    on_jobs = true;
  }
  if (!s.sources.empty()) {
    q.in_list("j.source", s.sources);
    on_jobs = true;
  }
  if (!s.remote_statuses.empty()) {
    q.in_list("j.remote_status", s.remote_statuses);
    on_jobs = true;
  }
  if (s.needs_operator) {
    q.where += std::string(sqlite ? " AND j.needs_operator = 1" : " AND j.needs_operator") +
               " AND " + active;
    on_jobs = true;
  }
  if (s.stuck) {
    // The partial index's own condition, word for word, so that it may serve.
    q.where += " AND " + active + " AND j.status_since <= " + q.bind(to_unix_ms(stuck_before));
    on_jobs = true;
  }
  if (s.labels.size() > 1) {
    q.where += " AND j.id IN (SELECT job_id FROM job_labels WHERE label IN (";
    for (std::size_t i = 0; i < s.labels.size(); ++i)
      q.where += (i == 0 ? "" : ", ") + q.bind(s.labels[i]);
    q.where += "))";
  }
  if (one_label)
    q.from = on_jobs ? "job_labels AS l JOIN jobs AS j ON j.id = l.job_id" : "job_labels AS l";
  else if (s.stuck && sqlite)
    q.from = "jobs AS j INDEXED BY jobs_active_created";
  else
    q.from = "jobs AS j";
  return q;
}

}  // namespace personad
