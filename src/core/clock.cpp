// Wall and scaled clocks, and RFC 3339 conversion of persisted timestamps.
#include "personad/clock.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace personad {

using namespace std::chrono;

Millis add_saturating(Millis a, Millis b) {
  using Rep = Millis::rep;
  constexpr Rep kMax = std::numeric_limits<Rep>::max();
  constexpr Rep kMin = std::numeric_limits<Rep>::min();
  Rep x = a.count(), y = b.count();
  if (y > 0 && x > kMax - y) return Millis(kMax);
  if (y < 0 && x < kMin - y) return Millis(kMin);
  return Millis(x + y);
}

TimePoint add_saturating(TimePoint t, Millis d) {
  return TimePoint(add_saturating(t.time_since_epoch(), d));
}

Millis multiply_saturating(Millis d, double factor) {
  double v = static_cast<double>(d.count()) * factor;
  // 2^63 is not representable as a long long; stay a little below it.
  constexpr double kLimit = 9.2e18;
  if (!(v < kLimit)) return v != v ? Millis(0) : Millis(std::numeric_limits<Millis::rep>::max());
  if (v < -kLimit) return Millis(std::numeric_limits<Millis::rep>::min());
  return Millis(std::llround(v));
}

namespace {

// The real timer behind Clock::make_timer. Waits in slices of at most an hour of real time, so
// a far-away due time never overflows the steady clock's nanoseconds, and waits again when it
// wakes before the clock says the due time has come (rounding of a scaled clock).
class SteadyWakeTimer final : public WakeTimer {
 public:
  SteadyWakeTimer(const boost::asio::any_io_executor& ex, const Clock& clock)
      : state_(std::make_shared<State>(ex, clock)) {}
  // A completion already queued when the timer goes away finds a newer generation and does
  // nothing: it holds the state, never the timer object.
  ~SteadyWakeTimer() override { cancel(); }

  void wait_until(TimePoint due, std::function<void()> fn) override {
    state_->due = due;
    state_->fn = std::move(fn);
    arm(state_, ++state_->generation);
  }

  void cancel() override {
    ++state_->generation;
    state_->fn = nullptr;
    state_->timer.cancel();
  }

 private:
  struct State {
    State(const boost::asio::any_io_executor& ex, const Clock& c) : timer(ex), clock(c) {}
    boost::asio::steady_timer timer;
    const Clock& clock;
    TimePoint due{};
    std::function<void()> fn;
    std::uint64_t generation = 0;
  };

  static void arm(const std::shared_ptr<State>& st, std::uint64_t generation) {
    constexpr auto kSlice = std::chrono::hours(1);
    Millis wall = std::max(Millis(0), until(st->clock.now(), st->due));
    // real_delay saturates (a year at most), and no single wait is longer than a slice.
    steady_clock::duration real = std::min<steady_clock::duration>(st->clock.real_delay(wall), kSlice);
    if (wall > Millis(0) && real < milliseconds(1)) real = milliseconds(1);
    st->timer.expires_after(real);
    st->timer.async_wait([st, generation](const boost::system::error_code& ec) {
      if (ec || generation != st->generation) return;
      if (st->clock.now() < st->due) return arm(st, generation);
      auto fn = std::move(st->fn);
      st->fn = nullptr;
      if (fn) fn();
    });
  }

  static Millis until(TimePoint now, TimePoint due) {
    return add_saturating(due.time_since_epoch(), -now.time_since_epoch());
  }

  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<WakeTimer> Clock::make_timer(const boost::asio::any_io_executor& ex) const {
  return std::make_unique<SteadyWakeTimer>(ex, *this);
}

// A timer of a ManualClock: an entry in the clock's ordered map while armed.
class ManualTimer final : public WakeTimer {
 public:
  ManualTimer(const ManualClock& clock, boost::asio::any_io_executor ex)
      : clock_(clock), ex_(std::move(ex)), id_(clock.next_timer_id_++) {}
  ~ManualTimer() override { cancel(); }

  void wait_until(TimePoint due, std::function<void()> fn) override {
    cancel();
    key_ = ManualClock::Key{due, clock_.next_seq_++};
    clock_.timers_[*key_] = ManualClock::Armed{ex_, std::move(fn), id_};
  }

