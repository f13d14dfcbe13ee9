// Instance lock: a second holder is refused with the first one's pid, and the lock goes away
// with its holder (the kernel releases flock on close or death).
#include "personad/instance_lock.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace personad {
namespace {

using ::testing::HasSubstr;

std::string lock_path() {
  return (std::filesystem::temp_directory_path() /
          ("personad-lock-test-" + std::to_string(::getpid()) + ".lock"))
      .string();
}

TEST(InstanceLock, SecondAcquireIsRefusedNamingThePid) {
  std::string path = lock_path();
  auto first = InstanceLock::acquire(path);
  ASSERT_TRUE(first) << first.message();
  auto second = InstanceLock::acquire(path);
  ASSERT_FALSE(second);
  EXPECT_THAT(second.message(), HasSubstr("pid " + std::to_string(::getpid())));
  EXPECT_THAT(second.message(), HasSubstr("already running"));
  first->reset();
  auto third = InstanceLock::acquire(path);
  EXPECT_TRUE(third) << third.message();
  std::filesystem::remove(path);
}

TEST(InstanceLock, KilledHolderLeavesNoStuckLock) {
  std::string path = lock_path() + ".kill";
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto lock = InstanceLock::acquire(path);
    char c = lock ? 'y' : 'n';
    (void)::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  EXPECT_TRUE(instance_lock_held(path));
  EXPECT_FALSE(InstanceLock::acquire(path));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(instance_lock_held(path));
  EXPECT_TRUE(InstanceLock::acquire(path));
  ::close(ready[0]);
  ::close(ready[1]);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace personad
