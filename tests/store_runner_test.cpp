// Store runners: the threaded one groups the writes that arrive while a commit is in flight
// into one transaction (a savepoint each), resumes callers on their own executor, and fails a
// whole group whose commit fails; the inline one completes through the loop, never inline.
#include "personad/store_runner.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "await.hpp"
#include "store_backend.hpp"
#include "tracker_fixture.hpp"

namespace personad::testing {
namespace {

// A store that forwards to a real one and lets a test hold a group's commit (to pile writes
// up behind it) or make it fail.
class GatedStore final : public Store {
 public:
  explicit GatedStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}

  void hold_commits() {
    std::lock_guard lock(mutex_);
    held_ = true;
  }
  void release_commits() {
    {
      std::lock_guard lock(mutex_);
      held_ = false;
    }
    gate_.notify_all();
  }
  bool waiting_at_commit() {
    std::lock_guard lock(mutex_);
    return waiting_;
  }
  std::atomic<bool> fail_commits{false};

  int schema_version() const override { return inner_->schema_version(); }
  Result<std::vector<EnqueueOutcome>> enqueue(const std::vector<PersonaSpec>& specs,
                                              std::string_view source, std::string_view reason,
                                              TimePoint now,
                                              const std::function<std::string()>& ref) override {
    return inner_->enqueue(specs, source, reason, now, ref);
  }
  Result<void> apply(const Job& j, const Transition& t) override { return inner_->apply(j, t); }
  Result<void> update(const Job& j) override { return inner_->update(j); }
  Result<void> record_poll(const Job& j) override { return inner_->record_poll(j); }
  Result<std::optional<Job>> find(std::string_view k) const override { return inner_->find(k); }
  Result<std::optional<Job>> get(std::int64_t id) const override { return inner_->get(id); }
  Result<std::optional<Job>> find_by_remote_id(std::string_view r) const override {
    return inner_->find_by_remote_id(r);
  }
  Result<std::vector<Job>> list(std::optional<State> s) const override { return inner_->list(s); }
  Result<std::vector<Job>> load_active() const override { return inner_->load_active(); }
  Result<std::vector<Transition>> history(std::int64_t id) const override {
    return inner_->history(id);
  }
  Result<StoreStats> stats() const override { return inner_->stats(); }
  Result<JobPage> select(const Selection& s, const SelectOptions& o) const override {
    return inner_->select(s, o);
  }
  Result<void> for_each_active(const std::function<void(const ScheduleEntry&)>& f) const override {
    return inner_->for_each_active(f);
  }
  Result<void> begin_group() override { return inner_->begin_group(); }
  Result<void> end_group() override {
    std::unique_lock lock(mutex_);
    waiting_ = true;
    gate_.wait(lock, [&] { return !held_; });
    waiting_ = false;
    lock.unlock();
    if (fail_commits) {
      inner_->abort_group();
      return make_error(ErrorKind::io, "store: commit: disk full (test)");
    }
    return inner_->end_group();
  }
  void abort_group() override { inner_->abort_group(); }

 private:
  std::unique_ptr<Store> inner_;
  std::mutex mutex_;
  std::condition_variable gate_;
  bool held_ = false;
  bool waiting_ = false;
};

// On both backends: PostgreSQL aborts a whole transaction at its first failing statement, so
// its groups depend on a savepoint per write as much as SQLite's do.
class StoreRunnerTest : public ::testing::TestWithParam<StoreBackendKind> {
 protected:
  void SetUp() override {
    auto b = StoreBackend::make(GetParam());
    if (!b) PERSONAD_PG_UNAVAILABLE(b.message());
    backend_ = std::move(*b);
    auto s = backend_->open(OpenMode::read_write);
    ASSERT_TRUE(s) << s.message();
    std::vector<PersonaSpec> specs;
    for (int i = 0; i < 60; ++i) specs.push_back(make_spec("job-" + std::to_string(i)));
    int n = 0;
    ASSERT_TRUE((*s)->enqueue(specs, "test", "test", kT0,
                              [&] { return "ref-" + std::to_string(n++); }));
    auto gated = std::make_unique<GatedStore>(std::move(*s));
    gated_ = gated.get();
    runner_ = std::make_unique<ThreadedStoreRunner>(std::move(gated));
  }
  void TearDown() override {
    if (gated_ != nullptr) gated_->release_commits();
    runner_.reset();
  }

