// personactl: parse the command line, load the config, run one command (see ctl.hpp).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "personad/completion.hpp"

#include "personad/config.hpp"
#include "personad/ctl.hpp"
#include "personad/ctl_insight.hpp"

namespace {

// The selection's flags ("Selecting jobs" in the contract), the same on every command that
// selects jobs; their values go, under the query string's names, to the one parser
// (parse_selection), in personactl and in the daemon alike.
struct SelectionFlags {
  std::vector<std::string> states, labels, sources, remote_statuses;
  std::string key, since, until, after, limit;
  bool needs_operator = false, stuck = false;
  std::vector<std::pair<CLI::Option*, const char*>> given;

  std::vector<personad::SelectionParam> params() const {
    std::vector<personad::SelectionParam> out;
    for (const auto& s : states) out.emplace_back("state", s);
    for (const auto& l : labels) out.emplace_back("label", l);
    for (const auto& s : sources) out.emplace_back("source", s);
    for (const auto& r : remote_statuses) out.emplace_back("remote_status", r);
    for (const auto& [opt, name] : given) {
      if (opt->count() == 0) continue;
      const std::string n = name;
      if (n == "key") out.emplace_back(n, key);
      if (n == "since") out.emplace_back(n, since);
      if (n == "until") out.emplace_back(n, until);
      if (n == "after") out.emplace_back(n, after);
      if (n == "limit") out.emplace_back(n, limit);
    }
    if (needs_operator) out.emplace_back("needs_operator", "1");
    if (stuck) out.emplace_back("stuck", "1");
    return out;
  }
};

void add_selection_flags(CLI::App* cmd, SelectionFlags& f) {
  cmd->add_option("--state", f.states, "only jobs in this state (repeatable, or a,b: any of)")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->type_name("S");
  cmd->add_option("--label", f.labels, "only jobs with this operator label (repeatable: any of)")
      ->allow_extra_args(false)
      ->type_name("L");
  cmd->add_option("--source", f.sources,
                  "only jobs from this batch file as recorded, or personactl (repeatable)")
      ->allow_extra_args(false)
      ->type_name("S");
  f.given.emplace_back(cmd->add_option("--key", f.key, "only keys matching this shell glob")->type_name("GLOB"), "key");
  cmd->add_option("--remote-status", f.remote_statuses,
                  "only jobs whose API process_status is this (repeatable)")
      ->allow_extra_args(false)
      ->type_name("X");
  f.given.emplace_back(
      cmd->add_option("--since", f.since, "created at or after T (RFC 3339, or 90m, 3d ago)")
          ->type_name("T"),
      "since");
  f.given.emplace_back(
      cmd->add_option("--until", f.until, "created before T (RFC 3339, or 90m, 3d ago)")
          ->type_name("T"), "until");
  cmd->add_flag("--needs-operator", f.needs_operator, "only jobs waiting for personactl resolve");
  cmd->add_flag("--stuck", f.stuck, "only non-final jobs whose status has not changed for long");
  f.given.emplace_back(cmd->add_option("--limit", f.limit, "at most N jobs")->type_name("N"), "limit");
  f.given.emplace_back(
      cmd->add_option("--after", f.after, "start after this job (order: created_at, then key)")
          ->type_name("KEY"),
      "after");
}

}  // namespace

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
  std::string key, adopt;
  bool resubmit = false;
  std::vector<std::string> files;

  auto* submit = app.add_subcommand("submit", "validate batch files and enqueue their entries");
  submit->add_option("FILE", files, "batch files")->required();
  auto* list = app.add_subcommand("list", "one row per job");
  SelectionFlags list_selection;
  add_selection_flags(list, list_selection);
  bool as_jsonl = false, as_csv = false;
  auto* list_json = list->add_flag("--json", as_json, "print a JSON array");
  auto* list_jsonl = list->add_flag("--jsonl", as_jsonl, "print one JSON job object a line");
  auto* list_csv = list->add_flag("--csv", as_csv, "print CSV (RFC 4180) with a header row");
  list_json->excludes(list_jsonl)->excludes(list_csv);
  list_jsonl->excludes(list_csv);
  bool keys_only = false;
  list->add_flag("--keys-only", keys_only, "one key a line (for shell completion)")->group("");
  auto* show = app.add_subcommand("show", "one job, all fields");
  show->add_option("KEY", key)->required();
  show->add_flag("--json", as_json, "print a JSON object");
  auto* history = app.add_subcommand("history", "a job's transitions, oldest first");
  history->add_option("KEY", key)->required();
  history->add_flag("--json", as_json, "print a JSON array");
  // cancel and retry: one KEY (or several), or filters for a bulk action (ctl::bulk).
  std::vector<std::string> keys;
  bool dry_run = false, yes = false;
  auto* retry = app.add_subcommand("retry", "resume an expired job, or resubmit a failed one (KEYs or filters)");
  retry->add_option("KEY", keys, "jobs to retry");
  retry->add_flag("--resubmit", resubmit, "confirm creating a failed job anew (costs credits)");
  SelectionFlags retry_selection;
  add_selection_flags(retry, retry_selection);
  retry->add_flag("--dry-run", dry_run, "with filters: print how many jobs match, change nothing");
  retry->add_flag("--yes", yes, "with filters: do not ask (needed when stdin is not a terminal)");
  auto* cancel = app.add_subcommand("cancel", "stop tracking jobs (queued jobs are never sent; KEYs or filters)");
  cancel->add_option("KEY", keys, "jobs to cancel");
  SelectionFlags cancel_selection;
  add_selection_flags(cancel, cancel_selection);
  cancel->add_flag("--dry-run", dry_run, "with filters: print how many jobs match, change nothing");
  cancel->add_flag("--yes", yes, "with filters: do not ask (needed when stdin is not a terminal)");
  auto* watch = app.add_subcommand("watch", "follow the selected jobs live until all are final");
  SelectionFlags watch_selection;
  add_selection_flags(watch, watch_selection);
  auto* wait = app.add_subcommand("wait", "block until the selected jobs are final (exit 0 all done, 3 not, 124 timeout)");
  wait->add_option("KEY", keys, "jobs to wait for");
  SelectionFlags wait_selection;
  add_selection_flags(wait, wait_selection);
  std::string wait_timeout;
  auto* wait_timeout_opt = wait->add_option("--timeout", wait_timeout, "give up after D (exit 124), e.g. 30m, 2d")->type_name("D");
  std::string shell;
  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  completion->add_option("SHELL", shell, "bash, zsh or fish")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
  auto* stats = app.add_subcommand("stats", "counts per state, polls made, next due poll");
  auto* report = app.add_subcommand("report", "an HTML page (or SVG timeline) of the selected jobs");
  SelectionFlags report_selection;
  add_selection_flags(report, report_selection);
  std::string report_html, report_svg;
  report->add_option("--html", report_html, "write the self-contained HTML report here")->type_name("FILE");
  report->add_option("--svg", report_svg, "write the timeline alone, as SVG, here")->type_name("FILE");
  auto* audit = app.add_subcommand("audit", "compare the API's personas with the jobs (read-only)");
  audit->add_flag("--json", as_json, "one JSON document");
  auto* archive = app.add_subcommand("archive", "move finished jobs to a JSON-lines file, keeping their keys");
  std::string archive_before, archive_to;
  archive->add_option("--before", archive_before, "jobs final before T (RFC 3339, or 30d ago)")->type_name("T")->required();
  archive->add_option("--to", archive_to, "append them here (JSON lines)")->type_name("FILE")->required();
  stats->add_flag("--json", as_json, "print a JSON object");
  auto* resolve = app.add_subcommand("resolve", "settle a job whose create could not be reconciled");
  resolve->add_option("KEY", key)->required();
  auto* adopt_opt = resolve->add_option("--adopt", adopt, "the remote persona id to adopt");
  auto* resubmit_opt = resolve->add_flag("--resubmit", resubmit, "it was not created: send again");
  adopt_opt->excludes(resubmit_opt);

  // Bad usage is exit 2 (the contract's "invalid input"), whatever CLI11's own code for it.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : ctl::kInvalid;
  }
  if (*completion) {
    std::cout << completion_script(app, *parse_shell(shell));
    return ctl::kOk;
  }

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
    ctx.stuck_after = ctx.config.stuck_after;  // [alerts] stuck_after, for --stuck offline
  }
  if (!socket_override.empty()) ctx.config.control_socket = socket_override;

  if (*submit) return ctl::submit(ctx, files);
  if (*list)
    return ctl::list(ctx, list_selection.params(),
                     keys_only  ? ctl::ListFormat::keys
                     : as_json  ? ctl::ListFormat::json
                     : as_jsonl ? ctl::ListFormat::jsonl
                     : as_csv   ? ctl::ListFormat::csv
                                : ctl::ListFormat::table);
  if (*show) return ctl::show(ctx, key, as_json);
  if (*history) return ctl::history(ctx, key, as_json);
  if (*report) return ctl::report(ctx, report_selection.params(), report_html, report_svg);
  if (*audit) return ctl::audit(ctx, as_json);
  if (*archive) return ctl::archive(ctx, archive_before, archive_to);
  if (*stats) return ctl::stats(ctx, as_json);
  if (*cancel || *retry) {
    const bool is_cancel = cancel->parsed();
    auto params = (is_cancel ? cancel_selection : retry_selection).params();
    if (!keys.empty() && !params.empty()) {
      std::cerr << "personactl: give KEYs or filters, not both\n";
      return ctl::kInvalid;
    }
    if (keys.empty()) {
      ctl::BulkOptions o{is_cancel ? BulkAction::cancel : BulkAction::retry, std::move(params),
                         resubmit, dry_run, yes};
      return ctl::bulk(ctx, o, std::cin, ::isatty(STDIN_FILENO) == 1);
    }
    if (dry_run || yes) {
      std::cerr << "personactl: --dry-run and --yes go with filters, not KEYs\n";
      return ctl::kInvalid;
    }
    int code = ctl::kOk;
    for (const auto& k : keys) {
      const int r = is_cancel ? ctl::cancel(ctx, k) : ctl::retry(ctx, k, resubmit);
      if (r != ctl::kOk && code == ctl::kOk) code = r;
    }
    return code;
  }
  if (*watch) return ctl::watch(ctx, watch_selection.params(), ::isatty(STDOUT_FILENO) == 1);
  if (*wait) {
    std::optional<Millis> timeout;
    if (wait_timeout_opt->count() > 0) {
      auto d = parse_duration(wait_timeout);
      if (!d) {
        std::cerr << "personactl: --timeout: " << d.message() << '\n';
        return ctl::kInvalid;
      }
      timeout = *d;
    }
    return ctl::wait(ctx, keys, wait_selection.params(), timeout);
  }
  if (*resolve) return ctl::resolve(ctx, key, adopt, resubmit);
  return ctl::kInvalid;
}
