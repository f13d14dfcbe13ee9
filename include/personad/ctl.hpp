// personactl's commands: each asks the daemon over its control socket (or, for inspection,
// reads the database when the daemon is down) and prints a table or the contract's JSON.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "personad/clock.hpp"
#include "personad/config.hpp"
#include "personad/operator_action.hpp"
#include "personad/selection.hpp"

namespace personad::ctl {

// Exit codes of the contract.
constexpr int kOk = 0;
constexpr int kRefused = 1;  // unknown key, not allowed, daemon unreachable
constexpr int kInvalid = 2;  // invalid input
constexpr int kUnsuccessful = 3;  // wait: a job failed, expired or was cancelled
constexpr int kTimedOut = 124;    // wait --timeout ran out (as timeout(1))
constexpr int kInterrupted = 130; // watch: Ctrl-C

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
// `keys`: one key a line (the shell completion's helper, hidden as --keys-only).
enum class ListFormat { table, json, jsonl, csv, keys };
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

// ---- Bulk actions: cancel and retry with filters ----
// With filters: `N jobs match` and up to kPreviewKeys keys; --dry-run stops there; otherwise
// --yes is needed when stdin is not a terminal, and a terminal is asked `… N jobs? [y/N]`. Then
// one request to the daemon (POST /v1/bulk/ACTION?SELECTION) and one line per job.
constexpr std::size_t kPreviewKeys = 10;
struct BulkOptions {
  BulkAction action = BulkAction::cancel;
  std::vector<SelectionParam> selection;
  bool resubmit = false;
  bool dry_run = false;
  bool yes = false;
};
enum class ConfirmStep { preview_only, need_yes, ask, go };
ConfirmStep confirm_step(bool dry_run, bool yes, bool stdin_is_terminal);
// y or yes, any case, surrounding blanks ignored.
bool is_yes(std::string_view answer);
// `cancelled KEY`, `retried KEY`, `skipped KEY STATE: why` (or `failed KEY STATE: why`: could
// not be recorded) for one result of the bulk route.
std::string bulk_result_line(const boost::json::object& result);
int bulk(const Context& ctx, const BulkOptions& o, std::istream& in, bool stdin_is_terminal);

// ---- Following: watch and wait (GET /v1/events; follow.hpp) ----
// watch: `screen` on a terminal (watch_screen.hpp), else one line per event and a summary line.
// Exit 0 when every selected job is final, 130 on Ctrl-C.
int watch(const Context& ctx, const std::vector<SelectionParam>& selection, bool screen);
// wait: exit 0 all done, 3 any failed/expired/cancelled, 124 when `timeout` runs out.
int wait(const Context& ctx, const std::vector<std::string>& keys,
         const std::vector<SelectionParam>& selection, std::optional<Millis> timeout);

// Left-aligned columns two spaces apart, one line per row.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

// CSV of the contract: a header row, then one row per job object; RFC 4180 (a field holding a
// comma, a double quote, CR or LF is quoted, quotes doubled; rows end in CRLF). Null is an
// empty field; labels are the operator's (personad's own left out), joined by ';'.
std::string csv_field(std::string_view value);
std::string csv_header();
std::string csv_row(const boost::json::object& job);

}  // namespace personad::ctl
