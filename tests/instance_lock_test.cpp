// Instance lock: a second holder is refused with the first one's pid, the lock goes away with its
// holder (the kernel releases flock on close or death), and every path reaching the same
// database (a symlinked file or directory) takes the same lock.
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

class DatabaseLock : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("personad-dblock-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "real");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(DatabaseLock, MissingDatabaseIsCreatedEmptyOrReportedNotFound) {
  std::string db = (dir_ / "real" / "p.db").string();
  auto absent = database_lock_path(db, false);
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.kind(), ErrorKind::not_found);
  EXPECT_FALSE(std::filesystem::exists(db));
  EXPECT_FALSE(database_lock_held(db));
  auto made = database_lock_path(db, true);
  ASSERT_TRUE(made) << made.message();
  EXPECT_EQ(*made, std::filesystem::canonical(db).string() + ".lock");
  EXPECT_EQ(std::filesystem::file_size(db), 0u);
}

TEST_F(DatabaseLock, SymlinkedFileTakesTheSameLock) {
  std::string db = (dir_ / "real" / "p.db").string();
  std::filesystem::create_symlink(db, dir_ / "link.db");
  auto first = InstanceLock::acquire_for_database(db);
  ASSERT_TRUE(first) << first.message();
  std::string link = (dir_ / "link.db").string();
  EXPECT_EQ(*database_lock_path(link, false), *database_lock_path(db, false));
  EXPECT_TRUE(database_lock_held(link));
  auto second = InstanceLock::acquire_for_database(link);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.kind(), ErrorKind::conflict);
  EXPECT_THAT(second.message(), HasSubstr("already running"));
  first->reset();
  EXPECT_FALSE(database_lock_held(link));
  EXPECT_TRUE(InstanceLock::acquire_for_database(link));
}

TEST_F(DatabaseLock, SymlinkedDirectoryTakesTheSameLock) {
  std::filesystem::create_directory_symlink(dir_ / "real", dir_ / "alias");
  std::string via_alias = (dir_ / "alias" / "p.db").string();
  // Created through the alias: the file lands in the real directory, the lock beside it.
  auto first = InstanceLock::acquire_for_database(via_alias);
  ASSERT_TRUE(first) << first.message();
  EXPECT_TRUE(std::filesystem::exists(dir_ / "real" / "p.db.lock"));
  std::string real = (dir_ / "real" / "p.db").string();
  EXPECT_TRUE(database_lock_held(real));
  EXPECT_FALSE(InstanceLock::acquire_for_database(real));
  // A relative path with ".." reaches it too.
  std::string dotted = (dir_ / "alias" / ".." / "real" / "p.db").string();
  EXPECT_FALSE(InstanceLock::acquire_for_database(dotted));
}

}  // namespace
}  // namespace personad
