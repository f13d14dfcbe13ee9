// Loads and validates personad.toml into a plain Config, and resolves API credentials.
// Every error names the file, the key and the line, so an operator can fix it at once.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"
#include "personad/result.hpp"

namespace personad {

struct ApiConfig {
  std::string base_url = "https://api.creatify.ai";
  std::string credentials_file;  // optional; empty when not set
  Millis timeout{30'000};
  double max_requests_per_second = 5.0;
  int max_in_flight = 4;
  StatusPolicy status;  // done_statuses, failed_statuses, require_active
  std::string list_path = "/api/personas_v2/";
  // Additions to the contract (documented in the README):
  Millis retry_initial{1'000};   // first retry after a transient error
  Millis retry_max{300'000};     // cap of the retry backoff
  // How long after a create's failure the API gets to store and list it before a listing
  // without it proves it absent (then it is resent).
  Millis reconcile_after{60'000};
  // How long a create of unknown outcome may go without a usable list before its job is
  // flagged for the operator (personactl resolve).
  Millis reconcile_give_up{3'600'000};
  // Extra CA certificates (PEM) trusted for https, besides the system's; empty: none. https
  // peers are always verified.
  std::string ca_file;
  // An http:// base_url to a host that is not loopback is refused unless this is set.
  bool allow_insecure = false;
  // Capacity preflight (capacity.hpp): GET /api/personas_v2/count/ before creates; while the
  // workspace is full, queued jobs wait, checked again every capacity_recheck.
  bool check_capacity = true;
  Millis capacity_recheck{600'000};
};

// The poll schedule (backoff.hpp). Three phases by the job's age since submission: early polls
// growing from initial_interval (fast failures and rejections), sparse polling capped at
// sparse_interval until expected_after, then steady polling capped at max_interval until
// give_up_after. expected_after = 0 is the plain exponential backoff of before (no sparse
// phase); a PollConfig built in code has that, the config file's default is window-aware
// (kDefaultExpectedAfter, see parse_config).
struct PollConfig {
  Millis first_after{5 * 60'000};
  Millis initial_interval{5 * 60'000};
  double multiplier = 2.0;
  Millis max_interval{60 * 60'000};
  double jitter = 0.2;
  Millis give_up_after{7LL * 24 * 3600'000};
  // Additions (issue 10):
  Millis expected_after{0};            // age before which no completion is expected
  Millis sparse_interval{18 * 3600'000};  // interval cap before expected_after
  // Interval cap for a job whose API calls a webhook (the listener's poll on a callback is what
  // detects completion then); takes effect only with a webhook (relaxed_for_webhook).
  Millis max_interval_with_webhook{6 * 3600'000};
};

// poll.expected_after when the config file sets none of first_after, initial_interval,
// multiplier and max_interval: the start of the documented 1–5 day window (no avatar is expected
// done before a day). A file that sets any of those (an operator's own schedule) and not
// expected_after keeps the plain backoff: expected_after 0.
inline constexpr Millis kDefaultExpectedAfter{24LL * 3600'000};

// [webhook]: the listener for the API's callbacks (webhook_listener.hpp). Off unless listen is
// set; then public_url is required, and a secret (webhook.secret_file, or webhook_secret in
// $CREDENTIALS_DIRECTORY: load_webhook_secret).
struct WebhookConfig {
  std::string listen;       // "127.0.0.1:8421"; empty: off
  std::string public_url;   // "https://hooks.example.com/personad" (no trailing slash kept)
  std::string secret_file;  // optional; empty when not set
  bool enabled() const { return !listen.empty(); }
};

struct LogConfig {
  std::string level = "info";   // trace|debug|info|warn|error
  std::string format = "text";  // text|json|journal
};

struct Config {
  std::string source_path;  // the file this came from; relative paths were resolved against it
  ApiConfig api;
  std::string store_path = "/var/lib/personad/personad.db";
  // [store] url: a PostgreSQL store (libpq URI, "postgresql://…") instead of the SQLite file at
  // store_path; empty: SQLite. With it several hosts share the database, one active at a time.
  std::string store_url;
  Millis takeover_after{15'000};  // [store] takeover_after: a standby takes over after this
  std::string batches_directory = "/etc/personad/batches.d";
  // [batches] media_root: the directory trees local videos may come from (absolute, normal).
  // Empty: batch files may name videos in their own directory tree only, and specs over the
  // control socket no local video at all (see batch.hpp).
  std::vector<std::string> media_roots;
  PollConfig poll;
  std::string control_socket = "/run/personad/control.sock";
  LogConfig log;
  WebhookConfig webhook;
  Millis shutdown_grace{10'000};  // [daemon] shutdown_grace
  std::string hook_on_transition;  // [hooks] on_transition; empty when not set
  Millis hook_timeout{10'000};     // [hooks] timeout
  // Issue 9:
  std::string metrics_listen;      // [metrics] listen, "127.0.0.1:9464"; empty: off
  Millis stuck_after{3LL * 24 * 3600'000};  // [alerts] stuck_after (selection.hpp's default)
};

// Parses "300ms", "30s", "5m", "1h", "7d" (integer plus unit). A count whose milliseconds do
// not fit 64 bits is an error, never a wrapped value. Each key has its own range on top.
Result<Millis> parse_duration(std::string_view text);
std::string format_duration(Millis d);

// Parses TOML text; `source` names the file in error messages and anchors relative paths.
// load_config refuses a file over 1 MiB before reading it.
Result<Config> parse_config(std::string_view text, const std::string& source);
Result<Config> load_config(const std::string& path);

struct Credentials {
  std::string api_id;
  std::string api_key;
  std::string origin;  // where they came from (for logs): "environment", "$CREDENTIALS_DIRECTORY", file path
};

// Reads an environment variable; injected so tests need not touch the process environment.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup process_env();

// Precedence: env CREATIFY_API_ID + CREATIFY_API_KEY; files creatify_api_id and creatify_api_key
// in $CREDENTIALS_DIRECTORY; api.credentials_file (TOML: api_id = "…", api_key = "…").
// Errors never contain the secret values.
Result<Credentials> load_credentials(const Config& config, const EnvLookup& env);

// The webhook secret: the file webhook_secret in $CREDENTIALS_DIRECTORY (systemd
// LoadCredential=), else webhook.secret_file (not readable by other users). At least 16
// characters, trailing white space dropped. Errors name the file, never the secret.
Result<std::string> load_webhook_secret(const Config& config, const EnvLookup& env);

// What start-up needs beyond a valid config, checked by `personad --check-config` and at
// start-up alike (one function, so a configuration said valid starts):
// credentials that load (a file that does not parse, or that other users may read, is an
// error), a database that can be written (an immutable file, a read-only directory or file
// system is an error, not READY and then a failure at every commit). `errors` and `warnings`
// are whole sentences naming the file or key.
struct StartupProblem {
  std::string what;     // "credentials", "store", "batches.media_root"
  std::string message;
};
struct StartupCheck {
  std::optional<Credentials> credentials;
  // No credentials anywhere (why, for the operator). An error at start-up; a warning for
  // --check-config, which usually runs outside systemd, where LoadCredential= provides them.
  std::string credentials_missing;
  std::vector<StartupProblem> errors;
  std::vector<StartupProblem> warnings;
  bool ok() const { return errors.empty(); }
};
StartupCheck check_startup(const Config& config, const EnvLookup& env);
// The PostgreSQL password for [store] url: the file pg_password in $CREDENTIALS_DIRECTORY
// (systemd LoadCredential=), trailing white space dropped; empty when there is none (libpq then
// looks at PGPASSWORD and ~/.pgpass). Errors name the file, never the password.
Result<std::string> load_pg_password(const EnvLookup& env);

// The database part of check_startup, also run by the daemon right before it opens the store.
// Never opens the database (so it is safe while this process holds it open).
Result<void> check_store_writable(const std::string& store_path);

}  // namespace personad
