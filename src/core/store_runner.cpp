// Store runners (see store_runner.hpp).
#include "personad/store_runner.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <vector>

namespace personad {

void InlineStoreRunner::submit(Task task) {
  task.work(store_);
  if (task.access != Access::read) {
    ++stats_.commits;
    ++stats_.writes;
    stats_.largest_group = std::max<std::uint64_t>(stats_.largest_group, 1);
  } else {
    ++stats_.reads;
  }
  task.finish();
}

namespace {

// One thread and one connection. The writer lane runs the reads it is given first, each on its
// own, then every write of the batch in one group; a reader lane is given reads only.
struct Lane {
  enum class Role { writer, reader };
  Lane(Role role, std::unique_ptr<Store> s, std::mutex& stats_mutex, StoreRunner::Stats& stats)
      : role(role), store(std::move(s)), stats_mutex(stats_mutex), stats(stats) {
    thread = std::thread([this] { loop(); });
    // `top -H`, `perf` and a core dump tell the lanes apart from the event loop.
    ::pthread_setname_np(thread.native_handle(),
                         role == Role::writer ? "store-writer" : "store-reader");
  }
  ~Lane() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_one();
    thread.join();
  }
  Lane(const Lane&) = delete;
  Lane& operator=(const Lane&) = delete;

  // The lane's thread is woken only when it waits for this: for any work while idle, or while
  // it gathers for a full group or a write a request slot waits for (Task::at_once). A wake-up
  // per write during a gather (each then going back to sleep) cost a futex call on both sides
  // and a context switch for every write.
  void submit(StoreRunner::Task task) {
    bool wanted = false;
    {
      std::lock_guard lock(mutex);
      at_once_queued = at_once_queued || task.at_once;
      queue.push_back(std::move(task));
      wanted = waiting == Waiting::for_work ||
               (waiting == Waiting::for_a_full_group && gathered());
    }
    if (!wanted) return;
    count_wakeup();
    wake.notify_one();
  }

  void loop() {
    std::vector<StoreRunner::Task> batch;
    std::size_t last_group = 0;
    for (;;) {
      {
        std::unique_lock lock(mutex);
        waiting = Waiting::for_work;
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and everything submitted is done
        if (gathers(last_group)) {
          count_gather();
          waiting = Waiting::for_a_full_group;
          wake.wait_for(lock, kGather, [&] { return stopping || gathered(); });
        }
        waiting = Waiting::no;
        at_once_queued = false;
        batch.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.end()));
        queue.clear();
      }
      last_group = batch.size();
      run(batch);
      batch.clear();
    }
  }
  // A busy writer gathers (PostgreSQL's commit_delay, for the same reason): after a group of
  // kBusyGroup writes or more, the next one waits up to kGather for kFullGroup writes before it
  // begins. Every commit writes each page its writes touched to the WAL and syncs it; at 10,000
  // polls a second a group of ~25 wrote ~60 pages, so larger groups share most of their pages
  // and their fsync. bench_wrk: ~5 % less CPU per request (the writer's fdatasync calls fell
  // from ~460 to ~160 a second, its WAL writes by a third). A quiet writer (a lone write)
  // commits at once; the 3 ms are nothing beside an API request, a poll interval or the slot
  // a create holds through its intent record's commit (bench_scale's intake: within noise).
  // Reads share nothing by waiting (no commit, no fsync): a reader lane never gathers, and
  // a read waits for no one (it cost each read up to 3 ms while the lane was busy).
  static constexpr std::size_t kBusyGroup = 8;
  static constexpr std::size_t kFullGroup = 128;
  static constexpr std::chrono::milliseconds kGather{3};

  // Called with `mutex` held.
  bool gathers(std::size_t last_group) const {
    return role == Role::writer && last_group >= kBusyGroup && !gathered() && !stopping;
  }

  // Called with `mutex` held: the group need not wait for more (full, or a request slot waits
  // for one of its writes).
  bool gathered() const { return queue.size() >= kFullGroup || at_once_queued; }

  // Counted before the callers are told, so what they see in stats() includes their own work.
  void run(std::vector<StoreRunner::Task>& batch) {
    using Access = StoreRunner::Access;
    for (auto& t : batch) {
      if (t.access != Access::read) continue;
      t.work(*store);
      count(true, 0, false);
      t.finish();
    }
    // The others' callers are told before the bulk group begins.
    commit_group(batch, Access::write);
    commit_group(batch, Access::bulk_write);
  }

  // Every task of `batch` with this access, in one group: one transaction, one fsync.
  void commit_group(std::vector<StoreRunner::Task>& batch, StoreRunner::Access access) {
    std::uint64_t writes = 0;
    for (auto& t : batch) writes += t.access == access;
    if (writes == 0) return;
    bool committed = false;
    if (auto begun = store->begin_group(); !begun) {
      for (auto& t : batch)
        if (t.access == access) t.group_failed(begun.error());
    } else {
      for (auto& t : batch)
        if (t.access == access) t.work(*store);
      if (auto done = store->end_group(); !done) {
        for (auto& t : batch)
          if (t.access == access) t.group_failed(done.error());
      } else {
        committed = true;
      }
    }
    count(false, writes, committed);
    for (auto& t : batch)
      if (t.access == access) t.finish();
  }

  void count_gather() {
    std::lock_guard lock(stats_mutex);
    ++stats.gathers;
  }

  void count_wakeup() {
    std::lock_guard lock(stats_mutex);
    ++stats.wakeups;
  }

  void count(bool read, std::uint64_t writes, bool committed) {
    std::lock_guard lock(stats_mutex);
    if (read) ++stats.reads;
    if (committed) {
      ++stats.commits;
      stats.writes += writes;
      stats.largest_group = std::max(stats.largest_group, writes);
    }
  }

  const Role role;
  std::unique_ptr<Store> store;
  std::mutex& stats_mutex;
  StoreRunner::Stats& stats;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<StoreRunner::Task> queue;
  bool at_once_queued = false;  // a Task::at_once write is in `queue`
  enum class Waiting { no, for_work, for_a_full_group };
  Waiting waiting = Waiting::no;  // what the lane's thread sleeps until (submit)
  bool stopping = false;
  std::thread thread;  // last: starts once everything above exists
};

}  // namespace

struct ThreadedStoreRunner::Shared {
  std::mutex stats_mutex;
  Stats stats;
  // Declared after the stats they count into; the reader goes first (it may be absent).
  std::unique_ptr<Lane> writer;
  std::unique_ptr<Lane> reader;
};

ThreadedStoreRunner::ThreadedStoreRunner(std::unique_ptr<Store> store, std::unique_ptr<Store> reader)
    : shared_(std::make_unique<Shared>()) {
  shared_->writer = std::make_unique<Lane>(Lane::Role::writer, std::move(store),
                                           shared_->stats_mutex, shared_->stats);
  if (reader)
    shared_->reader = std::make_unique<Lane>(Lane::Role::reader, std::move(reader),
                                             shared_->stats_mutex, shared_->stats);
}

ThreadedStoreRunner::~ThreadedStoreRunner() {
  // Each lane finishes the work already submitted to it.
  shared_->reader.reset();
  shared_->writer.reset();
}

void ThreadedStoreRunner::submit(Task task) {
  Lane& lane = task.access == Access::read && shared_->reader ? *shared_->reader : *shared_->writer;
  lane.submit(std::move(task));
}

StoreRunner::Stats ThreadedStoreRunner::stats() const {
  std::lock_guard lock(shared_->stats_mutex);
  return shared_->stats;
}

}  // namespace personad
