// The daemon's stream of committed transitions (remote-stage changes included: they are
// pending → pending transitions), for `personactl watch` and `wait`. Each event gets a sequence
// number; a follower asks for the events after the last one it saw and, when there are none
// yet, waits on the daemon until one comes or its wait ends (a long poll: no client-side
// polling of jobs). The feed keeps the latest `capacity` events in memory (bounded); a follower that asks
// for older ones, or names another epoch (the daemon restarted), is told `gap` and reads its
// selection again from the store: a reconnect loses nothing.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "personad/clock.hpp"
#include "personad/job.hpp"

namespace personad {

struct FeedEvent {
  std::int64_t seq = 0;
  TimePoint at{};
  std::string key;
  std::string remote_id;
  std::optional<State> from;
  State to = State::queued;
  std::string remote_status;
  std::string reason;
};

struct FeedBatch {
  std::string epoch;
  std::int64_t last_seq = 0;  // the newest event's number (0: none yet)
  bool gap = false;           // events after `after` are gone (or another epoch): read again
  std::vector<FeedEvent> events;
};

// What a follower asks: events after `after` (in `epoch`; empty: any), at most `max`, waiting up
// to `wait` for the first.
struct FeedRequest {
  std::string epoch;
  std::int64_t after = 0;
  std::size_t max = 1000;
  Millis wait{0};
};

// The answer to a request when it can be given now (events there, a gap, or no wait asked);
// nullopt: wait. Pure: the rules of the feed, tested alone.
std::optional<FeedBatch> feed_answer(const std::deque<FeedEvent>& events, const std::string& epoch,
                                     std::int64_t last_seq, const FeedRequest& request);

class EventFeed {
 public:
  // Events kept by default. Each costs ~240 B of heap with its strings (a 100,000-job intake
  // publishes 200,000), so 100,000 held 22.6 MiB for good after any big intake; 20,000 is
  // ~4.6 MiB, some 10 s of transitions at full intake speed. A follower further behind is told
  // `gap` and reads its selection from the store again: it loses nothing.
  static constexpr std::size_t kDefaultCapacity = 20'000;

  EventFeed(boost::asio::any_io_executor ex, std::string epoch,
            std::size_t capacity = kDefaultCapacity);
  ~EventFeed();
  void publish(const Job& job, const Transition& t);
  boost::asio::awaitable<FeedBatch> next(FeedRequest request);
  const std::string& epoch() const { return epoch_; }
  std::int64_t last_seq() const { return last_seq_; }
  std::size_t waiting() const { return waiters_.size(); }
  std::size_t size() const { return events_.size(); }  // events kept, at most the capacity

 private:
  boost::asio::any_io_executor ex_;
  std::string epoch_;
  std::size_t capacity_;
  std::int64_t last_seq_ = 0;
  std::deque<FeedEvent> events_;
  std::list<std::shared_ptr<boost::asio::steady_timer>> waiters_;
};

// FeedEvent as JSON: {seq, at, key, remote_id, from, to, remote_status, reason}; the batch as
// {epoch, last_seq, gap, events: […]}.
std::string feed_batch_json(const FeedBatch& batch);

}  // namespace personad
