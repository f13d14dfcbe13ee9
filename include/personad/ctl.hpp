// personactl's commands: each asks the daemon over its control socket (or, for inspection,
// reads the database when the daemon is down) and prints a table or the contract's JSON.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "personad/clock.hpp"
#include "personad/config.hpp"
#include "personad/selection.hpp"

namespace personad::ctl {

// Exit codes of the contract.
constexpr int kOk = 0;
constexpr int kRefused = 1;  // unknown key, not allowed, daemon unreachable
constexpr int kInvalid = 2;  // invalid input

// The contract's keys are [A-Za-z0-9._-]{1,128}: a longer KEY argument is refused (exit 2)
// before anything is sent.
constexpr std::size_t kMaxKeyChars = 128;

// `submit` sends a file's entries to the daemon in requests of at most this many entries and
// bytes (the daemon refuses bodies over 1 MiB; each request is one transaction there).
constexpr std::size_t kSubmitChunkEntries = 1000;
constexpr std::size_t kSubmitChunkBytes = 512 * 1024;
// With the daemon down it writes them into the database in transactions of at most this many
// (each commit is an fsync; a starting daemon's own writes wait at most one of them).
constexpr std::size_t kOfflineChunkEntries = 10'000;

struct Context {
  Config config;  // control.socket and store.path are what matter
  Millis timeout{30'000};  // per request to the daemon
  std::ostream& out;
  std::ostream& err;
  // After `submit` wrote into the database because the socket did not answer while the daemon
  // holds the database (it is starting): how long to wait for the socket, to have the daemon
  // pick the jobs up at once.
  Millis startup_wait{5'000};
  // The daemon answers 503 {"busy": true} while it serves as many control connections as it
  // will: ask again every busy_retry for up to this long.
  Millis busy_wait{10'000};
  Millis busy_retry{250};
  // What `--stuck` means when personactl answers from the database itself.
  Millis stuck_after = kDefaultStuckAfter;
};

// `list` output: a table (at most kTableRows rows unless --limit says otherwise, then
// `… N more`), a JSON array, JSON lines, or CSV (RFC 4180).
enum class ListFormat { table, json, jsonl, csv };
constexpr std::int64_t kTableRows = 1'000;

int submit(const Context& ctx, const std::vector<std::string>& files);
// `selection`: the filters and paging as flags named like the query string (selection.hpp),
// e.g. {"state", "failed"}, {"label", "acme"}, {"since", "3d"}, {"limit", "50"}.
int list(const Context& ctx, const std::vector<SelectionParam>& selection, ListFormat format);
int show(const Context& ctx, const std::string& key, bool as_json);
int history(const Context& ctx, const std::string& key, bool as_json);
int stats(const Context& ctx, bool as_json);
int cancel(const Context& ctx, const std::string& key);
int retry(const Context& ctx, const std::string& key, bool resubmit);
int resolve(const Context& ctx, const std::string& key, const std::string& adopt, bool resubmit);

// Left-aligned columns two spaces apart, one line per row.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

// CSV of the contract: a header row, then one row per job object; RFC 4180 (a field holding a
// comma, a double quote, CR or LF is quoted, quotes doubled; rows end in CRLF). Null is an
// empty field; labels are the operator's (personad's own left out), joined by ';'.
std::string csv_field(std::string_view value);
std::string csv_header();
std::string csv_row(const boost::json::object& job);

}  // namespace personad::ctl
