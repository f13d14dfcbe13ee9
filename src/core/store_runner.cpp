// Store runners (see store_runner.hpp).
#include "personad/store_runner.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace personad {

void InlineStoreRunner::submit(Task task) {
  task.work(store_);
  if (task.access == Access::write) {
    ++stats_.commits;
    ++stats_.writes;
    stats_.largest_group = std::max<std::uint64_t>(stats_.largest_group, 1);
  } else {
    ++stats_.reads;
  }
  task.finish();
}

struct ThreadedStoreRunner::Shared {
  std::unique_ptr<Store> store;
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Task> queue;
  bool stopping = false;
  Stats stats;
  std::thread thread;

  void loop() {
    std::vector<Task> batch;
    for (;;) {
      {
        std::unique_lock lock(mutex);
        wake.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) return;  // stopping, and everything submitted is done
        batch.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.end()));
        queue.clear();
      }
      run(batch);
      batch.clear();
    }
  }

  // Reads first, each on its own; then every write of the batch in one group. Counted before
  // the callers are told, so what they see in stats() includes their own work.
  void run(std::vector<Task>& batch) {
    std::uint64_t writes = 0;
    for (auto& t : batch) {
      if (t.access != Access::read) continue;
      t.work(*store);
      count(true, 0, false);
      t.finish();
    }
    for (auto& t : batch) writes += t.access == Access::write;
    if (writes == 0) return;
    bool committed = false;
    if (auto begun = store->begin_group(); !begun) {
      for (auto& t : batch)
        if (t.access == Access::write) t.group_failed(begun.error());
    } else {
      for (auto& t : batch)
        if (t.access == Access::write) t.work(*store);
      if (auto done = store->end_group(); !done) {
        for (auto& t : batch)
          if (t.access == Access::write) t.group_failed(done.error());
      } else {
        committed = true;
      }
    }
    count(false, writes, committed);
    for (auto& t : batch)
      if (t.access == Access::write) t.finish();
  }

  void count(bool read, std::uint64_t writes, bool committed) {
    std::lock_guard lock(mutex);
    if (read) ++stats.reads;
    if (committed) {
      ++stats.commits;
      stats.writes += writes;
      stats.largest_group = std::max(stats.largest_group, writes);
    }
  }
};

ThreadedStoreRunner::ThreadedStoreRunner(std::unique_ptr<Store> store)
    : shared_(std::make_unique<Shared>()) {
  shared_->store = std::move(store);
  shared_->thread = std::thread([s = shared_.get()] { s->loop(); });
}

ThreadedStoreRunner::~ThreadedStoreRunner() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->wake.notify_one();
  shared_->thread.join();
}

void ThreadedStoreRunner::submit(Task task) {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->queue.push_back(std::move(task));
  }
  shared_->wake.notify_one();
}

StoreRunner::Stats ThreadedStoreRunner::stats() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->stats;
}

}  // namespace personad
