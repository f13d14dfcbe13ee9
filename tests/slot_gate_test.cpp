// SlotGate: at most `limit` holders, first come first served, and a close that wakes every
// waiter empty-handed.
#include "personad/slot_gate.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <vector>

namespace personad {
namespace {

namespace asio = boost::asio;
using ::testing::ElementsAre;

class SlotGateTest : public ::testing::Test {
 protected:
  // Coroutine `n` takes a slot (or learns the gate closed) and keeps what it got.
  void enter(SlotGate& gate, int n) {
    asio::co_spawn(
        ioc_,
        [this, &gate, n]() -> asio::awaitable<void> {
          auto held = co_await gate.hold();
          (held ? entered_ : turned_away_).push_back(n);
          if (held) held_.emplace_back(n, std::move(held));
        },
        asio::detached);
  }
  void settle() {
    ioc_.restart();
    ioc_.poll();
  }
  void give_back(int n) {
    for (auto& [who, held] : held_)
      if (who == n) held.reset();
  }

  asio::io_context ioc_;
  std::vector<int> entered_, turned_away_;
  std::vector<std::pair<int, SlotGate::Held>> held_;
};

TEST_F(SlotGateTest, AtMostTheLimitHoldAndWaitersEnterInTheOrderTheyCame) {
  SlotGate gate(ioc_.get_executor(), 2);
  for (int n = 0; n < 5; ++n) enter(gate, n);
  settle();
  EXPECT_THAT(entered_, ElementsAre(0, 1));
  EXPECT_EQ(gate.in_use(), 2u);
  EXPECT_EQ(gate.waiting(), 3u);

  give_back(1);
  settle();
  EXPECT_THAT(entered_, ElementsAre(0, 1, 2));
  EXPECT_EQ(gate.in_use(), 2u);

  gate.set_limit(4);  // a larger limit lets waiters in at once
  settle();
  EXPECT_THAT(entered_, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(gate.in_use(), 4u);
  EXPECT_EQ(gate.waiting(), 0u);
}

TEST_F(SlotGateTest, AGivenBackSlotGoesToTheOldestWaiterNotToANewcomer) {
  SlotGate gate(ioc_.get_executor(), 1);
  enter(gate, 0);
  enter(gate, 1);
  settle();
  give_back(0);  // granted to 1, which has not run yet
  enter(gate, 2);
  settle();
  EXPECT_THAT(entered_, ElementsAre(0, 1));
  EXPECT_EQ(gate.waiting(), 1u);
}

TEST_F(SlotGateTest, ASmallerLimitLetsNoOneInUntilEnoughAreGivenBack) {
  SlotGate gate(ioc_.get_executor(), 3);
  for (int n = 0; n < 4; ++n) enter(gate, n);
  settle();
  gate.set_limit(1);
  give_back(0);
  give_back(1);
  settle();
  EXPECT_THAT(entered_, ElementsAre(0, 1, 2));  // 2 still holds one: at the new limit
  give_back(2);
  settle();
  EXPECT_THAT(entered_, ElementsAre(0, 1, 2, 3));
}

TEST_F(SlotGateTest, CloseTurnsEveryWaiterAndEveryLaterCallerAway) {
  SlotGate gate(ioc_.get_executor(), 1);
  for (int n = 0; n < 3; ++n) enter(gate, n);
  settle();
  EXPECT_FALSE(gate.closed());
  gate.close();
  EXPECT_TRUE(gate.closed());
  enter(gate, 3);
  settle();
  EXPECT_THAT(entered_, ElementsAre(0));
  EXPECT_THAT(turned_away_, ElementsAre(1, 2, 3));
  give_back(0);  // lets no one in
  EXPECT_EQ(gate.in_use(), 0u);
}

TEST_F(SlotGateTest, AHeldSlotMayOutliveItsGate) {
  // A suspended coroutine destroyed after the gate's owner gives its slot back to nothing.
  auto gate = std::make_unique<SlotGate>(ioc_.get_executor(), 1);
  enter(*gate, 0);
  enter(*gate, 1);
  settle();
  gate.reset();
  settle();
  EXPECT_THAT(turned_away_, ElementsAre(1));
  give_back(0);  // no use after free (the sanitizer build checks)
  EXPECT_THAT(entered_, ElementsAre(0));
}

}  // namespace
}  // namespace personad