  void SetUpJobs() {
    auto s = backend_->open(OpenMode::read_only);
    auto all = (*s)->list(std::nullopt);
    for (const auto& j : *all) jobs_[j.key] = j;
  }

  // Moves job-N from queued to submitting, as the tracker would (a write, no read).
  boost::asio::awaitable<Result<void>> submit_job(int n, std::atomic<int>* done = nullptr,
                                                  bool at_once = false) {
    if (jobs_.empty()) SetUpJobs();
    Job j = jobs_.at("job-" + std::to_string(n));
    Transition t{j.id, kT0, State::queued, State::submitting, "", "submitting"};
    j.state = State::submitting;
    auto r = co_await runner_->write([&j, &t](Store& s) { return s.apply(j, t); }, at_once);
    if (done) ++*done;
    co_return r;
  }

  // The daemon's runner: a second, read-only connection and a thread of its own for reads.
  void use_reader() {
    auto reader = backend_->open(OpenMode::read_only);
    ASSERT_TRUE(reader) << reader.message();
    runner_.reset();
    auto writer = backend_->open(OpenMode::read_write);
    ASSERT_TRUE(writer) << writer.message();
    auto gated = std::make_unique<GatedStore>(std::move(*writer));
    gated_ = gated.get();
    runner_ = std::make_unique<ThreadedStoreRunner>(std::move(gated), std::move(*reader));
  }

  // Starts job-N's write on the loop, expecting it to succeed; `done` counts the callers told.
  void spawn_write(int n, std::atomic<int>& done, bool at_once = false) {
    boost::asio::co_spawn(ioc_, submit_job(n, &done, at_once),
                          [](std::exception_ptr, Result<void> r) { EXPECT_TRUE(r) << r.message(); });
  }

  // Runs the loop until `done` holds or `until` passes; whether it holds.
  bool run_until(const std::function<bool()>& done, std::chrono::steady_clock::time_point until) {
    while (!done() && std::chrono::steady_clock::now() < until)
      ioc_.run_for(std::chrono::milliseconds(1));
    return done();
  }

  State state_on_disk(int n) {
    auto s = backend_->open(OpenMode::read_only);
    auto j = (*s)->find("job-" + std::to_string(n));
    return (*j)->state;
  }

