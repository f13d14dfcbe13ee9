// The API's whole list of personas, read page by page (reconcile, audit). A failed page is tried
// again on its own, on the retry backoff, never the whole listing; a permanent error (a wrong
// list_path, wrong credentials) ends the listing at once, since trying again cannot help.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "personad/clock.hpp"
#include "personad/creatify_api.hpp"
#include "personad/slot_gate.hpp"

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

// A listing shared by everyone who can use it (a restart with many creates to reconcile lists
// the API once, not once per job), never older than the caller allows.
using SharedListingResult = ApiResult<std::shared_ptr<const Listing>>;

class SharedListing {
 public:
  // `slots`: the request slots (api.max_in_flight) a listing's requests count against. Only the
  // caller that starts a listing holds one, for its pages; the callers waiting for it hold none.
  SharedListing(CreatifyApi& api, const Clock& clock, ListingOptions options,
                std::function<double()> random, SlotGate& slots);
  void update_options(ListingOptions options) { options_ = options; }

  // A listing started no earlier than `not_before`: the last successful one if it is that
  // fresh, the one in flight if it started that late, else a new one. Waiters wake once, when
  // their listing ends; a failure is shared only with those who waited for that very listing.
  // nullopt when a new listing was needed but the slots' gate is closed (the owner is stopping):
  // nothing was asked.
  boost::asio::awaitable<std::optional<SharedListingResult>> get(TimePoint not_before);
  std::uint64_t listings_started() const { return started_; }

 private:
  struct Flight;
  CreatifyApi& api_;
  const Clock& clock_;
  ListingOptions options_;
  std::function<double()> random_;
  SlotGate& slots_;
  std::shared_ptr<const Listing> last_;
  std::shared_ptr<Flight> flight_;
  std::uint64_t started_ = 0;
};

}  // namespace personad
