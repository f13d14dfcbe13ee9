// personactl's commands: each asks the daemon over its control socket (or, for inspection,
// reads the database when the daemon is down) and prints a table or the contract's JSON.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/config.hpp"

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
};

int submit(const Context& ctx, const std::vector<std::string>& files);
int list(const Context& ctx, const std::string& state, bool as_json);
int show(const Context& ctx, const std::string& key, bool as_json);
int history(const Context& ctx, const std::string& key, bool as_json);
int stats(const Context& ctx, bool as_json);
int cancel(const Context& ctx, const std::string& key);
int retry(const Context& ctx, const std::string& key, bool resubmit);
int resolve(const Context& ctx, const std::string& key, const std::string& adopt, bool resubmit);

// Left-aligned columns two spaces apart, one line per row.
std::string render_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace personad::ctl
