// Single instance per database: an flock(2) on "<db>.lock", released by the kernel when the
// process dies (even by SIGKILL), so a crash never leaves a stuck lock.
#pragma once

#include <memory>
#include <string>

#include "personad/result.hpp"

namespace personad {

class InstanceLock {
 public:
  // Fails with a message naming the lock file and the holder's pid when another process holds it.
  static Result<std::unique_ptr<InstanceLock>> acquire(const std::string& lock_path);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  explicit InstanceLock(int fd) : fd_(fd) {}
  int fd_;
};

// Whether some process holds the lock now (for personactl's messages), without taking it.
bool instance_lock_held(const std::string& lock_path);

}  // namespace personad
