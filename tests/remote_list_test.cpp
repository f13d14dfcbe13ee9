// fetch_listing and SharedListing on virtual time: paging, per-page retries (the failed page
// alone, on the retry backoff, Retry-After capped at retry_max), permanent errors, looping
// next links, and a listing shared by concurrent callers without a busy loop among its waiters.
#include "personad/remote_list.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <map>

namespace personad {
namespace {

namespace asio = boost::asio;
using ::testing::HasSubstr;

const TimePoint T0 = from_unix_ms(1'790'000'000'000);

// A list endpoint scripted per target ("" is the first page), counting requests per target.
// Latency is virtual: a sleep on the ManualClock, so a "slow" list costs no real time.
class ListApi final : public CreatifyApi {
 public:
  struct Fault {
    Outcome outcome = Outcome::transient;
    int http_status = 502;
    std::string message = "HTTP 502";
    std::optional<Millis> retry_after;
  };

  explicit ListApi(const ManualClock& clock) : clock_(clock) {}

  std::map<std::string, ListPage> pages;             // by target
  std::map<std::string, std::deque<Fault>> faults;   // by target, consumed before the page
  std::map<std::string, int> requests;               // by target
  std::vector<std::pair<std::string, TimePoint>> asked;  // every request: target, when
  Millis latency{0};

  // `count` pages of `per_page` personas: targets "", "?page=1", "?page=2", …
  void make_pages(int count, int per_page) {
    for (int page = 0; page < count; ++page) {
      ListPage p;
      for (int i = 0; i < per_page; ++i) {
        RemotePersona r;
        r.id = "p" + std::to_string(page) + "-" + std::to_string(i);
        p.items.push_back(r);
      }
      if (page + 1 < count) p.next = target(page + 1);
      pages[target(page)] = p;
    }
  }
  static std::string target(int page) { return page == 0 ? "" : "?page=" + std::to_string(page); }

  // When each request for `target` was made.
  std::vector<TimePoint> times_of(const std::string& target) const {
    std::vector<TimePoint> out;
    for (const auto& [t, at] : asked)
      if (t == target) out.push_back(at);
    return out;
  }

  asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec&, std::string) override {
    ADD_FAILURE() << "create is not part of a listing";
    co_return ApiResult<RemotePersona>{};
  }
  asio::awaitable<ApiResult<RemotePersona>> get(std::string) override {
    ADD_FAILURE() << "get is not part of a listing";
    co_return ApiResult<RemotePersona>{};
  }

  asio::awaitable<ApiResult<ListPage>> list_page(std::string target) override {
    ++requests[target];
    asked.emplace_back(target, clock_.now());
    if (latency > Millis(0)) co_await sleep_until(clock_, add_saturating(clock_.now(), latency));
    ApiResult<ListPage> r;
    auto& queue = faults[target];
    if (!queue.empty()) {
      Fault f = queue.front();
      queue.pop_front();
      r.outcome = f.outcome;
      r.http_status = f.http_status;
      r.message = f.message;
      r.retry_after = f.retry_after;
      co_return r;
    }
    auto it = pages.find(target);
    if (it == pages.end()) {
      ADD_FAILURE() << "no page scripted for target \"" << target << "\"";
      r.outcome = Outcome::permanent;
      r.http_status = 404;
      r.message = "no such page";
      co_return r;
    }
    r.outcome = Outcome::ok;
    r.http_status = 200;
    r.value = it->second;
    co_return r;
  }

