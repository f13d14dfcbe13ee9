// What a listener's accept loop does after each accept: the one rule of the daemon's listeners
// (control socket, webhook, metrics). Pure: the loops await the wait it decides.
//
// An error that concerns one connection (gone before it was taken) is passed over at once. Any
// other error (out of descriptors or memory: EMFILE, ENFILE, ENOBUFS, ENOMEM) leaves the pending
// connection in the backlog, and an immediate retry fails the same way, hundreds of thousands of
// times a second: the loop waits, doubling from `initial` to `max`, and starts over after an
// accept that works.
#pragma once

#include <boost/system/error_code.hpp>

#include "personad/clock.hpp"

namespace personad {

bool accept_error_is_per_connection(const boost::system::error_code& ec);

class AcceptBackoff {
 public:
  AcceptBackoff(Millis initial, Millis max) : initial_(initial), max_(max) {}
  // After a failed accept: how long to wait before the next one (0: at once).
  Millis after_error(const boost::system::error_code& ec);
  // After an accept that worked: true when the loop had been waiting (it says so, once).
  bool after_success();
  bool waiting() const { return current_.count() != 0; }

 private:
  Millis initial_;
  Millis max_;
  Millis current_{0};
};

}  // namespace personad
