// Paging through the API's list of personas with per-page retries (see remote_list.hpp).
#include "personad/remote_list.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>

#include "personad/backoff.hpp"

namespace personad {

namespace asio = boost::asio;

asio::awaitable<void> sleep_until(const Clock& clock, TimePoint due) {
  auto ex = co_await asio::this_coro::executor;
  auto timer = clock.make_timer(ex);
  co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
      [&](auto handler) {
        // std::function needs a copyable target; the handler is move-only.
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        timer->wait_until(due, [h]() mutable { std::move (*h)(); });
      },
      asio::use_awaitable);
}

asio::awaitable<ApiResult<Listing>> fetch_listing(CreatifyApi& api, const Clock& clock,
                                                  ListingOptions options,
                                                  std::function<double()> random) {
  ApiResult<Listing> out;
  out.value.started_at = clock.now();
  std::string target;  // empty: the first page
  std::set<std::string> seen;
  for (;;) {
    if (out.value.pages >= options.max_pages) {
      out.outcome = Outcome::transient;
      out.message = "list: gave up after " + std::to_string(options.max_pages) + " pages";
      co_return out;
    }
    ApiResult<ListPage> page;
    for (int attempt = 1;; ++attempt) {
      page = co_await api.list_page(target);
      if (page.outcome != Outcome::transient || attempt >= options.page_attempts) break;
      ApiConfig retry;
      retry.retry_initial = options.retry_initial;
      retry.retry_max = options.retry_max;
      co_await sleep_until(
          clock, add_saturating(clock.now(), retry_delay(retry, attempt, page.retry_after, random())));
    }
    if (page.outcome != Outcome::ok) {
      out.outcome = page.outcome;
      out.http_status = page.http_status;
      out.retry_after = page.retry_after;
      out.message = page.message;
      if (out.value.pages > 0)
        out.message += " (page " + std::to_string(out.value.pages + 1) + " of the list)";
      co_return out;
    }
    ++out.value.pages;
    for (auto& p : page.value.items) out.value.items.push_back(std::move(p));
    if (page.value.next.empty()) {
      out.outcome = Outcome::ok;
      out.http_status = page.http_status;
      co_return out;
    }
    seen.insert(target);
    if (seen.count(page.value.next)) {
      out.outcome = Outcome::transient;
      out.message = "list: next page link loops back to " + page.value.next;
      co_return out;
    }
    target = std::move(page.value.next);
  }
}

struct SharedListing::Flight {
  TimePoint started{};
  // One per coroutine waiting for this listing: stores the result in the waiter's frame and
  // posts its resumption, once. Waiters hold no reference to the flight, so a listing that
  // never ends (the loop is torn down) leaves no cycle behind.
  std::vector<std::function<void(const SharedListingResult&)>> waiters;
};

SharedListing::SharedListing(CreatifyApi& api, const Clock& clock, ListingOptions options,
                             std::function<double()> random, SlotGate& slots)
    : api_(api), clock_(clock), options_(options), random_(std::move(random)), slots_(slots) {}

asio::awaitable<std::optional<SharedListingResult>> SharedListing::get(TimePoint not_before) {
  SlotGate::Held slot;  // taken only to start a listing, held through its pages
  for (;;) {
    if (last_ && last_->started_at >= not_before) {
      SharedListingResult r;
      r.outcome = Outcome::ok;
      r.value = last_;
      co_return r;
    }
    if (flight_) {
      slot.reset();  // a listing began while this caller waited for its slot: it waits without one
      // A listing in flight: its result if it started late enough; else wait for it to end
      // anyway (one listing at a time) and look again.
      const bool usable = flight_->started >= not_before;
      std::optional<SharedListingResult> got;
      auto ex = co_await asio::this_coro::executor;
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
          [&](auto handler) {
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            flight_->waiters.push_back([ex, h, slot = &got](const SharedListingResult& r) {
              *slot = r;
              asio::post(ex, [h] { std::move (*h)(); });
            });
          },
          asio::use_awaitable);
      if (usable && got) co_return std::move(*got);
      continue;
    }
    if (!slot) {
      slot = co_await slots_.hold();
      if (!slot) co_return std::nullopt;
      continue;  // look again: the wait may have let a listing start or end
    }
    auto flight = std::make_shared<Flight>();
    flight->started = clock_.now();
    flight_ = flight;
    ++started_;
    auto listing = co_await fetch_listing(api_, clock_, options_, random_);
    SharedListingResult r;
    r.outcome = listing.outcome;
    r.http_status = listing.http_status;
    r.retry_after = listing.retry_after;
    r.message = std::move(listing.message);
    if (listing.outcome == Outcome::ok) {
      r.value = std::make_shared<const Listing>(std::move(listing.value));
      if (!last_ || last_->started_at <= r.value->started_at) last_ = r.value;
    }
    if (flight_ == flight) flight_.reset();
    for (auto& wake : flight->waiters) wake(r);
    flight->waiters.clear();
    co_return r;
  }
}

}  // namespace personad
