// Notices *.toml files written or moved into the batches directory (inotify) so a dropped batch
// is picked up without a SIGHUP; changes are debounced into one rescan.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>

#include "personad/clock.hpp"
#include "personad/result.hpp"

namespace personad {

class DirWatcher {
 public:
  // Calls `on_change` once `debounce` after the last write/move of a *.toml file in `directory`.
  static Result<std::unique_ptr<DirWatcher>> watch(boost::asio::any_io_executor ex,
                                                   const std::string& directory,
                                                   std::function<void()> on_change,
                                                   Millis debounce = Millis(250));
  ~DirWatcher();
  void stop();

 private:
  DirWatcher(boost::asio::any_io_executor ex, int fd, std::function<void()> on_change,
             Millis debounce);
  void read();
  void changed();

  boost::asio::posix::stream_descriptor stream_;
  boost::asio::steady_timer debounce_timer_;
  std::function<void()> on_change_;
  Millis debounce_;
  char buffer_[8192];
  bool stopped_ = false;
};

}  // namespace personad
