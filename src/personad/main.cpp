// personad: parse the command line, load the config and credentials, run the daemon.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "personad/config.hpp"
#include "personad/daemon.hpp"
#include "personad/logging.hpp"

int main(int argc, char** argv) {
  using namespace personad;
  CLI::App app{"personad: creates Creatify personas and tracks them until done or failed"};
  std::string config_path = "/etc/personad/personad.toml";
  bool check_config = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
  app.set_version_flag("--version", std::string("personad ") + PERSONAD_VERSION);
  CLI11_PARSE(app, argc, argv);

  auto config = load_config(config_path);
  if (!config) {
    // One error per line, each prefixed, so every one reads on its own in a journal.
    std::istringstream lines(config.message());
    for (std::string line; std::getline(lines, line);) std::cerr << "personad: " << line << '\n';
    return check_config ? 1 : 2;
  }
  auto credentials = load_credentials(*config, process_env());
  if (check_config) {
    std::cout << "personad: configuration " << config_path << " is valid\n";
    if (!credentials)
      std::cout << "personad: warning: " << credentials.message() << '\n';
    else
      std::cout << "personad: credentials from " << credentials->origin << '\n';
    return 0;
  }

  LogFormat format = resolve_log_format(config->log);
  EventLog log(make_logger(config->log, format), format);
  if (!credentials) {
    log.event(spdlog::level::critical, "startup_failed",
              {{"what", "credentials"}, {"reason", credentials.message()}});
    return 1;
  }
  return run_daemon(std::move(*config), std::move(*credentials), log);
}
