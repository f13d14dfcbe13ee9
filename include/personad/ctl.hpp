// personactl's commands: each asks the daemon over its control socket (or, for inspection,
// reads the database when the daemon is down) and prints a table or the contract's JSON.
#pragma once

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

struct Context {
  Config config;  // control.socket and store.path are what matter
  Millis timeout{30'000};
  std::ostream& out;
  std::ostream& err;
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
