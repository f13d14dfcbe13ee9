// personactl list and the other reads against the real daemon and without it: every filter,
// page and format prints the same bytes online (the daemon's query side) and offline (the same
// query code on the database); and paging with --after through a running campaign shows every
// job exactly once while jobs move on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "harness.hpp"
#include "csv_reader.hpp"

namespace personad::it {
namespace {
using personad::testing::parse_csv;

using ::testing::HasSubstr;
using std::chrono::seconds;

TEST(Query, OnlineAndOfflineAnswersAreTheSameBytes) {
  Environment env("query");
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "100000", "--seed", "21"},
                         .batches = {{"q.toml", make_batch("q", 24, {"", "[fail]", "", "[reject]",
                                                                     "", ""})},
                                     {"r.toml", make_batch("r", 6)}}}));
  ASSERT_TRUE(wait_until([&] { return all_final(env, 30); }, seconds(90)))
      << read_file(env.log_path());
  const auto js = jobs(env);
  const std::string r_source(js.at("r-0").at("source").as_string());

  const std::vector<std::vector<std::string>> commands = {
      {"list"},
      {"list", "--json"},
      {"list", "--jsonl"},
      {"list", "--csv"},
      {"list", "--state", "failed", "--csv"},
      {"list", "--state", "done,failed", "--label", "q", "--json"},
      {"list", "--state", "done", "--state", "expired", "--limit", "4"},
      {"list", "--key", "q-1*", "--jsonl"},
      {"list", "--limit", "5", "--after", "q-10"},
      {"list", "--source", r_source, "--json"},
      {"list", "--since", "1h", "--until", "2099-01-01", "--csv"},
      {"list", "--remote-status", "rejected", "--json"},
      {"list", "--needs-operator", "--json"},
      {"list", "--stuck", "--json"},
      {"list", "--state", "bogus"},
      {"list", "--after", "nobody"},
      {"show", "q-3", "--json"},
      {"show", "q-3"},
      {"history", "q-1", "--json"},
      {"show", "nope"},
      {"stats", "--json"},
  };
  std::vector<RunResult> online;
  for (const auto& c : commands) online.push_back(env.ctl(c));
  // What the daemon answered is what the contract says.
  auto failed_csv = parse_csv(online[4].out);
  ASSERT_GE(failed_csv.size(), 2u) << online[4].out << online[4].err;
  EXPECT_EQ(failed_csv[0][0], "key");
  std::size_t failed = 0;
  for (auto& [key, j] : js) failed += j.at("state") == "failed" ? 1 : 0;
  EXPECT_EQ(failed_csv.size(), failed + 1);
  for (std::size_t i = 1; i < failed_csv.size(); ++i) {
    EXPECT_EQ(failed_csv[i][1], "failed");
    EXPECT_FALSE(failed_csv[i][4].empty()) << "failed_reason";
    EXPECT_EQ(failed_csv[i][6], "it;q");
  }
  EXPECT_EQ(json::parse(online[9].out).as_array().size(), 6u);
  EXPECT_EQ(online[14].code, 2);
  EXPECT_THAT(online[14].err, HasSubstr("unknown state 'bogus'"));
  EXPECT_EQ(online[15].code, 2);
  EXPECT_EQ(online[19].code, 1);

  env.stop_daemon(SIGTERM);
  ASSERT_FALSE(fs::exists(env.dir() / "control.sock"));
  for (std::size_t i = 0; i < commands.size(); ++i) {
    auto offline = env.ctl(commands[i]);
    std::string what;
    for (const auto& a : commands[i]) what += a + " ";
    EXPECT_EQ(offline.code, online[i].code) << what;
    EXPECT_EQ(offline.out, online[i].out) << what;
    EXPECT_EQ(offline.err, online[i].err) << what;
  }
}

// Pages of --limit 7 --after KEY through a campaign the daemon is working on: between pages
// jobs are cancelled (ahead of the cursor and behind it) and new ones submitted, while the
// daemon polls the rest; yet every job of the campaign is listed exactly once, none twice.
TEST(Query, AfterPagingThroughARunningCampaignShowsEveryJobOnce) {
  Environment env("paging");
  // Slow enough that the campaign is still running while the pages are read.
  ASSERT_TRUE(env.start({.sim_flags = {"--time-scale", "3000", "--seed", "4"},
                         .batches = {{"p.toml", make_batch("p", 60)}}}));
  ASSERT_TRUE(wait_until([&] { return jobs(env).size() == 60; }, seconds(30)));

  std::vector<std::string> listed;
  std::string after;
  int cancelled = 0;
  for (int page = 0; page < 30; ++page) {
    std::vector<std::string> args{"list", "--jsonl", "--limit", "7"};
    if (!after.empty()) args.insert(args.end(), {"--after", after});
    auto r = env.ctl(args);
    ASSERT_EQ(r.code, 0) << r.err;
    std::istringstream lines(r.out);
    std::size_t n = 0;
    for (std::string line; std::getline(lines, line); ++n)
      listed.emplace_back(json::parse(line).at("key").as_string());
    if (n < 7) break;
    after = listed.back();
    // Meanwhile: one job ahead of the cursor and one behind it are cancelled, one is new.
    for (const std::string& key : {"p-" + std::to_string(59 - page), listed[listed.size() / 2]})
      cancelled += env.ctl({"cancel", key}).code == 0 ? 1 : 0;
    write_file(env.dir() / ("more-" + std::to_string(page) + ".toml"),
               make_batch("new" + std::to_string(page), 1));
    ASSERT_EQ(env.ctl({"submit", (env.dir() / ("more-" + std::to_string(page) + ".toml")).string()})
                  .code,
              0);
  }
  std::set<std::string> unique(listed.begin(), listed.end());
  EXPECT_EQ(unique.size(), listed.size()) << "a job was listed twice";
  for (int i = 0; i < 60; ++i) EXPECT_EQ(unique.count("p-" + std::to_string(i)), 1u) << i;
  EXPECT_GT(cancelled, 5) << "jobs did change while the pages were read";
}

}  // namespace
}  // namespace personad::it
