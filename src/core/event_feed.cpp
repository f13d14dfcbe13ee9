// The stream of committed transitions (see event_feed.hpp).
#include "personad/event_feed.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "personad/job_json.hpp"

namespace personad {

namespace asio = boost::asio;
namespace json = boost::json;

std::optional<FeedBatch> feed_answer(const std::deque<FeedEvent>& events, const std::string& epoch,
                                     std::int64_t last_seq, const FeedRequest& request) {
  FeedBatch b;
  b.epoch = epoch;
  b.last_seq = last_seq;
  const bool other_epoch = !request.epoch.empty() && request.epoch != epoch;
  const std::int64_t oldest = events.empty() ? last_seq + 1 : events.front().seq;
  if (other_epoch || request.after > last_seq || request.after + 1 < oldest) {
    b.gap = true;
    return b;
  }
  if (request.after < last_seq) {
    // Sequence numbers are consecutive: the first wanted event sits at a known index.
    auto i = static_cast<std::size_t>(request.after + 1 - oldest);
    for (; i < events.size() && b.events.size() < std::max<std::size_t>(request.max, 1); ++i)
      b.events.push_back(events[i]);
    return b;
  }
  if (request.wait.count() <= 0) return b;
  return std::nullopt;
}

EventFeed::EventFeed(asio::any_io_executor ex, std::string epoch, std::size_t capacity)
    : ex_(std::move(ex)), epoch_(std::move(epoch)), capacity_(std::max<std::size_t>(capacity, 1)) {}

EventFeed::~EventFeed() {
  for (auto& w : waiters_) w->cancel();
}

void EventFeed::publish(const Job& job, const Transition& t) {
  FeedEvent e;
  e.seq = ++last_seq_;
  e.at = t.at;
  e.key = job.key;
  e.remote_id = job.remote_id.value_or("");
  e.from = t.from;
  e.to = t.to;
  e.remote_status = t.remote_status;
  e.reason = t.reason;
  events_.push_back(std::move(e));
  while (events_.size() > capacity_) events_.pop_front();
  for (auto& w : waiters_) w->cancel();  // wakes every follower waiting in next()
}

// (No temporaries in co_return, no braced initialisers across a co_await: see "GCC 12 and
// coroutines" in docs/design.md.)
asio::awaitable<FeedBatch> EventFeed::next(FeedRequest request) {
  std::optional<FeedBatch> answer = feed_answer(events_, epoch_, last_seq_, request);
  if (!answer) {
    auto timer = std::make_shared<asio::steady_timer>(ex_, request.wait);
    auto it = waiters_.insert(waiters_.end(), timer);
    boost::system::error_code ec;
    co_await timer->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    waiters_.erase(it);
    request.wait = Millis(0);
    answer = feed_answer(events_, epoch_, last_seq_, request);
  }
  FeedBatch batch = std::move(*answer);
  co_return batch;
}

std::string feed_batch_json(const FeedBatch& batch) {
  json::array events;
  events.reserve(batch.events.size());
  for (const auto& e : batch.events) {
    json::object o;
    o["seq"] = e.seq;
    o["at"] = format_rfc3339(e.at);
    o["key"] = e.key;
    o["remote_id"] = e.remote_id.empty() ? json::value(nullptr) : json::value(e.remote_id);
    o["from"] = e.from ? json::value(to_string(*e.from)) : json::value(nullptr);
    o["to"] = to_string(e.to);
    o["remote_status"] = e.remote_status.empty() ? json::value(nullptr) : json::value(e.remote_status);
    o["reason"] = e.reason;
    events.push_back(std::move(o));
  }
  json::object b;
  b["epoch"] = batch.epoch;
  b["last_seq"] = batch.last_seq;
  b["gap"] = batch.gap;
  b["events"] = std::move(events);
  json::value v(std::move(b));
  make_valid_utf8(v);
  return json::serialize(v);
}

}  // namespace personad
