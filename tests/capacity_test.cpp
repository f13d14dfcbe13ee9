// Capacity preflight (capacity.hpp): the count's parsing, the gate's decisions, and the tracker
// holding queued jobs while the workspace is full — never failing them — then sending them once
// a count says there is room; a missing count endpoint turns the check off with one warning.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "personad/capacity.hpp"
#include "tracker_fixture.hpp"

namespace personad {
namespace {

using ::testing::HasSubstr;
using std::chrono::minutes;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

ApiResult<AvatarCapacity> answer(std::int64_t max, std::int64_t current) {
  ApiResult<AvatarCapacity> r;
  r.outcome = Outcome::ok;
  r.http_status = 200;
  r.value = {max, current};
  return r;
}

ApiResult<AvatarCapacity> failed(Outcome o, int status) {
  ApiResult<AvatarCapacity> r;
  r.outcome = o;
  r.http_status = status;
  r.message = "HTTP " + std::to_string(status);
  return r;
}

TEST(Capacity, ParsesTheCountAndNamesWhatIsWrong) {
  auto c = parse_capacity(boost::json::parse(R"({"max_count": 50, "current_count": 48})"));
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->max_count, 50);
  EXPECT_EQ(c->current_count, 48);
  EXPECT_FALSE(parse_capacity(boost::json::parse(R"([1, 2])")));
  EXPECT_THAT(parse_capacity(boost::json::parse(R"({"max_count": 5})")).message(),
              HasSubstr("current_count"));
  EXPECT_FALSE(parse_capacity(boost::json::parse(R"({"max_count": "5", "current_count": 1})")));
  EXPECT_FALSE(parse_capacity(boost::json::parse(R"({"max_count": -1, "current_count": 1})")));
  EXPECT_EQ(capacity_full_reason({5, 5}), "avatar capacity full (5 of 5)");
}

TEST(Capacity, GateHoldsWhileFullAndAsksAgainAfterTheRecheck) {
  CapacityGate g(true, minutes(10));
  EXPECT_TRUE(g.needs_count(kT0));
  EXPECT_FALSE(g.hold());  // nothing known: go on
  EXPECT_FALSE(g.record(answer(3, 2), kT0, g.taken()));
  EXPECT_FALSE(g.needs_count(kT0 + minutes(9)));
  EXPECT_FALSE(g.hold());
  EXPECT_EQ(g.remaining(), 1);
  EXPECT_FALSE(g.take());  // 3 of 3 now
  EXPECT_EQ(g.take(), "avatar capacity full (3 of 3)");
  EXPECT_EQ(g.hold(), "avatar capacity full (3 of 3)");
  EXPECT_EQ(g.remaining(), 0);
  EXPECT_EQ(g.next_check(kT0 + minutes(1)), kT0 + minutes(10));
  EXPECT_TRUE(g.needs_count(kT0 + minutes(10)));
  // A transient failure of the count is no news: still held, asked again later.
  EXPECT_FALSE(g.record(failed(Outcome::transient, 503), kT0 + minutes(10), g.taken()));
  EXPECT_TRUE(g.hold());
  EXPECT_FALSE(g.needs_count(kT0 + minutes(11)));
  EXPECT_FALSE(g.record(answer(3, 1), kT0 + minutes(20), g.taken()));
  EXPECT_FALSE(g.hold());
}

TEST(Capacity, PlacesTakenWhileACountIsOnItsWayAreKept) {
  CapacityGate g(true, minutes(10));
  // Two jobs ask at once; both answers say 0 of 1.
  const auto before_a = g.taken(), before_b = g.taken();
  EXPECT_FALSE(g.record(answer(1, 0), kT0, before_a));
  EXPECT_FALSE(g.take());  // a goes
  EXPECT_FALSE(g.record(answer(1, 0), kT0, before_b));  // b's answer does not know of a
  EXPECT_EQ(g.take(), "avatar capacity full (1 of 1)");
}

TEST(Capacity, MissingEndpointOrUnknownShapeTurnsTheCheckOffOnce) {
  CapacityGate g(true, minutes(10));
  auto warning = g.record(failed(Outcome::permanent, 404), kT0, 0);
  ASSERT_TRUE(warning);
  EXPECT_THAT(*warning, HasSubstr("HTTP 404"));
  EXPECT_FALSE(g.active());
  EXPECT_FALSE(g.needs_count(kT0 + minutes(100)));
  EXPECT_FALSE(g.hold());
  EXPECT_FALSE(g.remaining());
  EXPECT_FALSE(g.record(failed(Outcome::permanent, 404), kT0, g.taken()));  // said once
  CapacityGate off(false, minutes(10));
  EXPECT_FALSE(off.needs_count(kT0));
}

// The fixture's FakeApi, with a count endpoint whose answer the test sets.
class CountingApi final : public CreatifyApi {
 public:
  explicit CountingApi(CreatifyApi& inner) : inner_(inner) {}
  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& s, std::string ref) override {
    auto r = co_await inner_.create(s, std::move(ref));
    if (r.outcome == Outcome::ok) ++created;
    co_return r;
  }
  boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) override {
    co_return co_await inner_.get(std::move(id));
  }
  boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string t) override {
    co_return co_await inner_.list_page(std::move(t));
  }
  boost::asio::awaitable<ApiResult<AvatarCapacity>> count() override {
    ++counts;
    if (!capacity) co_return co_await inner_.count();  // the default: 404
    co_return answer(capacity->max_count, capacity->current_count + created);
  }
  // The workspace apart from the avatars created through this API since.
  std::optional<AvatarCapacity> capacity;
  int counts = 0;
  int created = 0;

 private:
  CreatifyApi& inner_;
};

