// inotify watch of the batches directory (see dir_watch.hpp).
#include "personad/dir_watch.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace personad {

namespace asio = boost::asio;

Result<std::unique_ptr<DirWatcher>> DirWatcher::watch(asio::any_io_executor ex,
                                                      const std::string& directory,
                                                      std::function<void()> on_change,
                                                      Millis debounce) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return make_error(std::string("inotify: ") + std::strerror(errno));
  if (::inotify_add_watch(fd, directory.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    int err = errno;
    ::close(fd);
    return make_error("cannot watch " + directory + ": " + std::strerror(err));
  }
  std::unique_ptr<DirWatcher> w(new DirWatcher(ex, fd, std::move(on_change), debounce));
  w->read();
  return w;
}

DirWatcher::DirWatcher(asio::any_io_executor ex, int fd, std::function<void()> on_change,
                       Millis debounce)
    : stream_(ex, fd), debounce_timer_(ex), on_change_(std::move(on_change)), debounce_(debounce) {}

DirWatcher::~DirWatcher() { stop(); }

void DirWatcher::stop() {
  stopped_ = true;
  boost::system::error_code ec;
  stream_.close(ec);
  debounce_timer_.cancel();
}

void DirWatcher::read() {
  stream_.async_read_some(asio::buffer(buffer_), [this](boost::system::error_code ec,
                                                        std::size_t n) {
    if (ec || stopped_) return;
    bool relevant = false;
    for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buffer_ + off);
      std::string_view name(ev->len ? ev->name : "");
      name = name.substr(0, name.find('\0'));
      if (name.size() > 5 && name.substr(name.size() - 5) == ".toml" && name.front() != '.')
        relevant = true;
      off += sizeof(inotify_event) + ev->len;
    }
    if (relevant) changed();
    read();
  });
}

void DirWatcher::changed() {
  // A file written in several steps closes once per step; wait for quiet, then rescan once.
  debounce_timer_.expires_after(debounce_);
  debounce_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopped_) on_change_();
  });
}

}  // namespace personad
