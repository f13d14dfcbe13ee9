// The store as the event loop sees it: every operation awaitable, its completion posted back to
// the loop once it is durable. Two runners behind one interface:
//   - ThreadedStoreRunner (the daemon): the store works on a thread of its own, so the loop never
//     waits on the disk. Writes that arrive while a commit is in flight join the next one: one
//     transaction and one fsync for all of them. One that is refused (a conflict with an
//     operator's action) leaves the others; one that fails after it changed rows fails the
//     group (store.hpp, begin_group). A busy writer (its
//     last group held 8 writes or more) waits up to 3 ms for more before it begins the next,
//     unless a write a request slot waits for is queued (write(…, at_once)); reads never wait so.
//   - InlineStoreRunner (tests, the deterministic simulation): works on the calling thread, one
//     write a transaction, and posts the completion; nothing depends on thread timing.
// Reads run outside any group (they never see writes that are not committed yet).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "personad/store.hpp"

namespace personad {

class StoreRunner {
 public:
  // A bulk write (an intake chunk: hundreds of rows, tens of milliseconds) commits in a group
  // of its own, after the group of the other writes taken with it: a create's intent record,
  // whose request slot waits for its commit, never waits behind a chunk's rows.
  enum class Access { read, write, bulk_write };

  // One unit of work: runs on the store's thread; `finish` then runs there too and posts the
  // caller's completion to its executor. A write's `group_failed` replaces its result when the
  // group's commit fails.
  struct Task {
    Access access = Access::read;
    // A write a request slot waits for (a create's intent record): the writer does not wait to
    // gather more writes once it is queued, it begins the next group at once.
    bool at_once = false;
    std::function<void(Store&)> work;
    std::function<void(const Error&)> group_failed;
    std::function<void()> finish;
  };

  struct Stats {
    std::uint64_t commits = 0;  // transactions (groups) committed
    std::uint64_t writes = 0;   // writes in them
    std::uint64_t reads = 0;
    std::uint64_t largest_group = 0;
    std::uint64_t gathers = 0;  // groups that first waited up to 3 ms for more writes
    std::uint64_t wakeups = 0;  // a lane's thread woken by a submit (only when it waited for one)
  };

  virtual ~StoreRunner() = default;
  virtual void submit(Task task) = 0;
  virtual Stats stats() const = 0;

  // Runs `op` on the store and resumes the caller on its own executor with the result.
  template <class T>
  boost::asio::awaitable<Result<T>> run(Access access, std::function<Result<T>(Store&)> op,
                                        bool at_once = false);

  template <class F>
  auto read(F&& f) {
    using R = std::invoke_result_t<F, Store&>;
    return run<typename ResultValue<R>::type>(Access::read, std::forward<F>(f));
  }
  // `at_once`: a write that holds up a request slot (Task::at_once).
  template <class F>
  auto write(F&& f, bool at_once = false) {
    using R = std::invoke_result_t<F, Store&>;
    return run<typename ResultValue<R>::type>(Access::write, std::forward<F>(f), at_once);
  }
  template <class F>
  auto write_bulk(F&& f) {
    using R = std::invoke_result_t<F, Store&>;
    return run<typename ResultValue<R>::type>(Access::bulk_write, std::forward<F>(f));
  }

 private:
  template <class R>
  struct ResultValue;
  template <class T>
  struct ResultValue<Result<T>> {
    using type = T;
  };
};

// GCC 12 warns, wrongly, that result.emplace frees an object not on the heap when T is a
// std::vector (-Wfree-nonheap-object, a known false positive of its inliner); other compilers
// and versions are left alone.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif
template <class T>
boost::asio::awaitable<Result<T>> StoreRunner::run(Access access,
                                                   std::function<Result<T>(Store&)> op,
                                                   bool at_once) {
  namespace asio = boost::asio;
  auto ex = co_await asio::this_coro::executor;
  std::optional<Result<T>> result;
  co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [&](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        Task t;
        t.access = access;
        t.at_once = at_once;
        t.work = [&result, op = std::move(op)](Store& s) { result.emplace(op(s)); };
        t.group_failed = [&result](const Error& e) { result.emplace(e); };
        t.finish = [ex, h] { asio::post(ex, [h] { std::move (*h)(); }); };
        submit(std::move(t));
      },
      asio::use_awaitable);
  if (!result) co_return make_error(ErrorKind::internal, "store: the operation did not run");
  co_return std::move(*result);
}
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic pop
#endif

// Works on the calling thread (see above).
class InlineStoreRunner final : public StoreRunner {
 public:
  explicit InlineStoreRunner(Store& store) : store_(store) {}
  void submit(Task task) override;
  Stats stats() const override { return stats_; }

 private:
  Store& store_;
  Stats stats_;
};

// Works on a thread of its own with grouped commits (see above). With a `reader` (a second,
// read-only connection to the same database) reads run on a second thread of their own: a read
// never waits behind a group's commit (an fsync), nor a write behind a long read (a selection,
// a report). A read then sees what was committed when it began, as it does without one.
// Destroying it finishes the work already submitted and joins the threads; it must go before
// the io_context its callers run on (their completions are posted there).
class ThreadedStoreRunner final : public StoreRunner {
 public:
  explicit ThreadedStoreRunner(std::unique_ptr<Store> store, std::unique_ptr<Store> reader = nullptr);
  ~ThreadedStoreRunner() override;
  void submit(Task task) override;
  Stats stats() const override;

 private:
  struct Shared;
  std::unique_ptr<Shared> shared_;
};

}  // namespace personad