  void cancel() override {
    if (!key_) return;
    auto it = clock_.timers_.find(*key_);
    if (it != clock_.timers_.end() && it->second.timer_id == id_) clock_.timers_.erase(it);
    key_.reset();
  }

 private:
  const ManualClock& clock_;
  boost::asio::any_io_executor ex_;
  std::uint64_t id_;
  std::optional<ManualClock::Key> key_;
};

std::unique_ptr<WakeTimer> ManualClock::make_timer(const boost::asio::any_io_executor& ex) const {
  return std::make_unique<ManualTimer>(*this, ex);
}

std::optional<TimePoint> ManualClock::next_timer() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first.first;
}

std::size_t ManualClock::fire_next() {
  auto next = next_timer();
  if (!next) return 0;
  if (*next > now_) now_ = *next;
  return fire_due();
}

std::size_t ManualClock::fire_due() {
  std::size_t n = 0;
  while (!timers_.empty() && timers_.begin()->first.first <= now_) {
    Armed a = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    boost::asio::post(a.ex, std::move(a.fn));
    ++n;
  }
  return n;
}

TimePoint SystemClock::now() const { return time_point_cast<milliseconds>(system_clock::now()); }

steady_clock::duration SystemClock::real_delay(Millis wall) const {
  // Millis → nanoseconds overflows beyond ~292 years; no timer needs to wait a year at once.
  return std::min(wall, Millis(hours(24 * 365)));
}

ScaledClock::ScaledClock(double scale, TimePoint start)
    : scale_(scale > 0 ? scale : 1.0), start_(start), real_start_(steady_clock::now()) {}

TimePoint ScaledClock::now() const {
  auto real = duration<double, std::milli>(steady_clock::now() - real_start_).count();
  return start_ + Millis(static_cast<std::int64_t>(real * scale_));
}

steady_clock::duration ScaledClock::real_delay(Millis wall) const {
  double ms = static_cast<double>(wall.count()) / scale_;
  // Beyond a year of real time the steady clock's nanoseconds would be close to overflowing.
  if (!(ms < 365.0 * 24 * 3600 * 1000)) return duration_cast<steady_clock::duration>(hours(24 * 365));
  return duration_cast<steady_clock::duration>(duration<double, std::milli>(ms));
}

std::int64_t to_unix_ms(TimePoint t) { return t.time_since_epoch().count(); }

TimePoint from_unix_ms(std::int64_t ms) { return TimePoint(Millis(ms)); }

TimePoint floor_to(TimePoint t, Millis step) {
  const std::int64_t ms = to_unix_ms(t), n = step.count();
  return n > 0 ? from_unix_ms(ms / n * n) : t;
}

std::string format_rfc3339(TimePoint t) {
  auto day = floor<days>(t);
  year_month_day ymd{day};
  hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()),
                int(hms.subseconds().count()));
  return buf;
}

namespace {

// Reads exactly `n` digits at `pos`; advances pos.
bool read_digits(std::string_view s, std::size_t& pos, int n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || s[pos] != c) return false;
  ++pos;
  return true;
}

}  // namespace

std::optional<TimePoint> parse_rfc3339(std::string_view s) {
  std::size_t pos = 0;
  int y, mo, d, h, mi, sec;
  if (!read_digits(s, pos, 4, y) || !expect(s, pos, '-') || !read_digits(s, pos, 2, mo) ||
      !expect(s, pos, '-') || !read_digits(s, pos, 2, d))
    return std::nullopt;
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')) return std::nullopt;
  ++pos;
  if (!read_digits(s, pos, 2, h) || !expect(s, pos, ':') || !read_digits(s, pos, 2, mi) ||
      !expect(s, pos, ':') || !read_digits(s, pos, 2, sec))
    return std::nullopt;
  int ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i) ms *= 10;
  }
  int offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!read_digits(s, pos, 2, oh) || !expect(s, pos, ':') || !read_digits(s, pos, 2, om))
      return std::nullopt;
    offset_min = sign * (oh * 60 + om);
  } else if (pos != s.size()) {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  year_month_day ymd{year{y}, month{unsigned(mo)}, day{unsigned(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{ms} -
           minutes{offset_min};
  return time_point_cast<milliseconds>(t);
}

}  // namespace personad
