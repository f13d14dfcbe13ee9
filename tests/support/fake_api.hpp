// An in-memory Creatify API for tracker tests: creates personas (with labels), walks them
// through scripted statuses on each get, and injects the faults a test asks for.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "personad/creatify_api.hpp"

namespace personad::testing {

class FakeApi : public CreatifyApi {
 public:
  struct Persona {
    RemotePersona remote;
    std::size_t step = 0;  // index into `statuses`
  };

  // Statuses a persona goes through, one per successful get (the last one sticks).
  std::vector<std::string> statuses{"pending", "processing", "reviewing", "done"};
  bool active_when_done = true;
  std::string failed_reason = "consent video does not match";
  std::string permanent_message = "creator_name: This field is required.";
  bool list_has_labels = true;
  std::size_t page_size = 0;  // 0: the whole list on one page
  std::chrono::milliseconds latency{0};  // real time per request

  // Faults for the next calls, consumed in order.
  enum class Fault { none, lost_create, unsent, unknown_not_created, permanent, unauthorized,
                     transient };
  std::deque<Fault> create_faults;
  std::deque<Fault> get_faults;
  std::deque<Fault> list_faults;

  // A buggy API: every successful create answers with this id, not the id of what it made.
  std::optional<std::string> answer_creates_with_id;

  std::map<std::string, Persona> personas;  // by id
  std::vector<std::string> order;           // creation order
  int creates = 0, gets = 0, lists = 0;
  int in_flight = 0, max_in_flight_seen = 0;
  std::vector<TimePoint> create_arrivals;  // now() as each create came in, before its latency
  std::function<TimePoint()> now = [] { return TimePoint{}; };

  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                          std::string client_ref) override {
    Guard g(*this);
    create_arrivals.push_back(now());
    co_await delay();
    ++creates;
    Fault f = take(create_faults);
    ApiResult<RemotePersona> r;
    if (f == Fault::unsent) co_return failure(Outcome::transient, "connection refused", false);
    if (f == Fault::unknown_not_created) co_return failure(Outcome::transient, "timeout", true);
    if (f == Fault::permanent)
      co_return failure(Outcome::permanent, permanent_message, true, 400);
    if (f == Fault::unauthorized) co_return failure(Outcome::unauthorized, "HTTP 401", true, 401);
    Persona p;
    p.remote.id = "remote-" + std::to_string(order.size() + 1);
    p.remote.process_status = "pending";
    p.remote.labels = labels_as_sent(spec, client_ref);
    p.remote.has_labels = true;
    p.remote.creator_name = spec.creator_name;
    p.remote.gender = spec.gender;
    p.remote.video_scene = spec.video_scene;
    p.remote.keywords = spec.keywords;
    p.remote.created_at = now();
    personas[p.remote.id] = p;
    order.push_back(p.remote.id);
    if (f == Fault::lost_create) co_return failure(Outcome::transient, "HTTP 500 after create", true, 500);
    r.outcome = Outcome::ok;
    r.http_status = 201;
    r.value = p.remote;
    if (answer_creates_with_id) r.value.id = *answer_creates_with_id;
    co_return r;
  }

  boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) override {
    Guard g(*this);
    co_await delay();
    ++gets;
    Fault f = take(get_faults);
    if (f == Fault::transient) co_return failure(Outcome::transient, "HTTP 503", true, 503);
    auto it = personas.find(id);
    if (it == personas.end()) co_return failure(Outcome::permanent, "Not found.", true, 404);
    Persona& p = it->second;
    const std::string& status = statuses[std::min(p.step, statuses.size() - 1)];
    if (p.step < statuses.size()) ++p.step;
    p.remote.process_status = status;
    p.remote.is_active = status == "done" && active_when_done;
    p.remote.failed_reason = (status == "failed" || status == "rejected") ? failed_reason : "";
    ApiResult<RemotePersona> r;
    r.outcome = Outcome::ok;
    r.http_status = 200;
    r.value = p.remote;
    co_return r;
  }

  // Pages of `page_size` personas in creation order; targets are "?page=N".
  boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string target) override {
    Guard g(*this);
    co_await delay();
    ++lists;
    Fault f = take(list_faults);
    ApiResult<ListPage> r;
    if (f == Fault::transient) {
      r.outcome = Outcome::transient;
      r.http_status = 502;
      r.message = "HTTP 502";
      co_return r;
    }
    if (f == Fault::permanent) {
      r.outcome = Outcome::permanent;
      r.http_status = 404;
      r.message = "HTTP 404: Not found.";
      co_return r;
    }
    std::size_t page = target.empty() ? 0 : std::stoul(target.substr(target.find('=') + 1));
    std::size_t size = page_size == 0 ? order.size() + 1 : page_size;
    r.outcome = Outcome::ok;
    for (std::size_t i = page * size; i < order.size() && i < (page + 1) * size; ++i) {
      RemotePersona p = personas[order[i]].remote;
      if (!list_has_labels) {
        p.labels.clear();
        p.has_labels = false;
      }
      r.value.items.push_back(p);
    }
    if ((page + 1) * size < order.size()) r.value.next = "?page=" + std::to_string(page + 1);
    co_return r;
  }

  // How many personas carry `label`.
  int count_label(const std::string& label) const {
    int n = 0;
    for (const auto& [id, p] : personas)
      for (const auto& l : p.remote.labels) n += l == label;
    return n;
  }

 private:
  struct Guard {
    explicit Guard(FakeApi& a) : api(a) {
      ++api.in_flight;
      api.max_in_flight_seen = std::max(api.max_in_flight_seen, api.in_flight);
    }
    ~Guard() { --api.in_flight; }
    FakeApi& api;
  };

  static Fault take(std::deque<Fault>& q) {
    if (q.empty()) return Fault::none;
    Fault f = q.front();
    q.pop_front();
    return f;
  }

  static ApiResult<RemotePersona> failure(Outcome o, std::string msg, bool sent, int status = 0) {
    ApiResult<RemotePersona> r;
    r.outcome = o;
    r.message = std::move(msg);
    r.sent = sent;
    r.http_status = status;
    return r;
  }

  boost::asio::awaitable<void> delay() {
    if (latency.count() == 0) co_return;
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, latency);
    co_await t.async_wait(boost::asio::use_awaitable);
  }
};

}  // namespace personad::testing
