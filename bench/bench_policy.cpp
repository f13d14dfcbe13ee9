// Figures of the poll policy: API calls per avatar and detection delay (median, p95) for an
// avatar that completes at day 1, 2, 3 or 5, computed by the real schedule code (the tracker's
// first poll from next_poll_time, every later one from decide_poll), no network and no clock.
// Policies: the old default (plain backoff), the new default (parse_config of an empty file),
// the new one with other expected_after values, and the webhook mode.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <random>

#include "bench_support.hpp"
#include "personad/backoff.hpp"
#include "personad/config.hpp"
#include "personad/poll_outcome.hpp"

namespace {

using namespace personad;
using bench::strf;

constexpr Millis kHour{3'600'000};
constexpr Millis kDay{24 * kHour};
const TimePoint kSubmitted = from_unix_ms(1'790'000'000'000);

struct Policy {
  std::string name;
  PollConfig poll;
  // Webhook mode: the callback arrives `callback_after` after the completion and the listener
  // polls at once (debounced), so the job is seen then unless a scheduled poll came first.
  std::optional<Millis> callback_after;
};

struct Life {
  std::int64_t calls = 0;  // status polls made until the completion was seen
  Millis delay{0};         // from the completion to the poll that saw it
  bool seen = false;       // false: expired first
};

// One avatar's life under `policy`: the API answers "processing" until `completion`, then
// "done"; polls follow the tracker's own decisions (decide_poll), jitter drawn from `rng`.
Life live(const Policy& policy, TimePoint completion, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  ApiConfig api;
  Job job;
  job.key = "bench";
  job.state = State::pending;
  job.remote_id = "r";
  job.remote_status = "pending";
  job.created_at = kSubmitted;
  job.submitted_at = kSubmitted;
  job.expires_at = expiry_time(policy.poll, kSubmitted);
  TimePoint next = next_poll_time(policy.poll, kSubmitted, 0, kSubmitted, unit(rng));
  std::optional<TimePoint> callback;
  if (policy.callback_after) callback = completion + *policy.callback_after;
  Life life;
  for (;;) {
    if (callback && *callback < next) next = *callback;
    ApiResult<RemotePersona> answer;
    answer.outcome = Outcome::ok;
    answer.http_status = 200;
    answer.value.id = "r";
    answer.value.is_active = next >= completion;
    answer.value.process_status = next >= completion ? "done" : "processing";
    const PollDecision d = decide_poll(job, answer, next, api, policy.poll, unit(rng));
    ++life.calls;
    if (d.verdict == PollVerdict::done) {
      life.seen = true;
      life.delay = std::chrono::duration_cast<Millis>(next - completion);
      return life;
    }
    if (d.verdict != PollVerdict::pending) return life;  // expired
    ++job.polls;
    job.remote_status = d.remote_status;
    next = d.next_at;
  }
}

std::string minutes(double ms) {
  const double m = ms / 60'000.0;
  if (m < 1) return strf("%.1f s", ms / 1000.0);
  if (m < 120) return strf("%.0f min", m);
  return strf("%.1f h", m / 60.0);
}

struct Cell {
  double calls = 0;  // mean
  double median_ms = 0;
  double p95_ms = 0;
};

// `trials` completions drawn by `draw` (a time after submission).
template <class Draw>
Cell measure(const Policy& policy, int trials, std::uint64_t seed, Draw draw) {
  std::mt19937_64 rng(seed);
  bench::Samples delays;
  double calls = 0;
  for (int i = 0; i < trials; ++i) {
    const Life life = live(policy, kSubmitted + draw(rng), rng);
    calls += static_cast<double>(life.calls);
    delays.add(static_cast<double>(life.delay.count()));
  }
  return {calls / trials, delays.percentile(50), delays.percentile(95)};
}

// Calls an avatar costs over its first 5 days when it is still not done then.
double calls_over_5_days(const Policy& policy, int trials) {
  std::mt19937_64 rng(7);
  double total = 0;
  for (int i = 0; i < trials; ++i) {
    // Completion right after day 5: every poll up to it is one of the 5 days' calls; the one
    // that sees it is not.
    total += static_cast<double>(live(policy, kSubmitted + 5 * kDay + Millis(1), rng).calls - 1);
  }
  return total / trials;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_policy: calls per avatar and detection delay of the poll policies"};
  int trials = 4000;
  bool quick = false;
  std::size_t n = 0;
  app.add_option("--trials", trials, "avatars per cell");
  app.add_flag("--quick", quick, "400 avatars per cell");
  app.add_option("--n", n, "avatars per cell (same as --trials)");
  std::string expected_after, sparse_interval;
  app.add_option("--expected-after", expected_after,
                 "also the new policy with this poll.expected_after (e.g. 36h)");
  app.add_option("--sparse-interval", sparse_interval, "... and this poll.sparse_interval");
  CLI11_PARSE(app, argc, argv);
  if (quick) trials = 400;
  if (n > 0) trials = static_cast<int>(n);

  auto parsed = parse_config("", "personad.toml");
  if (!parsed) {
    std::fprintf(stderr, "%s\n", parsed.message().c_str());
    return 1;
  }
  const PollConfig new_default = parsed->poll;
  PollConfig old_default = new_default;
  old_default.expected_after = Millis(0);  // what an empty config gave before issue 10

  std::vector<Policy> policies;
  policies.push_back({"old default (plain backoff, 1h cap)", old_default, std::nullopt});
  policies.push_back({"new default (expected_after " + format_duration(new_default.expected_after) +
                          ", sparse " + format_duration(new_default.sparse_interval) + ")",
                      new_default, std::nullopt});
  for (Millis e : {2 * kDay, 3 * kDay}) {
    PollConfig p = new_default;
    p.expected_after = e;
    policies.push_back({"new, expected_after " + format_duration(e), p, std::nullopt});
  }
  if (!expected_after.empty() || !sparse_interval.empty()) {
    PollConfig p = new_default;
    for (auto [text, field] : {std::pair{&expected_after, &p.expected_after},
                               std::pair{&sparse_interval, &p.sparse_interval}}) {
      if (text->empty()) continue;
      auto d = parse_duration(*text);
      if (!d) {
        std::fprintf(stderr, "%s\n", d.message().c_str());
        return 2;
      }
      *field = *d;
    }
    policies.push_back({"new, expected_after " + format_duration(p.expected_after) + ", sparse " +
                            format_duration(p.sparse_interval),
                        p, std::nullopt});
  }
  const PollConfig webhook = relaxed_for_webhook(new_default);
  policies.push_back({"webhook (" + format_duration(new_default.max_interval_with_webhook) +
                          " cap) + poll 1s after each callback",
                      webhook, Millis(1'000)});
  policies.push_back({"webhook, every callback lost", webhook, std::nullopt});

  std::printf("poll policies: %d avatars per cell, completion at day D ± 30 min (uniform), jitter "
              "%.0f %%, give_up_after %s\n\n",
              trials, new_default.jitter * 100, format_duration(new_default.give_up_after).c_str());
  bench::Table table({"policy", "calls/5d", "day 1: calls", "median", "p95", "day 2: calls",
                      "median", "p95", "day 3: calls", "median", "p95", "day 5: calls", "median",
                      "p95"});
  bench::Table window({"policy", "calls (mean)", "median delay", "p95 delay"});
  std::uint64_t seed = 1;
  for (const auto& policy : policies) {
    std::vector<std::string> row{policy.name, strf("%.1f", calls_over_5_days(policy, trials))};
    for (int day : {1, 2, 3, 5}) {
      const Cell c = measure(policy, trials, seed++, [day](std::mt19937_64& rng) {
        std::uniform_int_distribution<std::int64_t> offset(-1'800'000, 1'800'000);
        return day * kDay + Millis(offset(rng));
      });
      row.push_back(strf("%.1f", c.calls));
      row.push_back(minutes(c.median_ms));
      row.push_back(minutes(c.p95_ms));
    }
    table.add(std::move(row));
    const Cell w = measure(policy, trials, seed++, [](std::mt19937_64& rng) {
      std::uniform_int_distribution<std::int64_t> at(kDay.count(), 5 * kDay.count());
      return Millis(at(rng));
    });
    window.add({policy.name, strf("%.1f", w.calls), minutes(w.median_ms), minutes(w.p95_ms)});
  }
  table.print();
  std::printf("\ncompletion uniform over the documented window (day 1 to day 5):\n\n");
  window.print();
  return 0;
}