 private:
  const ManualClock& clock_;
};

class RemoteListTest : public ::testing::Test {
 protected:
  RemoteListTest() {
    options_.page_attempts = 4;
    options_.retry_initial = Millis(1'000);
    options_.retry_max = Millis(300'000);
    shared_.update_options(options_);
  }
  // Timers still armed hold suspended coroutines: drop them while the loop is alive, so their
  // frames are destroyed through it (as the simulation's crash does).
  ~RemoteListTest() override { clock_.drop_timers(); }

  // Starts a coroutine on the loop; its result lands in the returned slot when it ends.
  template <class T>
  std::shared_ptr<std::optional<T>> spawn(asio::awaitable<T> a) {
    auto slot = std::make_shared<std::optional<T>>();
    asio::co_spawn(ioc_, std::move(a), [slot](std::exception_ptr e, T r) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          ADD_FAILURE() << "coroutine threw: " << ex.what();
        }
        return;
      }
      *slot = std::move(r);
    });
    return slot;
  }

  std::shared_ptr<std::optional<ApiResult<Listing>>> fetch() {
    return spawn(fetch_listing(api_, clock_, options_, [] { return 0.5; }));
  }
  std::shared_ptr<std::optional<SharedListingResult>> get(TimePoint not_before) {
    return spawn(got(not_before));
  }
  asio::awaitable<SharedListingResult> got(TimePoint not_before) {
    auto r = co_await shared_.get(not_before);
    EXPECT_TRUE(r) << "nothing closes the gate here";
    co_return r ? std::move(*r) : SharedListingResult{};
  }
  // shared_.get as it is: nullopt once the gate is closed.
  std::shared_ptr<std::optional<std::optional<SharedListingResult>>> get_raw(TimePoint not_before) {
    return spawn(shared_.get(not_before));
  }

  // Runs every ready handler (at most `limit` in all, counting in handlers_), without moving
  // time. Returns false when the limit was hit: handlers that keep posting each other.
  bool drain(std::size_t limit = kHandlerLimit) {
    while (handlers_ < limit) {
      ioc_.restart();
      if (ioc_.poll_one() == 0) return true;
      ++handlers_;
    }
    return false;
  }

  // Runs the loop, moving virtual time from timer to timer, until done() holds or nothing is
  // left to run. Fails the test on a busy loop.
  bool run_until(const std::function<bool()>& done) {
    for (;;) {
      if (!drain()) {
        ADD_FAILURE() << "busy loop: " << handlers_ << " handlers ran without an end";
        return false;
      }
      if (done()) return true;
      if (clock_.fire_next() == 0) return done();
    }
  }

  static constexpr std::size_t kHandlerLimit = 100'000;
  ManualClock clock_{T0};
  ListApi api_{clock_};
  ListingOptions options_;
  asio::io_context ioc_;
  SlotGate slots_{ioc_.get_executor(), 4};
  SharedListing shared_{api_, clock_, ListingOptions{}, [] { return 0.5; }, slots_};
  std::size_t handlers_ = 0;
};

std::vector<std::string> ids(const std::vector<RemotePersona>& items) {
  std::vector<std::string> out;
  for (const auto& p : items) out.push_back(p.id);
  return out;
}

// ---- fetch_listing ----

TEST_F(RemoteListTest, FetchFollowsEveryPageInOrder) {
  api_.make_pages(3, 2);
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  const auto& res = **r;
  EXPECT_EQ(res.outcome, Outcome::ok);
  EXPECT_EQ(res.value.pages, 3);
  EXPECT_EQ(res.value.started_at, T0);
  EXPECT_EQ(ids(res.value.items),
            (std::vector<std::string>{"p0-0", "p0-1", "p1-0", "p1-1", "p2-0", "p2-1"}));
  EXPECT_EQ(api_.requests, (std::map<std::string, int>{{"", 1}, {"?page=1", 1}, {"?page=2", 1}}));
}

