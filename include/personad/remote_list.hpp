// The API's whole list of personas, read page by page (reconcile, audit). A failed page is tried
// again on its own, on the retry backoff, never the whole listing; a permanent error (a wrong
// list_path, wrong credentials) ends the listing at once, since trying again cannot help.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <vector>

#include "personad/clock.hpp"
#include "personad/creatify_api.hpp"

namespace personad {

struct Listing {
  // When the first page was asked for: every create the API had stored (and lists) by then is in
  // the listing. What proves a create absent depends on this time (see reconcile.hpp).
  TimePoint started_at{};
  std::vector<RemotePersona> items;
  int pages = 0;
};

struct ListingOptions {
  int page_attempts = 4;  // tries of one page before the listing fails
  int max_pages = 10'000;
  Millis retry_initial{1'000};
  Millis retry_max{300'000};
};

// Reads every page. The result's outcome is the last page's when it fails: transient after
// page_attempts transient failures of one page, permanent/unauthorized at once.
boost::asio::awaitable<ApiResult<Listing>> fetch_listing(CreatifyApi& api, const Clock& clock,
                                                         ListingOptions options,
                                                         std::function<double()> random);

// Waits until `clock` reaches `due` (a timer of the clock: virtual time in tests).
boost::asio::awaitable<void> sleep_until(const Clock& clock, TimePoint due);

}  // namespace personad
