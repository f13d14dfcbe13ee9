// personactl: parse the command line, load the config, run one command (see ctl.hpp).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "personad/config.hpp"
#include "personad/ctl.hpp"

int main(int argc, char** argv) {
  using namespace personad;
  CLI::App app{"personactl: inspect and steer personad"};
  app.require_subcommand(1);
  std::string config_path = "/etc/personad/personad.toml";
  std::string socket_override;
  app.add_option("-c,--config", config_path, "personad's configuration file")->capture_default_str();
  app.add_option("--socket", socket_override, "control socket (overrides the config)");
  app.set_version_flag("--version", std::string("personactl ") + PERSONAD_VERSION);

  bool as_json = false;
  std::string state, key, adopt;
  bool resubmit = false;
  std::vector<std::string> files;

  auto* submit = app.add_subcommand("submit", "validate batch files and enqueue their entries");
  submit->add_option("FILE", files, "batch files")->required();
  auto* list = app.add_subcommand("list", "one row per job");
  list->add_option("--state", state, "only jobs in this state");
  list->add_flag("--json", as_json, "print a JSON array");
  auto* show = app.add_subcommand("show", "one job, all fields");
  show->add_option("KEY", key)->required();
  show->add_flag("--json", as_json, "print a JSON object");
  auto* history = app.add_subcommand("history", "a job's transitions, oldest first");
  history->add_option("KEY", key)->required();
  history->add_flag("--json", as_json, "print a JSON array");
  auto* retry = app.add_subcommand("retry", "resume an expired job, or resubmit a failed one");
  retry->add_option("KEY", key)->required();
  retry->add_flag("--resubmit", resubmit, "confirm creating a failed job anew (costs credits)");
  auto* cancel = app.add_subcommand("cancel", "stop tracking a job (queued jobs are never sent)");
  cancel->add_option("KEY", key)->required();
  auto* stats = app.add_subcommand("stats", "counts per state, polls made, next due poll");
  stats->add_flag("--json", as_json, "print a JSON object");
  auto* resolve = app.add_subcommand("resolve", "settle a job whose create could not be reconciled");
  resolve->add_option("KEY", key)->required();
  auto* adopt_opt = resolve->add_option("--adopt", adopt, "the remote persona id to adopt");
  auto* resubmit_opt = resolve->add_flag("--resubmit", resubmit, "it was not created: send again");
  adopt_opt->excludes(resubmit_opt);

  CLI11_PARSE(app, argc, argv);

  ctl::Context ctx{Config{}, Millis(30'000), std::cout, std::cerr};
  std::error_code ec;
  // Without --config, a missing default file means the documented defaults.
  if (app.get_option("--config")->count() > 0 || std::filesystem::exists(config_path, ec)) {
    auto cfg = load_config(config_path);
    if (!cfg) {
      std::cerr << "personactl: " << cfg.message() << '\n';
      return ctl::kInvalid;
    }
    ctx.config = std::move(*cfg);
  }
  if (!socket_override.empty()) ctx.config.control_socket = socket_override;

  if (*submit) return ctl::submit(ctx, files);
  if (*list) return ctl::list(ctx, state, as_json);
  if (*show) return ctl::show(ctx, key, as_json);
  if (*history) return ctl::history(ctx, key, as_json);
  if (*stats) return ctl::stats(ctx, as_json);
  if (*cancel) return ctl::cancel(ctx, key);
  if (*retry) return ctl::retry(ctx, key, resubmit);
  if (*resolve) return ctl::resolve(ctx, key, adopt, resubmit);
  return ctl::kInvalid;
}