class CapacityTrackerTest : public testing::TrackerFixture {
 protected:
  void make_counting_tracker() {
    tracker_ = std::make_unique<Tracker>(ioc_.get_executor(), *runner_, counting_, clock_, *log_,
                                         options_, [this] { return dist_(rng_); });
    ASSERT_TRUE(tracker_->start());
  }
  CountingApi counting_{api_};
};

TEST_F(CapacityTrackerTest, FullWorkspaceKeepsJobsQueuedThenSendsThemWhenThereIsRoom) {
  options_.api.capacity_recheck = Millis(60'000);
  counting_.capacity = AvatarCapacity{2, 2};
  make_counting_tracker();
  enqueue({testing::make_spec("a"), testing::make_spec("b")});
  ASSERT_TRUE(run_until([&] { return job("a").waiting_reason && job("b").waiting_reason; }));
  EXPECT_EQ(state("a"), State::queued);
  EXPECT_EQ(job("a").waiting_reason, "avatar capacity full (2 of 2)");
  EXPECT_EQ(api_.creates, 0);
  EXPECT_EQ(tracker_->capacity_remaining(), 0);
  EXPECT_THAT(log(), HasSubstr("capacity_wait"));
  // Held, never failed: still queued a few rechecks later.
  const int asked = counting_.counts;
  ASSERT_TRUE(run_until([&] { return counting_.counts >= asked + 2; }));
  EXPECT_EQ(state("a"), State::queued);
  EXPECT_EQ(api_.creates, 0);
  // Room for one more: one job goes, the other keeps waiting (the counts include it then).
  counting_.capacity = AvatarCapacity{2, 1};
  ASSERT_TRUE(run_until([&] { return api_.creates == 1 && tracker_->capacity_remaining() == 0; }));
  ASSERT_TRUE(run_until([&] { return final_state("a") || final_state("b"); }));
  const std::string sent = final_state("a") ? "a" : "b";
  const std::string held = sent == "a" ? "b" : "a";
  EXPECT_EQ(state(sent), State::done);
  EXPECT_FALSE(job(sent).waiting_reason);
  EXPECT_EQ(state(held), State::queued);
  // Room for all.
  counting_.capacity = AvatarCapacity{10, 0};
  ASSERT_TRUE(run_until([&] { return final_state(held); }));
  EXPECT_EQ(state(held), State::done);
  EXPECT_EQ(api_.creates, 2);
}

TEST_F(CapacityTrackerTest, MissingCountEndpointTurnsTheCheckOffWithOneWarning) {
  make_counting_tracker();  // no capacity set: the count answers 404
  enqueue({testing::make_spec("a"), testing::make_spec("b"), testing::make_spec("c")});
  ASSERT_TRUE(run_until([&] { return final_state("a") && final_state("b") && final_state("c"); }));
  EXPECT_EQ(state("c"), State::done);
  const std::string text = log();
  std::size_t warnings = 0;
  for (auto at = text.find("capacity_check_off"); at != std::string::npos;
       at = text.find("capacity_check_off", at + 1))
    ++warnings;
  EXPECT_EQ(warnings, 1u);
  EXPECT_FALSE(tracker_->capacity_remaining());
}

TEST_F(CapacityTrackerTest, CheckCapacityFalseNeverAsks) {
  options_.api.check_capacity = false;
  counting_.capacity = AvatarCapacity{0, 0};  // would hold everything
  make_counting_tracker();
  enqueue({testing::make_spec("a")});
  ASSERT_TRUE(run_until([&] { return final_state("a"); }));
  EXPECT_EQ(counting_.counts, 0);
  EXPECT_EQ(state("a"), State::done);
}

}  // namespace
}  // namespace personad
