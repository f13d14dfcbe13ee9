// A selection (selection.hpp) as SQL for either store: the FROM and WHERE clauses, the keyset
// cut after a job and the LIMIT, with placeholders only. The values go in as parameters, so each
// shape of clause is prepared once; the two dialects differ only in what SqlDialect names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "personad/clock.hpp"
#include "personad/selection.hpp"

namespace personad {

enum class SqlDialect { sqlite, postgresql };

// A parameter's value: NULL, a number or text.
using SqlValue = std::variant<std::monostate, std::int64_t, std::string>;

// `order` names the table whose (created_at, key) the page is sorted and cut by.
//
// The plan is chosen here, by the shape of the selection, rather than left to statistics the
// database may not keep: one label walks that label's rows of job_labels already in order;
// `--stuck` walks the partial index of the non-final jobs in order (SQLite is told so);
// anything else reads jobs, where each filter has an index that starts with it and goes on in
// the selection's order.
struct SelectionSql {
  SqlDialect dialect = SqlDialect::sqlite;
  std::string from;
  std::string where;
  std::string order = "j";
  std::vector<SqlValue> values;  // in the placeholders' order

  // The placeholder of the next value: "?" (SQLite), "$n::type" (PostgreSQL).
  std::string bind(SqlValue v);
  // " AND column = value" or " AND column IN (values…)".
  void in_list(std::string_view column, const std::vector<std::string>& v);
  // The keyset cut: rows after (created_at, key) in the order.
  std::string after(std::int64_t created_at, std::string key);
  // " LIMIT n"; none: every row.
  std::string limit(std::optional<std::int64_t> n);
  // The id column of the order's table.
  std::string id() const { return order == "l" ? "l.job_id" : "j.id"; }
  std::string order_by() const { return " ORDER BY " + order + ".created_at, " + order + ".key"; }
};

// `stuck_before`: for Selection::stuck, non-final jobs whose state and remote status last
// changed before it (SelectOptions::stuck_before).
SelectionSql selection_sql(SqlDialect dialect, const Selection& s, TimePoint stuck_before);

// A shell glob (selection.hpp) as SQLite's GLOB: the same metacharacters and byte-wise
// matching, but a set's complement is written [^…] only and there is no escape character.
std::string sqlite_glob(std::string_view glob);
// The same glob as an anchored PostgreSQL regular expression. nullopt: it matches no key at all
// (a set whose every range is reversed).
std::optional<std::string> glob_regex(std::string_view glob);

}  // namespace personad