  static constexpr TimePoint kT0{Millis(1'800'000'000'000)};
  std::unique_ptr<StoreBackend> backend_;
  GatedStore* gated_ = nullptr;
  std::unique_ptr<ThreadedStoreRunner> runner_;
  std::map<std::string, Job> jobs_;
  boost::asio::io_context ioc_;
  // Completions come from the store's thread: the loop must not run out of work meanwhile.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
};

TEST_P(StoreRunnerTest, WritesThatArriveDuringACommitShareTheNextOne) {
  gated_->hold_commits();
  std::atomic<int> done{0};
  spawn_write(0, done);
  // Run until the first write sits in its commit; then 50 more arrive.
  while (!gated_->waiting_at_commit()) ioc_.run_for(std::chrono::milliseconds(1));
  for (int n = 1; n <= 50; ++n) spawn_write(n, done);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  // The fifty start and queue their writes behind the commit in flight.
  ioc_.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(done, 0);  // nobody is told before its commit is durable
  // The writer's thread was woken at most once, for the first write (not even that when the
  // thread had not gone to sleep yet: it finds the write in its queue before it waits). A busy
  // lane finds the others in its queue when its commit ends, without a signal (and a context
  // switch) for each.
  EXPECT_LE(runner_->stats().wakeups, 1u);
  gated_->release_commits();
  while (done < 51 && std::chrono::steady_clock::now() < until)
    ioc_.run_for(std::chrono::milliseconds(1));
  EXPECT_EQ(done, 51);
  auto st = runner_->stats();
  EXPECT_EQ(st.writes, 51u);
  EXPECT_EQ(st.commits, 2u);  // the first alone, the fifty together
  EXPECT_EQ(st.largest_group, 50u);
  for (int n = 0; n <= 50; ++n) EXPECT_EQ(state_on_disk(n), State::submitting) << n;
}

// A batch file's chunk (hundreds of rows) commits in a group of its own, after the writes taken
// with it: a create's intent record (its request slot waits for that commit) never waits for
// a chunk's rows.
TEST_P(StoreRunnerTest, ABulkWriteCommitsAfterTheWritesTakenWithIt) {
  gated_->hold_commits();
  std::vector<std::string> told;  // on the loop, in the order the callers were told
  boost::asio::co_spawn(ioc_, submit_job(0), [&](std::exception_ptr, Result<void> r) {
    EXPECT_TRUE(r) << r.message();
    told.push_back("job-0");
  });
  while (!gated_->waiting_at_commit()) ioc_.run_for(std::chrono::milliseconds(1));
  // Behind that commit: a chunk first, then one transition.
  auto chunk = [this, &told]() -> boost::asio::awaitable<void> {
    std::vector<PersonaSpec> specs;
    for (int i = 0; i < 200; ++i) specs.push_back(make_spec("bulk-" + std::to_string(i)));
    int n = 0;
    auto r = co_await runner_->write_bulk([&specs, &n](Store& s) {
      return s.enqueue(specs, "batch", "enqueued", kT0, [&n] { return "bulk-ref-" + std::to_string(n++); });
    });
    EXPECT_TRUE(r) << r.message();
    told.push_back("chunk");
  };
  boost::asio::co_spawn(ioc_, chunk(), boost::asio::detached);
  ioc_.run_for(std::chrono::milliseconds(20));
  boost::asio::co_spawn(ioc_, submit_job(1), [&](std::exception_ptr, Result<void> r) {
    EXPECT_TRUE(r) << r.message();
    told.push_back("job-1");
  });
  ioc_.run_for(std::chrono::milliseconds(50));
  gated_->release_commits();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (told.size() < 3 && std::chrono::steady_clock::now() < until)
    ioc_.run_for(std::chrono::milliseconds(1));
  EXPECT_EQ(told, (std::vector<std::string>{"job-0", "job-1", "chunk"}));
  const auto st = runner_->stats();
  EXPECT_EQ(st.commits, 3u) << "the first write, then the transition's group, then the chunk's";
  EXPECT_EQ(st.writes, 3u);
  EXPECT_EQ(state_on_disk(1), State::submitting);
  auto h = backend_->open(OpenMode::read_only);
  EXPECT_TRUE(*(*h)->find("bulk-199"));
}

TEST_P(StoreRunnerTest, AFailingWriteLeavesTheOthersOfItsGroup) {
  gated_->hold_commits();
  std::atomic<int> done{0};
  std::vector<Result<void>> results(4);
  boost::asio::co_spawn(ioc_, submit_job(0, &done), [&](std::exception_ptr, Result<void> r) { results[0] = r; });
  while (!gated_->waiting_at_commit()) ioc_.run_for(std::chrono::milliseconds(1));
  // In the next group: job-1, job-1 again (its second write finds it submitting: a conflict),
  // and job-2.
  boost::asio::co_spawn(ioc_, submit_job(1, &done), [&](std::exception_ptr, Result<void> r) { results[1] = r; });
  boost::asio::co_spawn(ioc_, submit_job(1, &done), [&](std::exception_ptr, Result<void> r) { results[2] = r; });
  boost::asio::co_spawn(ioc_, submit_job(2, &done), [&](std::exception_ptr, Result<void> r) { results[3] = r; });
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  ioc_.run_for(std::chrono::milliseconds(50));
  gated_->release_commits();
  while (done < 4 && std::chrono::steady_clock::now() < until)
    ioc_.run_for(std::chrono::milliseconds(1));
  ASSERT_EQ(done, 4);
  EXPECT_TRUE(results[0]);
  EXPECT_TRUE(results[1]);
  ASSERT_FALSE(results[2]);
  EXPECT_EQ(results[2].kind(), ErrorKind::conflict);
  EXPECT_TRUE(results[3]);
  EXPECT_EQ(state_on_disk(1), State::submitting);
  EXPECT_EQ(state_on_disk(2), State::submitting);
  auto h = backend_->open(OpenMode::read_only);
  EXPECT_EQ((*(*h)->history((*(*h)->find("job-1"))->id)).size(), 2u);  // one move, not two
}

TEST_P(StoreRunnerTest, AGroupWhoseCommitFailsFailsEveryWriteInIt) {
  gated_->fail_commits = true;
  std::atomic<int> done{0};
  std::vector<Result<void>> results(3);
  for (int n = 0; n < 3; ++n)
    boost::asio::co_spawn(ioc_, submit_job(n, &done),
                          [&, n](std::exception_ptr, Result<void> r) { results[n] = r; });
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done < 3 && std::chrono::steady_clock::now() < until)
    ioc_.run_for(std::chrono::milliseconds(1));
  ASSERT_EQ(done, 3);
  for (int n = 0; n < 3; ++n) {
    ASSERT_FALSE(results[n]) << n;
    EXPECT_EQ(results[n].kind(), ErrorKind::io);
    EXPECT_NE(results[n].message().find("disk full"), std::string::npos);
    EXPECT_EQ(state_on_disk(n), State::queued) << n;  // none of them happened
  }
  EXPECT_EQ(runner_->stats().commits, 0u);
}

