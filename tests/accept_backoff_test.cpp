// The accept loops' error rule: per-connection errors go on at once, descriptor exhaustion waits,
// doubling to the cap, and starts over after an accept that works.
#include "personad/accept_backoff.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>

namespace personad {
namespace {

namespace asio = boost::asio;

TEST(AcceptBackoff, ErrorsOfOneConnectionGoOnAtOnce) {
  AcceptBackoff b(Millis{100}, Millis{1'000});
  EXPECT_EQ(b.after_error(asio::error::connection_aborted), Millis{0});
  EXPECT_EQ(b.after_error(asio::error::would_block), Millis{0});
  EXPECT_FALSE(b.waiting());
  EXPECT_FALSE(b.after_success());
}

TEST(AcceptBackoff, OutOfDescriptorsWaitsDoublingToTheCapThenStartsOver) {
  AcceptBackoff b(Millis{100}, Millis{1'000});
  const boost::system::error_code emfile = asio::error::no_descriptors;
  EXPECT_EQ(b.after_error(emfile), Millis{100});
  EXPECT_EQ(b.after_error(emfile), Millis{200});
  EXPECT_EQ(b.after_error(emfile), Millis{400});
  EXPECT_EQ(b.after_error(emfile), Millis{800});
  EXPECT_EQ(b.after_error(emfile), Millis{1'000});
  EXPECT_EQ(b.after_error(emfile), Millis{1'000});
  EXPECT_TRUE(b.waiting());
  EXPECT_TRUE(b.after_success());
  EXPECT_FALSE(b.after_success());
  EXPECT_EQ(b.after_error(asio::error::no_buffer_space), Millis{100});
}

TEST(AcceptBackoff, AZeroInitialWaitStillWaits) {
  AcceptBackoff b(Millis{0}, Millis{0});
  EXPECT_GT(b.after_error(asio::error::no_descriptors), Millis{0});
}

}  // namespace
}  // namespace personad
