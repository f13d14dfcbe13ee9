// personad: parse the command line, load the config and credentials, run the daemon.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "personad/config.hpp"
#include "personad/daemon.hpp"
#include "personad/logging.hpp"

namespace {

// One error per line, each prefixed, so every one reads on its own in a journal.
void print_lines(std::ostream& out, std::string_view prefix, const std::string& text) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out << "personad: " << prefix << line << '\n';
}

}  // namespace

int main(int argc, char** argv) {
  using namespace personad;
  CLI::App app{"personad: creates Creatify personas and tracks them until done or failed"};
  std::string config_path = "/etc/personad/personad.toml";
  bool check_config = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_config,
               "validate the configuration (and the credentials and database it names) and exit");
  app.set_version_flag("--version", std::string("personad ") + PERSONAD_VERSION);
  CLI11_PARSE(app, argc, argv);

  auto config = load_config(config_path);
  if (!config) {
    print_lines(std::cerr, "", config.message());
    return check_config ? 1 : 2;
  }
  // The same checks for --check-config and for start-up: a configuration said valid starts.
  StartupCheck check = check_startup(*config, process_env());
  if (check_config) {
    for (const auto& e : check.errors) print_lines(std::cerr, "error: ", e.message);
    for (const auto& w : check.warnings) print_lines(std::cout, "warning: ", w.message);
    if (!check.credentials_missing.empty())
      print_lines(std::cout, "warning: ", check.credentials_missing);
    if (!check.ok()) {
      std::cerr << "personad: configuration " << config_path << " is valid, but personad would "
                << "not start (see above)\n";
      return 1;
    }
    std::cout << "personad: configuration " << config_path << " is valid\n";
    if (check.credentials) std::cout << "personad: credentials from " << check.credentials->origin << '\n';
    return 0;
  }

  LogFormat format = resolve_log_format(config->log);
  EventLog log(make_logger(config->log, format), format);
  for (const auto& w : check.warnings)
    log.event(spdlog::level::warn, "startup_warning", {{"what", w.what}, {"reason", w.message}});
  if (!check.credentials_missing.empty())
    check.errors.insert(check.errors.begin(), {"credentials", check.credentials_missing});
  if (!check.ok()) {
    for (const auto& e : check.errors)
      log.event(spdlog::level::critical, "startup_failed", {{"what", e.what}, {"reason", e.message}});
    return 1;
  }
  return run_daemon(std::move(*config), std::move(*check.credentials), log);
}
