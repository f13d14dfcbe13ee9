// personactl archive (archive.hpp): finished jobs final before T go to a JSON-lines file with
// their history, their rows are dropped and their keys kept (never submitted again, `show` says
// archived); a crash between the fsync and the drop loses nothing and a re-run adds no line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "personad/archive.hpp"
#include "personad/job_query.hpp"
#include "personad/store.hpp"
#include "store_backend.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using std::chrono::hours;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

std::vector<std::string> lines_of(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// On both backends (store_backend.hpp).
class ArchiveTest : public ::testing::TestWithParam<testing::StoreBackendKind> {
 protected:
  void SetUp() override {
    auto b = testing::StoreBackend::make(GetParam());
    if (!b) PERSONAD_PG_UNAVAILABLE(b.message());
    backend_ = std::move(*b);
    auto s = backend_->open(OpenMode::read_write);
    ASSERT_TRUE(s) << s.message();
    store_ = std::move(*s);
    std::vector<PersonaSpec> specs;
    for (const char* k : {"old-done", "old-failed", "pending", "new-done"}) {
      PersonaSpec p;
      p.key = k;
      specs.push_back(p);
    }
    int n = 0;
    ASSERT_TRUE(store_->enqueue(specs, "t", "batch", kT0, [&] { return "r" + std::to_string(++n); }));
    move("old-done", {State::submitting, State::pending, State::done}, kT0 + hours(10));
    move("old-failed", {State::submitting, State::failed}, kT0 + hours(20));
    move("pending", {State::submitting, State::pending}, kT0 + hours(5));
    move("new-done", {State::submitting, State::pending, State::done}, kT0 + hours(100));
  }
  void move(const std::string& key, std::vector<State> path, TimePoint at) {
    Job j = **store_->find(key);
    for (State to : path) {
      Transition t{j.id, at, j.state, to, to == State::pending ? "pending" : "", "test"};
      j.state = to;
      j.updated_at = at;
      ASSERT_TRUE(store_->apply(j, t));
    }
  }
  std::string file() const { return (dir_.path() / "archive.jsonl").string(); }

  testing::TempDir dir_{"archive"};
  std::unique_ptr<testing::StoreBackend> backend_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, ArchiveTest, testing::kAllStoreBackends,
                         testing::store_backend_name);

TEST_P(ArchiveTest, FinalJobsBeforeTGoToTheFileAndTheirKeysStayTaken) {
  auto r = archive_jobs(*store_, kT0 + hours(50), file(), kT0 + hours(200));
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r->selected, 2u);
  EXPECT_EQ(r->written, 2u);
  EXPECT_EQ(r->dropped, 2u);
  const auto lines = lines_of(file());
  ASSERT_EQ(lines.size(), 2u);
  std::set<std::string> keys;
  for (const auto& l : lines) {
    auto v = json::parse(l);
    keys.insert(std::string(v.at("job").at("key").as_string()));
    EXPECT_GE(v.at("history").as_array().size(), 3u);
  }
  EXPECT_EQ(keys, (std::set<std::string>{"old-done", "old-failed"}));
  EXPECT_FALSE(*store_->find("old-done"));
  EXPECT_TRUE(*store_->find("pending"));
  EXPECT_TRUE(*store_->find("new-done"));
  auto stats = store_->stats();
  EXPECT_EQ(stats->counts[State::done], 1);
  EXPECT_EQ(stats->counts[State::failed], 0);
  // The key is never reused.
  PersonaSpec again;
  again.key = "old-done";
  auto e = store_->enqueue({again}, "t", "batch", kT0 + hours(201), [] { return std::string("x"); });
  ASSERT_TRUE(e) << e.message();
  EXPECT_FALSE((*e)[0].inserted);
  EXPECT_EQ((*e)[0].state, State::done);
  EXPECT_FALSE(*store_->find("old-done"));
  // show KEY says archived.
  auto show = answer_query(*store_, "/v1/jobs/old-done", QueryContext{kT0 + hours(201)});
  EXPECT_EQ(show.status, 404);
  EXPECT_THAT(std::string(show.body.at("error").as_string()), HasSubstr("archived (done) to " + file()));
}

TEST_P(ArchiveTest, ACrashBetweenTheFsyncAndTheDropLosesNothingAndARerunAddsNoLine) {
  ArchiveHooks crash;
  crash.after_sync = [] { throw std::runtime_error("crash"); };
  EXPECT_THROW(archive_jobs(*store_, kT0 + hours(50), file(), kT0 + hours(200), crash),
               std::runtime_error);
  // The lines are there, the rows too: nothing lost.
  EXPECT_EQ(lines_of(file()).size(), 2u);
  EXPECT_TRUE(*store_->find("old-done"));
  // A crash in the middle of a line leaves a partial last line: cut off on the re-run.
  std::ofstream(file(), std::ios::app) << "{\"archived_at\":\"2026-";
  auto r = archive_jobs(*store_, kT0 + hours(50), file(), kT0 + hours(300));
  ASSERT_TRUE(r) << r.message();
  EXPECT_EQ(r->written, 0u);
  EXPECT_EQ(r->already, 2u);
  EXPECT_EQ(r->dropped, 2u);
  EXPECT_EQ(lines_of(file()).size(), 2u);
  EXPECT_FALSE(*store_->find("old-done"));
  EXPECT_TRUE(*store_->find_archived("old-failed"));
  // Once more: nothing left to do.
  r = archive_jobs(*store_, kT0 + hours(50), file(), kT0 + hours(400));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->selected, 0u);
  EXPECT_EQ(lines_of(file()).size(), 2u);
}

TEST_P(ArchiveTest, AFileThatIsNotAnArchiveIsRefusedBeforeAnythingIsDropped) {
  std::ofstream(file()) << "hello\n";
  auto r = archive_jobs(*store_, kT0 + hours(50), file(), kT0 + hours(200));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.message(), HasSubstr(":1: not an archive line"));
  EXPECT_TRUE(*store_->find("old-done"));
}

}  // namespace
}  // namespace personad