TEST_F(RemoteListTest, StartedAtIsWhenTheFirstPageWasAskedFor) {
  api_.make_pages(2, 1);
  api_.latency = Millis(7'000);
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->value.started_at, T0);
  EXPECT_EQ(clock_.now(), T0 + Millis(14'000));
}

TEST_F(RemoteListTest, PageFailingTwiceIsRetriedAloneOnTheBackoff) {
  api_.make_pages(3, 2);
  api_.faults["?page=1"] = {ListApi::Fault{}, ListApi::Fault{}};
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::ok);
  EXPECT_EQ((*r)->value.items.size(), 6u);
  EXPECT_EQ((*r)->value.pages, 3);
  // The first page is not fetched again; the failed one three times; the rest once.
  EXPECT_EQ(api_.requests, (std::map<std::string, int>{{"", 1}, {"?page=1", 3}, {"?page=2", 1}}));
  // Retries after 1 s then 2 s (retry_initial, doubling; no jitter at random 0.5).
  EXPECT_EQ(api_.times_of("?page=1"),
            (std::vector<TimePoint>{T0, T0 + Millis(1'000), T0 + Millis(3'000)}));
}

TEST_F(RemoteListTest, PageFailingPageAttemptsTimesFailsTheListingNamingThePage) {
  api_.make_pages(3, 2);
  api_.faults["?page=1"] = std::deque<ListApi::Fault>(4, ListApi::Fault{});
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::transient);
  EXPECT_EQ((*r)->http_status, 502);
  EXPECT_EQ((*r)->message, "HTTP 502 (page 2 of the list)");
  EXPECT_EQ(api_.requests["?page=1"], 4);
  EXPECT_EQ(api_.requests.count("?page=2"), 0u);
}

TEST_F(RemoteListTest, FirstPageFailingHasNoPageNumberInTheMessage) {
  api_.make_pages(2, 1);
  api_.faults[""] = std::deque<ListApi::Fault>(4, ListApi::Fault{});
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::transient);
  EXPECT_EQ((*r)->message, "HTTP 502");
  EXPECT_EQ(api_.requests[""], 4);
}

TEST_F(RemoteListTest, PermanentErrorEndsTheListingAtOnceWithoutRetry) {
  api_.make_pages(3, 2);
  api_.faults["?page=1"] = {
      ListApi::Fault{Outcome::permanent, 404, "HTTP 404: Not found.", std::nullopt}};
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::permanent);
  EXPECT_EQ((*r)->http_status, 404);
  EXPECT_THAT((*r)->message, HasSubstr("HTTP 404: Not found."));
  EXPECT_EQ(api_.requests["?page=1"], 1);
  EXPECT_EQ(clock_.now(), T0);  // no backoff was waited
  EXPECT_EQ(clock_.armed(), 0u);
}

TEST_F(RemoteListTest, UnauthorizedEndsTheListingAtOnceWithoutRetry) {
  api_.make_pages(1, 2);
  api_.faults[""] = {ListApi::Fault{Outcome::unauthorized, 401, "HTTP 401", std::nullopt}};
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::unauthorized);
  EXPECT_EQ(api_.requests[""], 1);
  EXPECT_EQ(clock_.now(), T0);
}

TEST_F(RemoteListTest, NextLinkThatLoopsBackEndsTheListing) {
  api_.make_pages(3, 1);
  api_.pages["?page=2"].next = "?page=1";  // back to a page already read
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::transient);
  EXPECT_EQ((*r)->message, "list: next page link loops back to ?page=1");
  EXPECT_EQ(api_.requests, (std::map<std::string, int>{{"", 1}, {"?page=1", 1}, {"?page=2", 1}}));
}

TEST_F(RemoteListTest, NextLinkToItselfEndsTheListing) {
  api_.make_pages(2, 1);
  api_.pages["?page=1"].next = "?page=1";
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::transient);
  EXPECT_THAT((*r)->message, HasSubstr("loops back"));
  EXPECT_EQ(api_.requests["?page=1"], 1);
}

TEST_F(RemoteListTest, MoreThanMaxPagesEndsTheListing) {
  options_.max_pages = 2;
  api_.make_pages(3, 1);
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::transient);
  EXPECT_EQ((*r)->message, "list: gave up after 2 pages");
  EXPECT_EQ(api_.requests.count("?page=2"), 0u);
}