TEST_P(StoreRunnerTest, CallersResumeOnTheirOwnThread) {
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id resumed_on;
  bool finished = false;
  boost::asio::co_spawn(
      ioc_,
      [&]() -> boost::asio::awaitable<void> {
        auto r = co_await runner_->read([](Store& s) { return s.stats(); });
        EXPECT_TRUE(r);
        resumed_on = std::this_thread::get_id();
        finished = true;
      },
      boost::asio::detached);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!finished && std::chrono::steady_clock::now() < until)
    ioc_.run_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(finished);
  EXPECT_EQ(resumed_on, loop_thread);
}

TEST_P(StoreRunnerTest, WithAReaderAReadDoesNotWaitBehindACommit) {
  // The daemon's runner: a second, read-only connection for reads. A read answers while a
  // group's commit is held, and sees what was committed when it began.
  ASSERT_NO_FATAL_FAILURE(use_reader());
  gated_->hold_commits();
  std::atomic<int> done{0};
  spawn_write(0, done);
  while (!gated_->waiting_at_commit()) ioc_.run_for(std::chrono::milliseconds(1));

  auto read_state = [&]() -> std::optional<State> {
    std::optional<State> seen;
    bool finished = false;
    boost::asio::co_spawn(
        ioc_,
        [&]() -> boost::asio::awaitable<void> {
          auto j = co_await runner_->read([](Store& s) { return s.find("job-0"); });
          if (j && *j) seen = (**j).state;
          finished = true;
        },
        boost::asio::detached);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!finished && std::chrono::steady_clock::now() < until)
      ioc_.run_for(std::chrono::milliseconds(1));
    return seen;
  };
  EXPECT_EQ(read_state(), State::queued);  // answered with the commit still held
  EXPECT_EQ(done, 0);

  gated_->release_commits();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done < 1 && std::chrono::steady_clock::now() < until)
    ioc_.run_for(std::chrono::milliseconds(1));
  ASSERT_EQ(done, 1);
  EXPECT_EQ(read_state(), State::submitting);  // a read after the commit sees it
  EXPECT_EQ(runner_->stats().reads, 2u);
}

