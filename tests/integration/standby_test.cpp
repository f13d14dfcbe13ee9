// Two personad hosts on one PostgreSQL store (PRODUCT.md "PostgreSQL and several hosts"): one
// active, one standing by. The active host killed with SIGKILL mid-campaign: the standby takes
// over and finishes every job with no duplicate persona. The active host paused (SIGSTOP) until
// the standby took over, then resumed: it writes nothing and stops. Actions given to the
// standby's socket reach the active host.
//
// They need a PostgreSQL server: scripts/test.sh runs the suite under pg_virtualenv, which
// starts a throw-away cluster and sets PGHOST, PGPORT, PGUSER, PGPASSWORD. Without one the
// tests skip and say so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "harness.hpp"
#include "pg_test_db.hpp"

namespace personad::it {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kTakeoverAfter = "3s";

// A fresh database per test (tests/support/pg_test_db.hpp), or the test skips saying why (fails
// under scripts/test.sh, which provides a server: PERSONAD_REQUIRE_PG).
#define FRESH_DATABASE(db)                                      \
  auto db##_made = ::personad::testing::PgTestDb::create();     \
  if (!db##_made) PERSONAD_PG_UNAVAILABLE(db##_made.message()); \
  const ::personad::testing::PgTestDb& db##_db = **db##_made;   \
  const std::string db = db##_db.url()

// Every "transition key=K … to=S" line of a log: (K, S).
std::vector<std::pair<std::string, std::string>> transitions_in(const std::string& log) {
  std::vector<std::pair<std::string, std::string>> out;
  auto field = [](const std::string& line, const std::string& name) {
    const auto at = line.find(" " + name + "=");
    if (at == std::string::npos) return std::string();
    const auto from = at + name.size() + 2;
    return line.substr(from, line.find(' ', from) - from);
  };
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);)
    if (line.find(" transition key=") != std::string::npos)
      out.emplace_back(field(line, "key"), field(line, "to"));
  return out;
}

// One personad host: its own config, control socket and log; the store and the batches
// directory are shared with the other host.
class Host {
 public:
  Host(Environment& env, std::string name, const std::string& database_url)
      : env_(env), name_(std::move(name)) {
    std::ostringstream c;
    c << "[api]\nbase_url = \"http://127.0.0.1:" << env.sim_port() << "\"\n"
      << "timeout = \"2s\"\nmax_requests_per_second = 200.0\nmax_in_flight = 4\n"
      << "retry_initial = \"100ms\"\nretry_max = \"1s\"\nreconcile_after = \"1s\"\n"
      << "[store]\nurl = \"" << database_url << "\"\n"
      << "takeover_after = \"" << kTakeoverAfter << "\"\n"
      << "[batches]\ndirectory = \"" << (env.dir() / "batches.d").string() << "\"\n"
      << "[poll]\nfirst_after = \"300ms\"\ninitial_interval = \"300ms\"\nmultiplier = 1.5\n"
      << "max_interval = \"1s\"\njitter = 0.2\ngive_up_after = \"10m\"\n"
      << "[control]\nsocket = \"" << socket().string() << "\"\n"
      << "[log]\nlevel = \"debug\"\n";
    write_file(config(), c.str());
  }

  fs::path config() const { return env_.dir() / (name_ + ".toml"); }
  fs::path log() const { return env_.dir() / (name_ + ".log"); }
  fs::path socket() const { return env_.dir() / (name_ + ".sock"); }
  std::string log_text() const { return read_file(log()); }

  void start() {
    process_ = std::make_unique<Process>(
        std::vector<std::string>{PERSONAD_BIN, "--config", config().string()},
        env_.credentials_env(), env_.dir() / (name_ + ".out"), log());
  }
  Process& process() { return *process_; }
  bool logged(const std::string& what, seconds within) {
    return wait_until([&] { return log_text().find(what) != std::string::npos; }, within);
  }