TEST_F(RemoteListTest, RetryAfterOnAFailedPageIsHonouredBelowRetryMax) {
  api_.make_pages(1, 1);
  api_.faults[""] = {ListApi::Fault{Outcome::transient, 429, "HTTP 429", Millis(20'000)}};
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::ok);
  EXPECT_EQ(api_.times_of(""), (std::vector<TimePoint>{T0, T0 + Millis(20'000)}));
}

TEST_F(RemoteListTest, AbsurdRetryAfterOnAFailedPageWaitsAtMostRetryMax) {
  api_.make_pages(2, 1);
  api_.faults["?page=1"] = {
      ListApi::Fault{Outcome::transient, 503, "HTTP 503", Millis(4'294'967'295LL * 1000)}};
  auto r = fetch();
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_EQ((*r)->outcome, Outcome::ok);
  auto times = api_.times_of("?page=1");
  ASSERT_EQ(times.size(), 2u);
  EXPECT_GT(times[1], times[0]);
  EXPECT_LE(times[1] - times[0], options_.retry_max);
  EXPECT_EQ(times[1] - times[0], options_.retry_max);  // the cap itself, with random 0.5
}

// ---- SharedListing ----

TEST_F(RemoteListTest, ConcurrentCallersShareOneListing) {
  api_.make_pages(2, 2);
  api_.latency = Millis(1'000);
  auto a = get(T0);
  auto b = get(T0);
  ASSERT_TRUE(run_until([&] { return a->has_value() && b->has_value(); }));
  ASSERT_EQ((*a)->outcome, Outcome::ok);
  ASSERT_EQ((*b)->outcome, Outcome::ok);
  EXPECT_EQ((*a)->value.get(), (*b)->value.get());  // the very same listing
  EXPECT_EQ((*a)->value->items.size(), 4u);
  EXPECT_EQ(api_.requests, (std::map<std::string, int>{{"", 1}, {"?page=1", 1}}));
  EXPECT_EQ(shared_.listings_started(), 1u);
}

TEST_F(RemoteListTest, CallerNeedingANewerListingWaitsForTheOneInFlightThenStartsAnother) {
  api_.make_pages(1, 1);
  api_.latency = Millis(1'000);
  auto a = get(T0);
  ASSERT_TRUE(drain());  // a's listing is in flight, its page due at T0 + 1 s
  clock_.advance(Millis(500));
  const TimePoint b_needs = clock_.now();
  auto b = get(b_needs);
  ASSERT_TRUE(drain());
  EXPECT_EQ(api_.requests[""], 1) << "b must not start a listing while a's is in flight";

  ASSERT_TRUE(run_until([&] { return a->has_value() && b->has_value(); }));
  ASSERT_EQ((*a)->outcome, Outcome::ok);
  ASSERT_EQ((*b)->outcome, Outcome::ok);
  EXPECT_EQ((*a)->value->started_at, T0);
  EXPECT_GE((*b)->value->started_at, b_needs);
  EXPECT_NE((*a)->value.get(), (*b)->value.get());
  EXPECT_EQ(shared_.listings_started(), 2u);
  // One listing at a time: b's began when a's ended.
  EXPECT_EQ(api_.times_of(""), (std::vector<TimePoint>{T0, T0 + Millis(1'000)}));
}

TEST_F(RemoteListTest, CachedListingIsReusedOnlyIfFreshEnough) {
  api_.make_pages(1, 1);
  auto first = get(T0);
  ASSERT_TRUE(run_until([&] { return first->has_value(); }));
  ASSERT_EQ((*first)->outcome, Outcome::ok);
  EXPECT_EQ(shared_.listings_started(), 1u);

  clock_.advance(Millis(10'000));
  // Fresh enough (started at T0 ≥ T0): reused, no request.
  auto reused = get(T0);
  ASSERT_TRUE(run_until([&] { return reused->has_value(); }));
  EXPECT_EQ((*reused)->value.get(), (*first)->value.get());
  EXPECT_EQ(api_.requests[""], 1);

  // Older than the caller allows: a new listing.
  auto newer = get(T0 + Millis(1));
  ASSERT_TRUE(run_until([&] { return newer->has_value(); }));
  ASSERT_EQ((*newer)->outcome, Outcome::ok);
  EXPECT_NE((*newer)->value.get(), (*first)->value.get());
  EXPECT_EQ((*newer)->value->started_at, T0 + Millis(10'000));
  EXPECT_EQ(api_.requests[""], 2);
  EXPECT_EQ(shared_.listings_started(), 2u);

  // The newer one is now the cached one, for old and new needs alike.
  auto again = get(T0 + Millis(10'000));
  ASSERT_TRUE(run_until([&] { return again->has_value(); }));
  EXPECT_EQ((*again)->value.get(), (*newer)->value.get());
  EXPECT_EQ(shared_.listings_started(), 2u);
}

TEST_F(RemoteListTest, FailedListingGoesToItsWaitersAndTheNextCallerStartsANewOne) {
  api_.make_pages(1, 1);
  api_.latency = Millis(1'000);
  api_.faults[""] = {ListApi::Fault{Outcome::permanent, 404, "HTTP 404: Not found.", std::nullopt}};
  auto a = get(T0);
  auto b = get(T0);
  ASSERT_TRUE(run_until([&] { return a->has_value() && b->has_value(); }));
  EXPECT_EQ((*a)->outcome, Outcome::permanent);
  EXPECT_EQ((*b)->outcome, Outcome::permanent);
  EXPECT_EQ((*b)->message, "HTTP 404: Not found.");
  EXPECT_FALSE((*b)->value);
  EXPECT_EQ(shared_.listings_started(), 1u);
  EXPECT_EQ(api_.requests[""], 1);

  // The failure is not cached: the next caller lists again.
  auto c = get(T0);
  ASSERT_TRUE(run_until([&] { return c->has_value(); }));
  EXPECT_EQ((*c)->outcome, Outcome::ok);
  EXPECT_EQ(shared_.listings_started(), 2u);
  EXPECT_EQ(api_.requests[""], 2);
}

TEST_F(RemoteListTest, FailureIsNotSharedWithAWaiterThatNeededANewerListing) {
  api_.make_pages(1, 1);
  api_.latency = Millis(1'000);
  api_.faults[""] = {ListApi::Fault{Outcome::permanent, 404, "HTTP 404: Not found.", std::nullopt}};
  auto a = get(T0);
  ASSERT_TRUE(drain());
  clock_.advance(Millis(500));
  auto b = get(clock_.now());
  ASSERT_TRUE(run_until([&] { return a->has_value() && b->has_value(); }));
  EXPECT_EQ((*a)->outcome, Outcome::permanent);
  EXPECT_EQ((*b)->outcome, Outcome::ok) << "b never waited for a's listing to use it";
  EXPECT_EQ(shared_.listings_started(), 2u);
}

// The busy-loop defect: every waiter woke the others, forever. With one listing in flight and
// four waiters, the loop must run a handful of handlers per waiter, however long the list takes.
TEST_F(RemoteListTest, WaitersOnASlowListingRunFewHandlers) {
  api_.make_pages(3, 2);
  api_.latency = Millis(10'000);
  std::vector<std::shared_ptr<std::optional<SharedListingResult>>> callers;
  for (int i = 0; i < 5; ++i) callers.push_back(get(T0));
  auto all_done = [&] {
    for (auto& c : callers)
      if (!c->has_value()) return false;
    return true;
  };
  ASSERT_TRUE(run_until(all_done));
  for (auto& c : callers) {
    ASSERT_EQ((*c)->outcome, Outcome::ok);
    EXPECT_EQ((*c)->value.get(), (*callers[0])->value.get());
  }
  EXPECT_EQ(shared_.listings_started(), 1u);
  EXPECT_EQ(api_.requests, (std::map<std::string, int>{{"", 1}, {"?page=1", 1}, {"?page=2", 1}}));
  EXPECT_LT(handlers_, 40u);  // 12 today: a few per caller and per page
}

TEST_F(RemoteListTest, WaitersNeedingANewerListingRunFewHandlersAndShareTheNextOne) {
  api_.make_pages(3, 2);
  api_.latency = Millis(10'000);
  auto first = get(T0);
  ASSERT_TRUE(drain());
  clock_.advance(Millis(1'000));
  std::vector<std::shared_ptr<std::optional<SharedListingResult>>> waiters;
  for (int i = 0; i < 4; ++i) waiters.push_back(get(clock_.now()));
  auto all_done = [&] {
    if (!first->has_value()) return false;
    for (auto& w : waiters)
      if (!w->has_value()) return false;
    return true;
  };
  ASSERT_TRUE(run_until(all_done));
  for (auto& w : waiters) {
    ASSERT_EQ((*w)->outcome, Outcome::ok);
    EXPECT_EQ((*w)->value.get(), (*waiters[0])->value.get()) << "the four share the second listing";
    EXPECT_GE((*w)->value->started_at, T0 + Millis(1'000));
  }
  EXPECT_EQ(shared_.listings_started(), 2u);
  EXPECT_EQ(api_.requests[""], 2);
  EXPECT_LT(handlers_, 40u);  // 18 today
}

// A listing's pages take one request slot, held by the caller that started it; the callers
// waiting for that listing hold none, so they leave the other slots to polls and creates.
TEST_F(RemoteListTest, OnlyTheCallerThatStartsAListingHoldsARequestSlot) {
  api_.make_pages(3, 2);
  api_.latency = Millis(1'000);
  std::vector<std::shared_ptr<std::optional<SharedListingResult>>> callers;
  for (int i = 0; i < 5; ++i) callers.push_back(get(T0));
  ASSERT_TRUE(drain());
  EXPECT_EQ(slots_.in_use(), 1u) << "one listing in flight, four callers waiting for it";
  EXPECT_EQ(slots_.waiting(), 0u);
  ASSERT_TRUE(run_until([&] { return callers.back()->has_value(); }));
  EXPECT_EQ(slots_.in_use(), 0u);
  EXPECT_EQ(shared_.listings_started(), 1u);
}

// With every slot taken, a caller that needs a listing waits for a slot, not for nothing: the
// listing starts when one is given back, and the callers that came meanwhile share it.
TEST_F(RemoteListTest, AListingWaitsForASlotAndIsSharedWithThoseWhoCameMeanwhile) {
  api_.make_pages(1, 1);
  std::vector<SlotGate::Held> taken;
  auto take_all = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 4; ++i) taken.push_back(co_await slots_.hold());
  };
  asio::co_spawn(ioc_, take_all(), asio::detached);
  ASSERT_TRUE(drain());
  ASSERT_EQ(slots_.in_use(), 4u);
  auto a = get(T0);
  auto b = get(T0);
  ASSERT_TRUE(drain());
  EXPECT_TRUE(api_.requests.empty()) << "no slot, no request";
  taken.pop_back();  // one slot given back
  ASSERT_TRUE(run_until([&] { return a->has_value() && b->has_value(); }));
  ASSERT_EQ((*a)->outcome, Outcome::ok);
  EXPECT_EQ((*a)->value.get(), (*b)->value.get());
  EXPECT_EQ(shared_.listings_started(), 1u);
  EXPECT_EQ(api_.requests[""], 1);
}

TEST_F(RemoteListTest, AClosedGateStartsNoListing) {
  api_.make_pages(1, 1);
  slots_.close();
  auto r = get_raw(T0);
  ASSERT_TRUE(run_until([&] { return r->has_value(); }));
  EXPECT_FALSE(**r) << "stopping: no listing, no result";
  EXPECT_TRUE(api_.requests.empty());
  EXPECT_EQ(shared_.listings_started(), 0u);
}

}  // namespace
}  // namespace personad