// A busy writer waits up to 3 ms for more writes to share its commit; a reader has no commit to
// share, so a busy reader never waits: each of its reads would only be later.
TEST_P(StoreRunnerTest, OnlyTheWriterWaitsToGatherMoreWork) {
  ASSERT_NO_FATAL_FAILURE(use_reader());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);

  // The reader lane: one read held on its thread while nine queue behind it; they run as one
  // batch of nine (a busy lane), and then one more read arrives.
  std::mutex m;
  std::condition_variable cv;
  bool release = false, holding = false;
  std::atomic<int> reads{0};
  auto spawn_read = [&](bool hold) {
    boost::asio::co_spawn(
        ioc_,
        [&, hold]() -> boost::asio::awaitable<void> {
          auto r = co_await runner_->read([&, hold](Store& s) {
            if (hold) {
              std::unique_lock lock(m);
              holding = true;
              cv.notify_all();
              cv.wait(lock, [&] { return release; });
            }
            return s.find("job-0");
          });
          EXPECT_TRUE(r) << r.message();
          ++reads;
        },
        boost::asio::detached);
  };
  spawn_read(true);
  ASSERT_TRUE(run_until([&] {
    std::lock_guard lock(m);
    return holding;
  }, until));
  for (int i = 0; i < 9; ++i) spawn_read(false);
  ioc_.run_for(std::chrono::milliseconds(50));  // the nine queue behind the held read
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(run_until([&] { return reads == 10; }, until));
  spawn_read(false);
  ASSERT_TRUE(run_until([&] { return reads == 11; }, until));
  EXPECT_EQ(runner_->stats().gathers, 0u);

  // The writer lane, the same way: one write held in its commit, nine behind it, one more.
  gated_->hold_commits();
  std::atomic<int> done{0};
  spawn_write(0, done);
  ASSERT_TRUE(run_until([&] { return gated_->waiting_at_commit(); }, until));
  for (int n = 1; n <= 9; ++n) spawn_write(n, done);
  ioc_.run_for(std::chrono::milliseconds(50));
  gated_->release_commits();
  ASSERT_TRUE(run_until([&] { return done == 10; }, until));
  EXPECT_EQ(runner_->stats().largest_group, 9u);
  spawn_write(10, done);
  ASSERT_TRUE(run_until([&] { return done == 11; }, until));
  EXPECT_EQ(runner_->stats().gathers, 1u);  // the write after the group of nine
}

// A write a request slot waits for (a create's intent record: write(…, at_once)) does not
// wait for the busy writer to gather more: its group begins at once. An ordinary write after a
// busy group waits to gather.
TEST_P(StoreRunnerTest, AWriteARequestSlotWaitsForIsNotHeldToGather) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::atomic<int> done{0};
  // Jobs first..first+9 in one group of ten, behind job first's commit: the writer is busy.
  auto busy_group = [&](int first) {
    gated_->hold_commits();
    spawn_write(first, done);
    ASSERT_TRUE(run_until([&] { return gated_->waiting_at_commit(); }, until));
    for (int n = first + 1; n <= first + 10; ++n) spawn_write(n, done);
    ioc_.run_for(std::chrono::milliseconds(50));
    gated_->release_commits();
    ASSERT_TRUE(run_until([&] { return done == first + 11; }, until));
  };
  ASSERT_NO_FATAL_FAILURE(busy_group(0));
  spawn_write(11, done);
  ASSERT_TRUE(run_until([&] { return done == 12; }, until));
  EXPECT_EQ(runner_->stats().gathers, 1u);  // the ordinary write waited
  ASSERT_NO_FATAL_FAILURE(busy_group(12));
  spawn_write(23, done, /*at_once=*/true);
  ASSERT_TRUE(run_until([&] { return done == 24; }, until));
  EXPECT_EQ(runner_->stats().gathers, 1u);  // this one did not
  EXPECT_EQ(state_on_disk(23), State::submitting);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreRunnerTest, kAllStoreBackends, store_backend_name);

TEST(InlineStoreRunner, CompletesThroughTheLoopNeverInline) {
  auto dir = make_temp_dir("inline");
  auto s = Store::open((dir / "p.db").string(), OpenMode::read_write);
  ASSERT_TRUE(s);
  InlineStoreRunner runner(**s);
  boost::asio::io_context ioc;
  bool finished = false;
  boost::asio::co_spawn(
      ioc,
      [&]() -> boost::asio::awaitable<void> {
        auto r = co_await runner.read([](Store& st) { return st.stats(); });
        EXPECT_TRUE(r);
        finished = true;
      },
      boost::asio::detached);
  ioc.poll_one();  // starts the coroutine: the read runs, its completion is posted
  EXPECT_FALSE(finished);
  ioc.poll();
  EXPECT_TRUE(finished);
  EXPECT_EQ(runner.stats().reads, 1u);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace personad::testing