  RunResult ctl(std::vector<std::string> args) {
    std::vector<std::string> full{PERSONACTL_BIN, "--config", config().string()};
    full.insert(full.end(), args.begin(), args.end());
    return run(full, env_.dir());
  }
  json::value ctl_json(std::vector<std::string> args) {
    auto r = ctl(std::move(args));
    boost::system::error_code ec;
    auto v = json::parse(r.out, ec);
    return ec ? json::value(nullptr) : v;
  }
  std::string role() {
    auto v = ctl_json({"stats", "--json"});
    if (!v.is_object() || !v.as_object().contains("role")) return "";
    return std::string(v.at("role").as_string());
  }

 private:
  Environment& env_;
  std::string name_;
  std::unique_ptr<Process> process_;
};

// Jobs by key as a host's personactl sees them (through its socket, or the database).
std::map<std::string, json::object> jobs_of(Host& h) {
  std::map<std::string, json::object> out;
  auto v = h.ctl_json({"list", "--json"});
  if (!v.is_array()) return out;
  for (auto& j : v.get_array()) out[std::string(j.at("key").as_string())] = j.as_object();
  return out;
}

bool all_final_on(Host& h, std::size_t expected) {
  auto js = jobs_of(h);
  if (js.size() != expected) return false;
  for (auto& [k, j] : js)
    if (!is_final_state(std::string(j.at("state").as_string()))) return false;
  return true;
}

// Exactly one persona on the server per job, and each job holds that persona's id.
void expect_one_persona_per_job(Environment& env, Host& h, std::size_t expected) {
  auto js = jobs_of(h);
  ASSERT_EQ(js.size(), expected);
  std::map<std::string, int> per_label;
  for (auto& p : env.sim_personas())
    for (auto& l : p.at("labels").as_array())
      if (l.as_string().starts_with("personad:")) ++per_label[std::string(l.as_string())];
  EXPECT_EQ(env.sim_personas().size(), expected);
  for (auto& [key, j] : js)
    EXPECT_EQ(per_label["personad:" + std::string(j.at("client_ref").as_string())], 1) << key;
}

TEST(Standby, TheActiveHostKilledMidCampaignIsTakenOverWithNoDuplicate) {
  Environment env("standby-kill");
  FRESH_DATABASE(db);
  ASSERT_TRUE(env.start_sim({"--time-scale", "20000", "--seed", "11", "--fail-rate", "0.1",
                             "--lost-create", "0.1", "--slow-create", "0.2", "--slow-create-ms",
                             "400"}));
  Host a(env, "host-a", db), b(env, "host-b", db);
  a.start();
  ASSERT_TRUE(a.logged("lease_taken", seconds(15))) << a.log_text();
  b.start();
  ASSERT_TRUE(b.logged(" standby active=", seconds(15))) << b.log_text();
  EXPECT_EQ(a.role(), "active");
  EXPECT_EQ(b.role(), "standby");

  constexpr int kJobs = 40;
  write_file(env.dir() / "batches.d" / "campaign.toml", make_batch("fo", kJobs));
  ASSERT_TRUE(a.logged("to=pending", seconds(20))) << a.log_text();
  a.process().signal(SIGKILL);
  a.process().wait();
  const auto killed = std::chrono::steady_clock::now();

  ASSERT_TRUE(b.logged("lease_taken", seconds(15))) << b.log_text();
  const auto took = std::chrono::steady_clock::now() - killed;
  // The lease runs two thirds of takeover_after and the standby looks every sixth of it.
  EXPECT_LT(took, seconds(3) + seconds(2)) << "took over after "
                                           << std::chrono::duration<double>(took).count() << " s";
  ASSERT_TRUE(wait_until([&] { return all_final_on(b, kJobs); }, seconds(120))) << b.log_text();
  EXPECT_EQ(b.role(), "active");
  expect_one_persona_per_job(env, b, kJobs);
  // personactl of the dead host reads the shared database: the same answers.
  EXPECT_EQ(jobs_of(a).size(), static_cast<std::size_t>(kJobs));
}

