// Runs a test with no file descriptor left to the process: the limit lowered to at most 512
// (so filling it is quick), every descriptor up to it taken; both given back by release() or
// at the end of the scope.
#pragma once
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace personad::testing {

class DescriptorExhaustion {
 public:
  DescriptorExhaustion() {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) return;
    rlimit low = saved_;
    low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 512);
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) return;
    limited_ = true;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler_.push_back(fd);
    error_ = errno;
  }
  ~DescriptorExhaustion() { release(); }
  DescriptorExhaustion(const DescriptorExhaustion&) = delete;
  DescriptorExhaustion& operator=(const DescriptorExhaustion&) = delete;

  // Whether the limit could be lowered (the test cannot run otherwise).
  bool active() const { return limited_; }
  // errno of the open that found no descriptor left: EMFILE.
  int error() const { return error_; }

  void release() {
    for (int fd : filler_) ::close(fd);
    filler_.clear();
    if (limited_) ::setrlimit(RLIMIT_NOFILE, &saved_);
    limited_ = false;
  }

 private:
  rlimit saved_{};
  bool limited_ = false;
  int error_ = 0;
  std::vector<int> filler_;
};

}  // namespace personad::testing
