// wait_readable (fd_wait.hpp): a borrowed descriptor is waited on and given back as it was.
#include "personad/fd_wait.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <optional>

#include <fcntl.h>
#include <unistd.h>

namespace personad {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

class FdWaitTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::pipe(fds_), 0); }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  std::optional<bool> wait(int fd, milliseconds limit) {
    std::optional<bool> out;
    asio::co_spawn(ioc_, wait_readable(fd, limit), [&out](std::exception_ptr e, bool r) {
      if (!e) out = r;
    });
    ioc_.run();
    ioc_.restart();
    return out;
  }
  void put(char c) { ASSERT_EQ(::write(fds_[1], &c, 1), 1); }
  int fds_[2] = {-1, -1};
  asio::io_context ioc_;
};

TEST_F(FdWaitTest, ReadableDataEndsTheWaitAndIsLeftUnread) {
  put('x');
  EXPECT_EQ(wait(fds_[0], milliseconds(60'000)), std::optional<bool>(true));
  char c = 0;
  ASSERT_EQ(::read(fds_[0], &c, 1), 1) << "the data is the owner's to read";
  EXPECT_EQ(c, 'x');
}

TEST_F(FdWaitTest, TheLimitEndsAWaitOnAQuietDescriptorWhichStaysOpenAndUsable) {
  EXPECT_EQ(wait(fds_[0], milliseconds(1)), std::optional<bool>(false));
  EXPECT_NE(::fcntl(fds_[0], F_GETFD), -1) << "never closed";
  // Registered nowhere any more: waited on again (as every loop round does), it works.
  put('y');
  EXPECT_EQ(wait(fds_[0], milliseconds(60'000)), std::optional<bool>(true));
  EXPECT_EQ(wait(fds_[0], milliseconds(60'000)), std::optional<bool>(true)) << "still unread";
}

TEST_F(FdWaitTest, NoDescriptorIsNoWait) {
  EXPECT_EQ(wait(-1, milliseconds(60'000)), std::optional<bool>(false));
}

}  // namespace
}  // namespace personad