TEST(Standby, APausedActiveHostWritesNothingAfterLosingTheLease) {
  Environment env("standby-pause");
  FRESH_DATABASE(db);
  ASSERT_TRUE(env.start_sim({"--time-scale", "20000", "--seed", "12", "--slow-create", "0.3",
                             "--slow-create-ms", "300"}));
  Host a(env, "host-a", db), b(env, "host-b", db);
  a.start();
  ASSERT_TRUE(a.logged("lease_taken", seconds(15))) << a.log_text();
  b.start();
  ASSERT_TRUE(b.logged(" standby active=", seconds(15))) << b.log_text();

  constexpr int kJobs = 30;
  write_file(env.dir() / "batches.d" / "campaign.toml", make_batch("pa", kJobs));
  ASSERT_TRUE(a.logged("to=pending", seconds(20))) << a.log_text();
  a.process().signal(SIGSTOP);
  ASSERT_TRUE(b.logged("lease_taken", seconds(15))) << b.log_text();
  // The new active host gets on with the work while the old one sleeps.
  std::this_thread::sleep_for(seconds(2));
  // Every transition row there is now was committed while the old host was stopped or before.
  const std::string before_wake = db_db.query("SELECT coalesce(max(id), 0) FROM transitions");
  ASSERT_GT(std::stoll(before_wake), 0) << before_wake;
  const std::size_t mark = a.log_text().size();
  a.process().signal(SIGCONT);

  // Woken, the old host finds the lease gone and stops, failing (systemd restarts it).
  ASSERT_TRUE(wait_until([&] { return !a.process().running(); }, seconds(15)))
      << last_lines(a.log_text());
  EXPECT_EQ(a.process().wait(), 1) << "host-a's end:\n" << last_lines(a.log_text());
  const std::string after = a.log_text().substr(mark);
  EXPECT_THAT(after, HasSubstr("lease_lost"));
  // A transition it logs after waking may only be one whose commit reached the database before
  // it was stopped (the takeover waited for it): nothing it tried after waking was written.
  for (const auto& [key, to] : transitions_in(after)) {
    const std::string committed_before = db_db.query(
        "SELECT count(*) FROM transitions t JOIN jobs j ON j.id = t.job_id WHERE j.key = '" + key +
        "' AND t.to_state = '" + to + "' AND t.id <= " + before_wake);
    EXPECT_NE(committed_before, "0") << key << " → " << to << " was written after the wake-up";
  }

  ASSERT_TRUE(wait_until([&] { return all_final_on(b, kJobs); }, seconds(120))) << b.log_text();
  expect_one_persona_per_job(env, b, kJobs);
  if (::testing::Test::HasFailure())
    ADD_FAILURE() << "host-a:\n" << a.log_text() << "\nhost-b:\n" << b.log_text();
}

TEST(Standby, ActionsGivenToTheStandbyReachTheActiveHost) {
  Environment env("standby-actions");
  FRESH_DATABASE(db);
  // Slow stages: the jobs stay pending while the test acts on them.
  ASSERT_TRUE(env.start_sim({"--time-scale", "1000", "--seed", "13"}));
  Host a(env, "host-a", db), b(env, "host-b", db);
  a.start();
  ASSERT_TRUE(a.logged("lease_taken", seconds(15))) << a.log_text();
  b.start();
  ASSERT_TRUE(b.logged(" standby active=", seconds(15))) << b.log_text();
  write_file(env.dir() / "batches.d" / "campaign.toml", make_batch("ac", 3));
  ASSERT_TRUE(wait_until([&] { return jobs_of(b).size() == 3; }, seconds(20)));

  auto cancel = b.ctl({"cancel", "ac-1"});
  EXPECT_EQ(cancel.code, 0) << cancel.out << cancel.err;
  EXPECT_EQ(std::string(jobs_of(b)["ac-1"].at("state").as_string()), "cancelled");
  EXPECT_THAT(a.log_text(), HasSubstr("key=ac-1"));

  // A submit on the standby is enqueued by the active host.
  write_file(env.dir() / "extra.toml", make_batch("sb", 1));
  auto submit = b.ctl({"submit", (env.dir() / "extra.toml").string()});
  EXPECT_EQ(submit.code, 0) << submit.out << submit.err;
  ASSERT_TRUE(wait_until([&] { return jobs_of(a).count("sb-0") == 1; }, seconds(10)));
  EXPECT_THAT(a.log_text(), HasSubstr("key=sb-0"));
  EXPECT_THAT(b.log_text(), Not(HasSubstr("key=sb-0")));
}

}  // namespace
}  // namespace personad::it
