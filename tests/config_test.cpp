// Tests of the config module: personad.toml parsing and validation, durations, and the
// precedence and secrecy of API credentials.
#include "personad/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "temp_dir.hpp"
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

namespace personad {
namespace {

using personad::testing::TempDir;

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh directory per test, removed afterwards.
std::string error_of(std::string_view toml) {
  auto r = parse_config(toml, "personad.toml");
  return r.ok() ? std::string("<no error>") : r.message();
}

// ---------------------------------------------------------------------------------------------
// Durations

TEST(Duration, ParsesEveryUnit) {
  EXPECT_EQ(parse_duration("300ms").value(), Millis{300});
  EXPECT_EQ(parse_duration("30s").value(), Millis{30'000});
  EXPECT_EQ(parse_duration("5m").value(), Millis{300'000});
  EXPECT_EQ(parse_duration("1h").value(), Millis{3'600'000});
  EXPECT_EQ(parse_duration("7d").value(), Millis{7LL * 86'400'000});
  EXPECT_EQ(parse_duration("0s").value(), Millis{0});
}

TEST(Duration, RejectsMalformedText) {
  for (const char* bad :
       {"", "5", "5x", "-5s", "1.5h", " 5s", "5s ", "5 s", "s", "5S", "+5s", "5sec", "0x5s"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r.ok()) << "accepted '" << bad << "'";
    EXPECT_THAT(r.message(), HasSubstr("ms, s, m, h or d")) << bad;
  }
}

TEST(Duration, RejectsOverflow) {
  auto r = parse_duration("99999999999999999d");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("too large"));
  EXPECT_FALSE(parse_duration("99999999999999999999999ms").ok());
}

TEST(Duration, FormatsWithTheLargestExactUnit) {
  EXPECT_EQ(format_duration(Millis{90'000}), "90s");
  EXPECT_EQ(format_duration(Millis{3'600'000}), "1h");
  EXPECT_EQ(format_duration(Millis{7LL * 86'400'000}), "7d");
  EXPECT_EQ(format_duration(Millis{1'500}), "1500ms");
  EXPECT_EQ(format_duration(Millis{300'000}), "5m");
  EXPECT_EQ(format_duration(Millis{0}), "0s");
}

TEST(Duration, FormatRoundTrips) {
  for (std::int64_t ms : {1LL, 999LL, 1'000LL, 61'000LL, 3'660'000LL, 90'000'000LL}) {
    const auto text = format_duration(Millis{ms});
    EXPECT_EQ(parse_duration(text).value(), Millis{ms}) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(Config, EmptyFileGivesDefaults) {
  auto r = parse_config("", "/etc/personad/personad.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  const Config& c = *r;
  EXPECT_EQ(c.source_path, "/etc/personad/personad.toml");
  EXPECT_EQ(c.api.base_url, "https://api.creatify.ai");
  EXPECT_EQ(c.api.credentials_file, "");
  EXPECT_EQ(c.api.timeout, Millis{30'000});
  EXPECT_DOUBLE_EQ(c.api.max_requests_per_second, 5.0);
  EXPECT_EQ(c.api.max_in_flight, 4);
  EXPECT_EQ(c.api.status.done_statuses, std::vector<std::string>{"done"});
  EXPECT_EQ(c.api.status.failed_statuses, (std::vector<std::string>{"failed", "rejected"}));
  EXPECT_TRUE(c.api.status.require_active);
  EXPECT_EQ(c.api.list_path, "/api/personas_v2/");
  EXPECT_EQ(c.api.retry_initial, Millis{1'000});
  EXPECT_EQ(c.api.retry_max, Millis{300'000});
  EXPECT_EQ(c.api.reconcile_after, Millis{60'000});
  EXPECT_EQ(c.api.reconcile_give_up, Millis{3'600'000});
  EXPECT_EQ(c.store_path, "/var/lib/personad/personad.db");
  EXPECT_EQ(c.batches_directory, "/etc/personad/batches.d");
  EXPECT_EQ(c.poll.first_after, Millis{300'000});
  EXPECT_EQ(c.poll.initial_interval, Millis{300'000});
  EXPECT_DOUBLE_EQ(c.poll.multiplier, 2.0);
  EXPECT_EQ(c.poll.max_interval, Millis{3'600'000});
  EXPECT_DOUBLE_EQ(c.poll.jitter, 0.2);
  EXPECT_EQ(c.poll.give_up_after, Millis{7LL * 86'400'000});
  EXPECT_EQ(c.control_socket, "/run/personad/control.sock");
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "text");
  EXPECT_EQ(c.shutdown_grace, Millis{10'000});
  EXPECT_EQ(c.hook_on_transition, "");
  EXPECT_EQ(c.hook_timeout, Millis{10'000});
}

TEST(Config, ParsesEveryKey) {
  constexpr std::string_view kToml = R"(
[api]
base_url = "http://127.0.0.1:8080"
credentials_file = "/srv/creds.toml"
timeout = "5s"
max_requests_per_second = 2.5
max_in_flight = 16
done_statuses = ["done", "finished"]
failed_statuses = ["failed"]
list_path = "/api/personas/"
require_active = false
retry_initial = "500ms"
retry_max = "2m"
reconcile_after = "1m"

[store]
path = "/srv/p.db"

[batches]
directory = "/srv/batches"

[poll]
first_after = "0s"
initial_interval = "1m"
multiplier = 1.5
max_interval = "2h"
jitter = 0.0
give_up_after = "3d"

[control]
socket = "/srv/ctl.sock"

[log]
level = "debug"
format = "json"

[daemon]
shutdown_grace = "3s"

[hooks]
on_transition = "/usr/local/bin/notify"
timeout = "20s"
)";
  auto r = parse_config(kToml, "/etc/personad/personad.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  const Config& c = *r;
  EXPECT_EQ(c.api.base_url, "http://127.0.0.1:8080");
  EXPECT_EQ(c.api.credentials_file, "/srv/creds.toml");
  EXPECT_EQ(c.api.timeout, Millis{5'000});
  EXPECT_DOUBLE_EQ(c.api.max_requests_per_second, 2.5);
  EXPECT_EQ(c.api.max_in_flight, 16);
  EXPECT_EQ(c.api.status.done_statuses, (std::vector<std::string>{"done", "finished"}));
  EXPECT_EQ(c.api.status.failed_statuses, std::vector<std::string>{"failed"});
  EXPECT_EQ(c.api.list_path, "/api/personas/");
  EXPECT_FALSE(c.api.status.require_active);
  EXPECT_EQ(c.api.retry_initial, Millis{500});
  EXPECT_EQ(c.api.retry_max, Millis{120'000});
  EXPECT_EQ(c.api.reconcile_after, Millis{60'000});
  EXPECT_EQ(c.store_path, "/srv/p.db");
  EXPECT_EQ(c.batches_directory, "/srv/batches");
  EXPECT_EQ(c.poll.first_after, Millis{0});
  EXPECT_EQ(c.poll.initial_interval, Millis{60'000});
  EXPECT_DOUBLE_EQ(c.poll.multiplier, 1.5);
  EXPECT_EQ(c.poll.max_interval, Millis{7'200'000});
  EXPECT_DOUBLE_EQ(c.poll.jitter, 0.0);
  EXPECT_EQ(c.poll.give_up_after, Millis{3LL * 86'400'000});
  EXPECT_EQ(c.control_socket, "/srv/ctl.sock");
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(c.shutdown_grace, Millis{3'000});
  EXPECT_EQ(c.hook_on_transition, "/usr/local/bin/notify");
  EXPECT_EQ(c.hook_timeout, Millis{20'000});
}

TEST(Config, IntegersAreAcceptedForFloatKeys) {
  auto r = parse_config("[api]\nmax_requests_per_second = 3\n[poll]\nmultiplier = 1\n", "p.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_DOUBLE_EQ(r->api.max_requests_per_second, 3.0);
  EXPECT_DOUBLE_EQ(r->poll.multiplier, 1.0);
}

TEST(Config, TrailingSlashOfBaseUrlIsDropped) {
  auto r = parse_config("[api]\nbase_url = \"https://api.creatify.ai/\"\n", "p.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api.base_url, "https://api.creatify.ai");
}

TEST(Config, DottedKeysAtTopLevelWork) {
  auto r = parse_config("api.timeout = \"7s\"\n", "p.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api.timeout, Millis{7'000});
}

// ---------------------------------------------------------------------------------------------
// Errors name file, line and key

TEST(Config, UnknownKeyNamesKeyAndLine) {
  EXPECT_EQ(error_of("[api]\ntimeout = \"5s\"\n\ntiemout = \"5s\"\n"),
            "personad.toml:4: unknown key 'api.tiemout'");
}

TEST(Config, UnknownSectionNamesSectionAndLine) {
  EXPECT_EQ(error_of("\n[apii]\ntimeout = \"5s\"\n"), "personad.toml:2: unknown section '[apii]'");
}

TEST(Config, UnknownTopLevelKeyIsNamed) {
  EXPECT_EQ(error_of("verbose = true\n"), "personad.toml:1: unknown key 'verbose'");
}

TEST(Config, NestedTableInsideSectionIsUnknown) {
  EXPECT_EQ(error_of("[api]\n[api.extra]\nx = 1\n"), "personad.toml:2: unknown key 'api.extra'");
}

TEST(Config, SectionThatIsNotATable) {
  EXPECT_EQ(error_of("log = \"debug\"\n"),
            "personad.toml:1: log: expected a table [log], got string");
}

TEST(Config, WrongTypeNamesExpectedAndActual) {
  EXPECT_EQ(error_of("[api]\n\n\n\n\n\ntimeout = 30\n"),
            "personad.toml:7: api.timeout: expected a duration string like \"30s\", got integer");
  EXPECT_EQ(error_of("[api]\nmax_in_flight = \"4\"\n"),
            "personad.toml:2: api.max_in_flight: expected an integer, got string");
  EXPECT_EQ(error_of("[api]\nmax_in_flight = 4.0\n"),
            "personad.toml:2: api.max_in_flight: expected an integer, got float");
  EXPECT_EQ(error_of("[api]\nrequire_active = \"yes\"\n"),
            "personad.toml:2: api.require_active: expected true or false, got string");
  EXPECT_EQ(error_of("[api]\ndone_statuses = \"done\"\n"),
            "personad.toml:2: api.done_statuses: expected an array of strings, got string");
  EXPECT_EQ(error_of("[api]\ndone_statuses = [\"done\", 3]\n"),
            "personad.toml:2: api.done_statuses: element 2: expected a string, got integer");
  EXPECT_EQ(error_of("[poll]\nmultiplier = \"2\"\n"),
            "personad.toml:2: poll.multiplier: expected a number, got string");
  EXPECT_EQ(error_of("[store]\npath = 1\n"),
            "personad.toml:2: store.path: expected a path string, got integer");
}

struct BadValue {
  std::string toml;
  std::string expected;  // the whole message
};

class ConfigBadValue : public ::testing::TestWithParam<BadValue> {};

TEST_P(ConfigBadValue, IsReportedWithLineAndKey) {
  EXPECT_EQ(error_of(GetParam().toml), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Config, ConfigBadValue,
    ::testing::Values(
        BadValue{"[api]\ntimeout = \"5x\"\n",
                 "personad.toml:2: api.timeout: invalid duration \"5x\" (expected an integer and "
                 "a unit: ms, s, m, h or d, e.g. \"30s\")"},
        BadValue{"[api]\ntimeout = \"0s\"\n",
                 "personad.toml:2: api.timeout: must be greater than 0 (and at most 1h)"},
        BadValue{"[api]\nmax_requests_per_second = 0\n",
                 "personad.toml:2: api.max_requests_per_second: must be between 0.01 and 1000000, got "
                 "0"},
        BadValue{"[api]\nmax_requests_per_second = nan\n",
                 "personad.toml:2: api.max_requests_per_second: must be between 0.01 and 1000000, got "
                 "nan"},
        BadValue{"[api]\nmax_in_flight = 0\n",
                 "personad.toml:2: api.max_in_flight: must be between 1 and 256, got 0"},
        BadValue{"[api]\nmax_in_flight = 257\n",
                 "personad.toml:2: api.max_in_flight: must be between 1 and 256, got 257"},
        BadValue{"[api]\nbase_url = \"ftp://x.example\"\n",
                 "personad.toml:2: api.base_url: must be an http:// or https:// URL, got "
                 "\"ftp://x.example\""},
        BadValue{"[api]\nbase_url = \"api.creatify.ai\"\n",
                 "personad.toml:2: api.base_url: is not a valid URL: \"api.creatify.ai\""},
        BadValue{"[api]\nbase_url = \"https://a.example/?x=1\"\n",
                 "personad.toml:2: api.base_url: must not have a query or fragment: "
                 "\"https://a.example/?x=1\""},
        BadValue{"[api]\nlist_path = \"api/personas_v2/\"\n",
                 "personad.toml:2: api.list_path: must start with '/', got \"api/personas_v2/\""},
        BadValue{"[api]\ndone_statuses = []\n",
                 "personad.toml:2: api.done_statuses: must list at least one status"},
        BadValue{"[api]\nfailed_statuses = [\"failed\", \"\"]\n",
                 "personad.toml:2: api.failed_statuses: element 2: must not be empty"},
        BadValue{"[api]\ndone_statuses = [\"done\"]\nfailed_statuses = [\"done\"]\n",
                 "personad.toml:3: api.failed_statuses: \"done\" is also listed in "
                 "api.done_statuses"},
        BadValue{"[api]\nretry_initial = \"10m\"\n",
                 "personad.toml:2: api.retry_max: must be at least api.retry_initial (10m), got "
                 "5m"},
        BadValue{"[poll]\nmultiplier = 0.5\n",
                 "personad.toml:2: poll.multiplier: must be between 1 and 10, got 0.5"},
        BadValue{"[poll]\njitter = 1.0\n",
                 "personad.toml:2: poll.jitter: must be in [0, 1), got 1"},
        BadValue{"[poll]\njitter = -0.1\n",
                 "personad.toml:2: poll.jitter: must be in [0, 1), got -0.1"},
        BadValue{"[poll]\ngive_up_after = \"0d\"\n",
                 "personad.toml:2: poll.give_up_after: must be greater than 0 (and at most 365d)"},
        BadValue{"[poll]\ninitial_interval = \"0s\"\n",
                 "personad.toml:2: poll.initial_interval: must be greater than 0 (and at most 30d)"},
        BadValue{"[poll]\ninitial_interval = \"10m\"\nmax_interval = \"5m\"\n",
                 "personad.toml:3: poll.max_interval: must be at least poll.initial_interval "
                 "(10m), got 5m"},
        BadValue{"[log]\nlevel = \"verbose\"\n",
                 "personad.toml:2: log.level: must be one of trace|debug|info|warn|error, got "
                 "\"verbose\""},
        BadValue{"[log]\nformat = \"xml\"\n",
                 "personad.toml:2: log.format: must be one of text|json|journal, got \"xml\""},
        BadValue{"[store]\npath = \"\"\n", "personad.toml:2: store.path: must not be empty"},
        BadValue{"[store]\nurl = \"mysql://db/personad\"\n",
                 "personad.toml:2: store.url: must start with \"postgresql://\" or "
                 "\"postgres://\" (a libpq connection URI)"},
        BadValue{"[store]\nurl = \"postgresql://personad:s3cret@db/personad\"\n",
                 "personad.toml:2: store.url: must not contain a password: use PGPASSWORD, "
                 "~/.pgpass or the pg_password credential (LoadCredential=pg_password:…)"},
        BadValue{"[store]\npath = \"/var/lib/p.db\"\nurl = \"postgresql://db/p\"\n",
                 "personad.toml:3: store.url: give either store.path (SQLite) or store.url "
                 "(PostgreSQL), not both"},
        BadValue{"[store]\ntakeover_after = \"500ms\"\n",
                 "personad.toml:2: store.takeover_after: must be between 1s and 1h, got "
                 "\"500ms\""},
        BadValue{"[hooks]\ntimeout = \"-1s\"\n",
                 "personad.toml:2: hooks.timeout: invalid duration \"-1s\" (expected an integer "
                 "and a unit: ms, s, m, h or d, e.g. \"30s\")"}));

TEST(Config, StoreUrlSelectsPostgresWithItsTakeoverTime) {
  auto plain = parse_config("", "p.toml");
  ASSERT_TRUE(plain.ok()) << plain.message();
  EXPECT_EQ(plain->store_url, "");
  EXPECT_EQ(plain->takeover_after, Millis{15'000});
  auto pg = parse_config(
      "[store]\nurl = \"postgresql://personad@db1.example,db2.example/personad\"\n"
      "takeover_after = \"30s\"\n",
      "p.toml");
  ASSERT_TRUE(pg.ok()) << pg.message();
  EXPECT_EQ(pg->store_url, "postgresql://personad@db1.example,db2.example/personad");
  EXPECT_EQ(pg->takeover_after, Millis{30'000});
  EXPECT_TRUE(parse_config("[store]\nurl = \"postgresql://\"\n", "p.toml").ok());
}

TEST(Config, PgPasswordComesFromTheCredentialsDirectory) {
  const fs::path dir = fs::temp_directory_path() / ("pgpw-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto env_with = [&](bool set) -> EnvLookup {
    return [&, set](std::string_view name) -> std::optional<std::string> {
      if (set && name == "CREDENTIALS_DIRECTORY") return dir.string();
      return std::nullopt;
    };
  };
  EXPECT_EQ(load_pg_password(env_with(false)).value(), "");
  EXPECT_EQ(load_pg_password(env_with(true)).value(), "");  // no pg_password file there
  { std::ofstream(dir / "pg_password") << "correct horse\n"; }
  EXPECT_EQ(load_pg_password(env_with(true)).value(), "correct horse");
  fs::remove_all(dir);
}

TEST(Config, FirstAfterMayBeZeroButOtherIntervalsMayNot) {
  EXPECT_TRUE(parse_config("[poll]\nfirst_after = \"0s\"\n", "p.toml").ok());
  EXPECT_TRUE(parse_config("[daemon]\nshutdown_grace = \"0s\"\n", "p.toml").ok());
  EXPECT_FALSE(parse_config("[poll]\nmax_interval = \"0s\"\n", "p.toml").ok());
}

TEST(Config, ReportsEveryErrorInLineOrder) {
  const auto message = error_of("[poll]\njitter = 2.0\n[api]\ntimeout = 1\nbogus = 1\n");
  EXPECT_EQ(message,
            "personad.toml:2: poll.jitter: must be in [0, 1), got 2\n"
            "personad.toml:4: api.timeout: expected a duration string like \"30s\", got integer\n"
            "personad.toml:5: unknown key 'api.bogus'");
}

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  const auto message = error_of("[api]\ntimeout = \"5s\n");
  EXPECT_THAT(message, ::testing::StartsWith("personad.toml:2:"));
  EXPECT_THAT(message, ::testing::MatchesRegex("personad\\.toml:2:[0-9]+: .+"));
}

TEST(Config, DuplicateKeyIsASyntaxError) {
  EXPECT_THAT(error_of("[api]\ntimeout = \"5s\"\ntimeout = \"6s\"\n"),
              ::testing::StartsWith("personad.toml:3:"));
}

// ---------------------------------------------------------------------------------------------
// Paths

TEST(Config, RelativePathsResolveAgainstTheConfigDirectory) {
  constexpr std::string_view kToml = R"(
[api]
credentials_file = "secrets/creds.toml"
[store]
path = "../var/personad.db"
[batches]
directory = "./batches.d"
[control]
socket = "/run/personad/control.sock"
[hooks]
on_transition = "hooks/notify.sh"
)";
  auto r = parse_config(kToml, "/opt/personad/etc/personad.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api.credentials_file, "/opt/personad/etc/secrets/creds.toml");
  EXPECT_EQ(r->store_path, "/opt/personad/var/personad.db");
  EXPECT_EQ(r->batches_directory, "/opt/personad/etc/batches.d");
  EXPECT_EQ(r->control_socket, "/run/personad/control.sock");
  EXPECT_EQ(r->hook_on_transition, "/opt/personad/etc/hooks/notify.sh");
}

TEST(Config, RelativeSourcePathIsAnchoredAtTheWorkingDirectory) {
  auto r = parse_config("[store]\npath = \"p.db\"\n", "conf/personad.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->store_path, (fs::current_path() / "conf/p.db").lexically_normal().string());
  EXPECT_EQ(r->source_path, "conf/personad.toml");
}

TEST(Config, LoadConfigReadsTheFile) {
  TempDir dir;
  const auto path = dir.write("personad.toml", "[log]\nlevel = \"warn\"\n[store]\npath = \"db\"\n");
  auto r = load_config(path.string());
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->log.level, "warn");
  EXPECT_EQ(r->store_path, (dir.path() / "db").string());
  EXPECT_EQ(r->source_path, path.string());
}

TEST(Config, LoadConfigErrorsNameTheFile) {
  TempDir dir;
  const auto missing = (dir.path() / "nope.toml").string();
  auto r = load_config(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("cannot read config file '" + missing + "'"));

  const auto bad = dir.write("bad.toml", "[api]\ntimeout = 1\n");
  auto r2 = load_config(bad.string());
  ASSERT_FALSE(r2.ok());
  EXPECT_THAT(r2.message(), ::testing::StartsWith(bad.string() + ":2: api.timeout:"));

  auto r3 = load_config(dir.path().string());
  ASSERT_FALSE(r3.ok());
  EXPECT_THAT(r3.message(), HasSubstr("not a regular file"));
}

// ---------------------------------------------------------------------------------------------
// Ranges and sizes (issue 11, defects 4 and 6)

// Values that passed validation and then expired every job at once, spun a 1 kHz timer or
// disabled the rate limit.
TEST(Config, EveryDurationAndRateHasARange) {
  struct Case {
    std::string toml;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"[poll]\ngive_up_after = \"106751991000d\"\n",
            "personad.toml:2: poll.give_up_after: must be between 1ms and 365d, got "
            "\"106751991000d\""},
           {"[api]\ntimeout = \"200000d\"\n",
            "personad.toml:2: api.timeout: must be between 1ms and 1h, got \"200000d\""},
           {"[poll]\nmax_interval = \"200000d\"\n",
            "personad.toml:2: poll.max_interval: must be between 1ms and 30d, got \"200000d\""},
           {"[hooks]\ntimeout = \"200000d\"\n",
            "personad.toml:2: hooks.timeout: must be between 1ms and 1h, got \"200000d\""},
           {"[api]\nmax_requests_per_second = 1e-12\n",
            "personad.toml:2: api.max_requests_per_second: must be between 0.01 and 1000000, got "
            "1e-12"},
           {"[api]\nmax_requests_per_second = 1e9\n",
            "personad.toml:2: api.max_requests_per_second: must be between 0.01 and 1000000, got "
            "1e+09"},
           {"[api]\nretry_max = \"2d\"\n",
            "personad.toml:2: api.retry_max: must be between 1ms and 1d, got \"2d\""},
           {"[api]\nretry_initial = \"2h\"\n",
            "personad.toml:2: api.retry_initial: must be between 1ms and 1h, got \"2h\""},
           {"[api]\nreconcile_after = \"25h\"\n",
            "personad.toml:2: api.reconcile_after: must be between 1ms and 1d, got \"25h\""},
           {"[api]\nreconcile_give_up = \"31d\"\n",
            "personad.toml:2: api.reconcile_give_up: must be between 1ms and 30d, got \"31d\""},
           {"[poll]\nfirst_after = \"31d\"\n",
            "personad.toml:2: poll.first_after: must be between 0s and 30d, got \"31d\""},
           {"[poll]\ninitial_interval = \"31d\"\n",
            "personad.toml:2: poll.initial_interval: must be between 1ms and 30d, got \"31d\""},
           {"[poll]\nmultiplier = 1e300\n",
            "personad.toml:2: poll.multiplier: must be between 1 and 10, got 1e+300"},
           {"[daemon]\nshutdown_grace = \"2h\"\n",
            "personad.toml:2: daemon.shutdown_grace: must be between 0s and 1h, got \"2h\""},
       })
    EXPECT_EQ(error_of(c.toml), c.error) << c.toml;

  // The ends of each range are accepted.
  auto r = parse_config(
      "[api]\ntimeout = \"1h\"\nmax_requests_per_second = 0.01\nretry_initial = \"1h\"\n"
      "retry_max = \"1d\"\nreconcile_after = \"1d\"\nreconcile_give_up = \"30d\"\n"
      "[poll]\ngive_up_after = \"365d\"\nmax_interval = \"30d\"\nfirst_after = \"30d\"\n"
      "initial_interval = \"30d\"\nmultiplier = 10\n"
      "[hooks]\ntimeout = \"1h\"\n[daemon]\nshutdown_grace = \"1h\"\n",
      "p.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->poll.give_up_after, Millis{365LL * 86'400'000});
  EXPECT_TRUE(parse_config("[api]\nmax_requests_per_second = 1000000\n", "p.toml").ok());
}

// A 20-digit count is an error, not a wrapped value.
TEST(Duration, TwentyDigitsAreAnErrorNotAWrap) {
  for (const char* text : {"18446744073709551617ms", "99999999999999999999s", "9223372036854776d",
                           "106751991167301d"}) {
    auto r = parse_duration(text);
    ASSERT_FALSE(r.ok()) << text << " gave " << (r ? r->count() : 0);
    EXPECT_THAT(r.message(), HasSubstr("too large")) << text;
  }
  EXPECT_THAT(error_of("[poll]\ngive_up_after = \"99999999999999999999d\"\n"),
              HasSubstr("personad.toml:2: poll.give_up_after: duration"));
}

TEST(Config, AConfigFileOver1MiBIsRefusedBeforeItIsRead) {
  TempDir dir;
  // Valid TOML all the same (one long comment): only its size is wrong.
  const auto path = dir.write("personad.toml", "#" + std::string(1u << 20, 'x') + "\n");
  auto r = load_config(path.string());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("cannot read config file '" + path.string() + "'"));
  EXPECT_THAT(r.message(), HasSubstr("at most 1 MiB is allowed"));
}

TEST(Config, ExampleConfigLoads) {
  const fs::path example = fs::path(PERSONAD_SOURCE_DIR) / "config" / "personad.toml";
  auto r = load_config(example.string());
  ASSERT_TRUE(r.ok()) << r.message();
  const Config defaults;
  // The example documents the defaults, so it must agree with them.
  EXPECT_EQ(r->api.base_url, defaults.api.base_url);
  EXPECT_EQ(r->api.timeout, defaults.api.timeout);
  EXPECT_EQ(r->api.max_in_flight, defaults.api.max_in_flight);
  EXPECT_EQ(r->api.status.done_statuses, defaults.api.status.done_statuses);
  EXPECT_EQ(r->api.status.failed_statuses, defaults.api.status.failed_statuses);
  EXPECT_EQ(r->api.retry_initial, defaults.api.retry_initial);
  EXPECT_EQ(r->api.retry_max, defaults.api.retry_max);
  EXPECT_EQ(r->api.reconcile_after, defaults.api.reconcile_after);
  EXPECT_EQ(r->store_path, defaults.store_path);
  EXPECT_EQ(r->batches_directory, defaults.batches_directory);
  // Like credentials_file, set to the packaged value (no media root is the default).
  EXPECT_TRUE(defaults.media_roots.empty());
  EXPECT_EQ(r->media_roots, std::vector<std::string>{"/var/lib/personad/media"});
  EXPECT_EQ(r->api.reconcile_give_up, defaults.api.reconcile_give_up);
  EXPECT_EQ(r->poll.first_after, defaults.poll.first_after);
  EXPECT_EQ(r->poll.initial_interval, defaults.poll.initial_interval);
  EXPECT_EQ(r->poll.max_interval, defaults.poll.max_interval);
  EXPECT_EQ(r->poll.give_up_after, defaults.poll.give_up_after);
  // The window-aware additions: the config file's defaults (a PollConfig built in code has none).
  EXPECT_EQ(r->poll.expected_after, kDefaultExpectedAfter);
  EXPECT_EQ(r->poll.sparse_interval, defaults.poll.sparse_interval);
  EXPECT_EQ(r->poll.max_interval_with_webhook, defaults.poll.max_interval_with_webhook);
  EXPECT_DOUBLE_EQ(r->poll.jitter, defaults.poll.jitter);
  EXPECT_EQ(r->control_socket, defaults.control_socket);
  EXPECT_EQ(r->log.level, defaults.log.level);
  EXPECT_EQ(r->log.format, defaults.log.format);
  EXPECT_EQ(r->shutdown_grace, defaults.shutdown_grace);
  EXPECT_EQ(r->hook_on_transition, defaults.hook_on_transition);
  EXPECT_EQ(r->hook_timeout, defaults.hook_timeout);
  EXPECT_EQ(r->api.credentials_file, "/etc/personad/credentials.toml");
}

// ---------------------------------------------------------------------------------------------
// Credentials

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    if (auto it = vars.find(std::string(name)); it != vars.end()) return it->second;
    return std::nullopt;
  };
}

// Credentials files must not be readable by other users (they are refused like ssh keys).
std::string private_file(const fs::path& p) {
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  return p.string();
}

Config config_with_credentials_file(const std::string& path) {
  Config c;
  c.source_path = "/etc/personad/personad.toml";
  c.api.credentials_file = path;
  return c;
}

struct CredentialSources {
  TempDir dir;
  std::string cred_dir;
  std::string file;
  CredentialSources() {
    dir.write("creds/creatify_api_id", "dir-id\n");
    dir.write("creds/creatify_api_key", "dir-key \n\n");
    cred_dir = (dir.path() / "creds").string();
    file = private_file(
        dir.write("credentials.toml", "api_id = \"file-id\"\napi_key = \"file-key\"\n"));
  }
};

TEST(Credentials, EnvironmentWinsOverDirectoryAndFile) {
  CredentialSources s;
  auto r = load_credentials(config_with_credentials_file(s.file),
                            fake_env({{"CREATIFY_API_ID", "env-id"},
                                      {"CREATIFY_API_KEY", "env-key"},
                                      {"CREDENTIALS_DIRECTORY", s.cred_dir}}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api_id, "env-id");
  EXPECT_EQ(r->api_key, "env-key");
  EXPECT_EQ(r->origin, "environment");
}

TEST(Credentials, DirectoryWinsOverFileAndIsTrimmed) {
  CredentialSources s;
  auto r = load_credentials(config_with_credentials_file(s.file),
                            fake_env({{"CREDENTIALS_DIRECTORY", s.cred_dir}}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api_id, "dir-id");
  EXPECT_EQ(r->api_key, "dir-key");
  EXPECT_EQ(r->origin, "$CREDENTIALS_DIRECTORY");
}

TEST(Credentials, FileIsTheLastResort) {
  CredentialSources s;
  auto r = load_credentials(config_with_credentials_file(s.file), fake_env({}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api_id, "file-id");
  EXPECT_EQ(r->api_key, "file-key");
  EXPECT_EQ(r->origin, s.file);
}

TEST(Credentials, DirectoryWithoutOurFilesFallsThrough) {
  CredentialSources s;
  fs::create_directories(s.dir.path() / "other");
  auto r =
      load_credentials(config_with_credentials_file(s.file),
                       fake_env({{"CREDENTIALS_DIRECTORY", (s.dir.path() / "other").string()}}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api_id, "file-id");
}

TEST(Credentials, EmptyEnvironmentValuesCountAsUnset) {
  CredentialSources s;
  auto r = load_credentials(config_with_credentials_file(s.file),
                            fake_env({{"CREATIFY_API_ID", ""}, {"CREATIFY_API_KEY", ""}}));
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api_id, "file-id");
}

TEST(Credentials, OnlyOneEnvironmentVariableIsAnError) {
  CredentialSources s;
  auto r = load_credentials(config_with_credentials_file(s.file),
                            fake_env({{"CREATIFY_API_ID", "env-id-secret"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(),
            "CREATIFY_API_ID is set but CREATIFY_API_KEY is not: set both, or neither");

  auto r2 = load_credentials(config_with_credentials_file(s.file),
                             fake_env({{"CREATIFY_API_KEY", "env-key-secret"}}));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.message(),
            "CREATIFY_API_KEY is set but CREATIFY_API_ID is not: set both, or neither");
}

TEST(Credentials, HalfFilledDirectoryIsAnError) {
  TempDir dir;
  dir.write("creatify_api_key", "dir-key-secret");
  auto r = load_credentials(Config{}, fake_env({{"CREDENTIALS_DIRECTORY", dir.path().string()}}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("has creatify_api_key but not creatify_api_id"));
  EXPECT_THAT(r.message(), Not(HasSubstr("dir-key-secret")));
}

TEST(Credentials, EmptyDirectoryFileIsAnError) {
  TempDir dir;
  dir.write("creatify_api_id", "\n");
  dir.write("creatify_api_key", "k");
  auto r = load_credentials(Config{}, fake_env({{"CREDENTIALS_DIRECTORY", dir.path().string()}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), (dir.path() / "creatify_api_id").string() + " is empty");
}

TEST(Credentials, NothingFoundListsTheThreePlaces) {
  Config c;
  c.source_path = "/etc/personad/personad.toml";
  auto r = load_credentials(c, fake_env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("CREATIFY_API_ID and CREATIFY_API_KEY"));
  EXPECT_THAT(r.message(), HasSubstr("$CREDENTIALS_DIRECTORY"));
  EXPECT_THAT(r.message(), HasSubstr("api.credentials_file in /etc/personad/personad.toml"));
}

TEST(Credentials, MissingConfiguredFileIsAnError) {
  TempDir dir;
  const auto path = (dir.path() / "missing.toml").string();
  auto r = load_credentials(config_with_credentials_file(path), fake_env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("cannot read api.credentials_file '" + path + "'"));
}

TEST(Credentials, FileErrorsNameKeyAndLineButNeverSecrets) {
  TempDir dir;
  const auto path = private_file(
      dir.write("c.toml", "api_id = \"id-secret-123\"\napi_key = 42\napi_sekret = \"zzz-secret\"\n"));
  auto r = load_credentials(config_with_credentials_file(path), fake_env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), path + ":2: api_key: expected a string, got integer\n" + path +
                             ":3: unknown key 'api_sekret'");
  EXPECT_THAT(r.message(), Not(HasSubstr("id-secret-123")));
  EXPECT_THAT(r.message(), Not(HasSubstr("zzz-secret")));
}

TEST(Credentials, FileMissingAKeyNamesIt) {
  TempDir dir;
  const auto path = private_file(dir.write("c.toml", "api_id = \"id-secret-123\"\n"));
  auto r = load_credentials(config_with_credentials_file(path), fake_env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(), path + ": missing api_key");
}

TEST(Credentials, FileSyntaxErrorWithholdsDetails) {
  TempDir dir;
  // A character of the secret could appear in a parser message; only the position may.
  const auto path =
      private_file(dir.write("c.toml", "api_id = \"abc\"\napi_key = Zsecret-value\n"));
  auto r = load_credentials(config_with_credentials_file(path), fake_env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), ::testing::StartsWith(path + ":2:"));
  EXPECT_THAT(r.message(), HasSubstr("details withheld"));
  EXPECT_THAT(r.message(), Not(HasSubstr("secret-value")));
  EXPECT_THAT(r.message(), Not(HasSubstr("'Z'")));
}

// Refused like ssh refuses a private key others may read (issue 11, defect 7).
TEST(Credentials, AFileOtherUsersMayReadIsRefused) {
  TempDir dir;
  const auto path = dir.write("c.toml", "api_id = \"id-1\"\napi_key = \"key-secret-1\"\n");
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
  auto r = load_credentials(config_with_credentials_file(path.string()), fake_env({}));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.message(), HasSubstr("api.credentials_file '" + path.string() + "' has mode 0644"));
  EXPECT_THAT(r.message(), Not(HasSubstr("key-secret-1")));
  // Owner and group only is fine.
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_TRUE(load_credentials(config_with_credentials_file(path.string()), fake_env({})).ok());
}

TEST(Credentials, ProcessEnvReadsTheEnvironment) {
  const std::string name = "PERSONAD_CONFIG_TEST_VAR_" + std::to_string(::getpid());
  ::setenv(name.c_str(), "value-1", 1);
  const auto env = process_env();
  EXPECT_EQ(env(name), std::optional<std::string>("value-1"));
  ::unsetenv(name.c_str());
  EXPECT_EQ(env(name), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// batches.media_root and the start-up checks

TEST(Config, MediaRootIsADirectoryOrAList) {
  auto one = parse_config("[batches]\nmedia_root = \"media\"\n", "/etc/personad/personad.toml");
  ASSERT_TRUE(one.ok()) << one.message();
  EXPECT_EQ(one->media_roots, std::vector<std::string>{"/etc/personad/media"});
  auto two = parse_config("[batches]\nmedia_root = [\"/srv/a\", \"b/../c\"]\n",
                          "/etc/personad/personad.toml");
  ASSERT_TRUE(two.ok()) << two.message();
  EXPECT_EQ(two->media_roots, (std::vector<std::string>{"/srv/a", "/etc/personad/c"}));
  EXPECT_TRUE(parse_config("", "p.toml")->media_roots.empty());
  EXPECT_EQ(error_of("[batches]\nmedia_root = 3\n"),
            "personad.toml:2: batches.media_root: expected a directory path or an array of them, "
            "got integer");
  EXPECT_EQ(error_of("[batches]\nmedia_root = [\"/a\", \"\"]\n"),
            "personad.toml:2: batches.media_root: element 2: must not be empty");
}

// A NUL ends a path for the system: "a\u0000b" would silently be "a" (issue 11, defect 9).
TEST(Config, PathsWithANulAreRefused) {
  EXPECT_EQ(error_of("[store]\npath = \"/var/lib/x.db\\u0000.bak\"\n"),
            "personad.toml:2: store.path: must not contain a NUL character (\\u0000)");
  EXPECT_EQ(error_of("[batches]\nmedia_root = \"/srv/m\\u0000\"\n"),
            "personad.toml:2: batches.media_root: must not contain a NUL character (\\u0000)");
  EXPECT_EQ(error_of("[batches]\nmedia_root = [\"/a\", \"/b\\u0000\"]\n"),
            "personad.toml:2: batches.media_root: element 2: must not contain a NUL character "
            "(\\u0000)");
}

// Sets or clears the immutable flag (chattr +i); false where that is not permitted.
bool set_immutable(const fs::path& p, bool on) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (ok) {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    ok = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  }
  ::close(fd);
  return ok;
}

Config config_in(const TempDir& dir) {
  Config c;
  c.source_path = (dir.path() / "personad.toml").string();
  c.store_path = (dir.path() / "personad.db").string();
  return c;
}

const EnvLookup kEnvCredentials =
    fake_env({{"CREATIFY_API_ID", "id-1"}, {"CREATIFY_API_KEY", "key-1"}});

TEST(StartupCheck, AllWellGivesCredentials) {
  TempDir dir;
  const auto check = check_startup(config_in(dir), kEnvCredentials);
  EXPECT_TRUE(check.ok());
  ASSERT_TRUE(check.credentials.has_value());
  EXPECT_EQ(check.credentials->origin, "environment");
  EXPECT_TRUE(check.credentials_missing.empty());
}

TEST(StartupCheck, NoCredentialsAtAllIsReportedApart) {
  TempDir dir;
  const auto check = check_startup(config_in(dir), fake_env({}));
  EXPECT_TRUE(check.ok());  // --check-config warns (systemd provides them); start-up fails
  EXPECT_FALSE(check.credentials.has_value());
  EXPECT_THAT(check.credentials_missing, HasSubstr("no Creatify API credentials"));
}

TEST(StartupCheck, BrokenOrExposedCredentialsFileIsAnError) {
  TempDir dir;
  Config c = config_in(dir);
  c.api.credentials_file = private_file(dir.write("creds.toml", "api_id = \"x\"\napi_key = \n"));
  auto check = check_startup(c, fake_env({}));
  ASSERT_EQ(check.errors.size(), 1u);
  EXPECT_EQ(check.errors[0].what, "credentials");
  EXPECT_THAT(check.errors[0].message, HasSubstr(c.api.credentials_file + ":2:"));

  fs::permissions(c.api.credentials_file, fs::perms::others_read, fs::perm_options::add);
  check = check_startup(c, fake_env({}));
  ASSERT_EQ(check.errors.size(), 1u);
  EXPECT_THAT(check.errors[0].message, HasSubstr("has mode 0604"));
}

TEST(StartupCheck, AnImmutableDatabaseIsAnError) {
  TempDir dir;
  const auto db = dir.write("personad.db", "");
  if (!set_immutable(db, true)) GTEST_SKIP() << "cannot set the immutable flag here";
  const auto check = check_startup(config_in(dir), kEnvCredentials);
  set_immutable(db, false);
  ASSERT_EQ(check.errors.size(), 1u);
  EXPECT_EQ(check.errors[0].what, "store");
  EXPECT_THAT(check.errors[0].message,
              HasSubstr("store.path '" + db.string() + "': the database cannot be written"));
}

TEST(StartupCheck, AnImmutableDirectoryIsAnError) {
  TempDir dir;
  const auto sub = dir.path() / "state";
  fs::create_directories(sub);
  Config c = config_in(dir);
  c.store_path = (sub / "personad.db").string();
  if (!set_immutable(sub, true)) GTEST_SKIP() << "cannot set the immutable flag here";
  const auto check = check_startup(c, kEnvCredentials);
  set_immutable(sub, false);
  ASSERT_EQ(check.errors.size(), 1u);
  EXPECT_THAT(check.errors[0].message,
              HasSubstr("store.path: directory '" + sub.string() + "' cannot be written"));
}

TEST(StartupCheck, AReadOnlyDirectoryIsAnErrorForOrdinaryUsers) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes any directory";
  TempDir dir;
  const auto sub = dir.path() / "state";
  fs::create_directories(sub);
  fs::permissions(sub, fs::perms::owner_read | fs::perms::owner_exec);
  Config c = config_in(dir);
  c.store_path = (sub / "personad.db").string();
  const auto check = check_startup(c, kEnvCredentials);
  ASSERT_EQ(check.errors.size(), 1u);
  EXPECT_THAT(check.errors[0].message, HasSubstr("cannot be written"));
}

TEST(StartupCheck, AMissingDirectoryThatCannotBeMadeIsAnError) {
  TempDir dir;
  const auto frozen = dir.path() / "frozen";
  fs::create_directories(frozen);
  Config c = config_in(dir);
  c.store_path = (frozen / "a" / "b" / "personad.db").string();
  if (!set_immutable(frozen, true)) GTEST_SKIP() << "cannot set the immutable flag here";
  const auto check = check_startup(c, kEnvCredentials);
  set_immutable(frozen, false);
  ASSERT_EQ(check.errors.size(), 1u);
  EXPECT_EQ(check.errors[0].message, "store.path: directory '" + (frozen / "a" / "b").string() +
                                         "' does not exist and cannot be made in '" +
                                         frozen.string() +
                                         "': Operation not permitted (an immutable file? see "
                                         "lsattr)");
}

TEST(StartupCheck, AMissingDirectoryIsMadeAtStartNotAnError) {
  TempDir dir;
  Config c = config_in(dir);
  c.store_path = (dir.path() / "a" / "b" / "personad.db").string();
  EXPECT_TRUE(check_startup(c, kEnvCredentials).ok());
}

TEST(StartupCheck, AMissingMediaRootIsAWarning) {
  TempDir dir;
  Config c = config_in(dir);
  c.media_roots = {(dir.path() / "nope").string()};
  const auto check = check_startup(c, kEnvCredentials);
  EXPECT_TRUE(check.ok());
  ASSERT_EQ(check.warnings.size(), 1u);
  EXPECT_THAT(check.warnings[0].message, HasSubstr("batches.media_root"));
}

// ---- The poll window (issue 10) ----

TEST(Config, PollWindowKeysParseWithRanges) {
  auto r = parse_config(
      "[poll]\nexpected_after = \"2d\"\nsparse_interval = \"8h\"\n"
      "max_interval_with_webhook = \"12h\"\n",
      "p.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->poll.expected_after, Millis{2LL * 86'400'000});
  EXPECT_EQ(r->poll.sparse_interval, Millis{8LL * 3'600'000});
  EXPECT_EQ(r->poll.max_interval_with_webhook, Millis{12LL * 3'600'000});
  EXPECT_EQ(r->poll.max_interval, Millis{3'600'000});  // untouched

  auto zero = parse_config("[poll]\nexpected_after = \"0s\"\n", "p.toml");
  ASSERT_TRUE(zero.ok()) << zero.message();
  EXPECT_EQ(zero->poll.expected_after, Millis{0});

  auto bad = parse_config("[poll]\nsparse_interval = \"0s\"\nexpected_after = \"366d\"\n"
                          "max_interval_with_webhook = \"31d\"\n",
                          "personad.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(),
            "personad.toml:2: poll.sparse_interval: must be greater than 0 (and at most 30d)\n"
            "personad.toml:3: poll.expected_after: must be between 0s and 365d, got \"366d\"\n"
            "personad.toml:4: poll.max_interval_with_webhook: must be between 1ms and 30d, got "
            "\"31d\"");
}

TEST(Config, AnEmptyFileGetsTheWindowAwareDefault) {
  auto r = parse_config("", "p.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->poll.expected_after, kDefaultExpectedAfter);
  // Other sections do not matter.
  auto other = parse_config("[poll]\njitter = 0.1\ngive_up_after = \"5d\"\n", "p.toml");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->poll.expected_after, kDefaultExpectedAfter);
}

TEST(Config, AnOperatorsOwnScheduleKeepsItsMeaning) {
  // A file that shapes the schedule and says nothing of a window keeps the plain backoff.
  for (const char* key : {"first_after = \"1m\"", "initial_interval = \"1m\"",
                          "multiplier = 1.5", "max_interval = \"2h\""}) {
    auto r = parse_config(std::string("[poll]\n") + key + "\n", "p.toml");
    ASSERT_TRUE(r.ok()) << key;
    EXPECT_EQ(r->poll.expected_after, Millis{0}) << key;
  }
  // Unless it asks for one.
  auto r = parse_config("[poll]\nmax_interval = \"2h\"\nexpected_after = \"1d\"\n", "p.toml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->poll.expected_after, Millis{86'400'000});
}

// ---- TLS and origins (issue 10) ----

TEST(Config, HttpBaseUrlToANonLoopbackHostNeedsAllowInsecure) {
  auto r = parse_config("[api]\nbase_url = \"http://api.example.com:8080\"\n", "personad.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(),
            "personad.toml:2: api.base_url: is http:// to \"api.example.com\", which is not a "
            "loopback address: the API credentials would cross the network unencrypted; use "
            "https://, or set api.allow_insecure = true");
  auto allowed = parse_config(
      "[api]\nallow_insecure = true\nbase_url = \"http://api.example.com:8080/\"\n", "p.toml");
  ASSERT_TRUE(allowed.ok()) << allowed.message();
  EXPECT_TRUE(allowed->api.allow_insecure);
  EXPECT_EQ(allowed->api.base_url, "http://api.example.com:8080");
  for (const char* url : {"http://127.0.0.1:1", "http://127.8.9.10:1", "http://localhost:1",
                          "http://[::1]:1", "https://api.example.com"})
    EXPECT_TRUE(parse_config(std::string("[api]\nbase_url = \"") + url + "\"\n", "p.toml").ok())
        << url;
}

TEST(Config, BaseUrlWithAPathIsRefusedAsTheClientRefusesIt) {
  auto r = parse_config("[api]\nbase_url = \"https://api.example.com/v2\"\n", "personad.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.message(),
            "personad.toml:2: api.base_url: must be scheme://host[:port] without a path "
            "(personad adds /api/…), got \"https://api.example.com/v2\"");
  auto userinfo = parse_config("[api]\nbase_url = \"https://u:p@api.example.com\"\n", "p.toml");
  ASSERT_FALSE(userinfo.ok());
  EXPECT_THAT(userinfo.message(), HasSubstr("api.base_url: must not contain user information"));
}

TEST(Config, CaFileIsAPathRelativeToTheConfigFile) {
  auto r = parse_config("[api]\nca_file = \"certs/ca.pem\"\n", "/etc/personad/personad.toml");
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r->api.ca_file, "/etc/personad/certs/ca.pem");
  EXPECT_FALSE(Config().api.allow_insecure);
  EXPECT_TRUE(Config().api.ca_file.empty());
}

}  // namespace
}  // namespace personad
