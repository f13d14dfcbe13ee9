// Which jobs an operator means: the filters and the paging of the contract ("Selecting jobs"),
// as one plain struct read from personactl's flags and from a control request's query string by
// the same parser, so `list`, `watch`, `wait`, `cancel` and `retry` select alike everywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/result.hpp"

namespace personad {

// `--stuck` without `[alerts] stuck_after`: a non-final job whose state and remote status have
// not changed for this long.
constexpr Millis kDefaultStuckAfter{3LL * 24 * 3600'000};

// Filters combine with AND; a list matches any of its values; empty or absent: no constraint.
// Jobs come in one stable order, created_at then key (byte order), and a page starts after the
// job `after` names (keyset paging: the order's columns never change, so paging while jobs
// change neither skips nor repeats a job).
struct Selection {
  std::vector<State> states;                // --state S (repeatable)
  std::vector<std::string> labels;          // --label L: an operator label of the spec
  std::vector<std::string> sources;         // --source S: the batch file as recorded, or personactl
  std::optional<std::string> key_glob;      // --key GLOB: * ? [set] [!set], on the whole key
  std::vector<std::string> remote_statuses; // --remote-status X: the API's process_status
  std::optional<TimePoint> since;           // --since T: created_at >= T
  std::optional<TimePoint> until;           // --until T: created_at < T
  bool needs_operator = false;              // --needs-operator: non-final, waiting for resolve
  bool stuck = false;                       // --stuck (see SelectOptions::stuck_before)
  std::optional<std::string> after;         // --after KEY
  std::optional<std::int64_t> limit;        // --limit N (>= 1); absent: every matching job

  bool operator==(const Selection&) const = default;
};

// One name=value pair of a query string (decoded), or one flag of personactl's command line
// under the same name.
using SelectionParam = std::pair<std::string, std::string>;

// The names: state, label, source, key, remote_status, since, until, needs_operator, stuck,
// after, limit. `since`/`until` take RFC 3339 or a duration back from `now` ("90m", "3d");
// `needs_operator`/`stuck` take 1/true (0/false: off). An unknown name or a bad value is an
// ErrorKind::invalid naming it.
Result<Selection> parse_selection(const std::vector<SelectionParam>& params, TimePoint now);
// The pairs that parse back to `s` (times as RFC 3339), and the query string of them
// ("state=failed&label=acme", percent-encoded; empty when nothing is selected).
std::vector<SelectionParam> selection_params(const Selection& s);
std::string selection_query(const Selection& s);

// Whether `name` is one of the selection's parameters.
bool is_selection_param(std::string_view name);

// Whether `key` matches a shell glob: `*` any run, `?` one character, `[abc]`, `[a-z]`,
// `[!x]` or `[^x]` a set or its complement, `\c` the character c. Byte-wise (keys are ASCII).
bool glob_match(std::string_view glob, std::string_view key);
// Empty when `glob` is well formed, else why not (an unterminated set).
std::string glob_problem(std::string_view glob);
// The end of the set that starts at glob[i] ('['), or npos when it is not terminated. A ']'
// first in the set (after an optional '!' or '^') is a member, as in the shell.
std::size_t glob_set_end(std::string_view glob, std::size_t i);

}  // namespace personad
