// How good the ETA is: replays a simulated campaign (jobs submitted over a day, each passing the
// remote stages pending → processing → video_validating → reviewing → done, every stage's
// duration log-normal), and asks the real estimator (eta.hpp) at 10%, 50% and 90% of each job's
// way from submission to done, knowing only the jobs finished by then — as the daemon would.
// Prints the absolute error of eta (the median) and how often the truth fell before eta_p90,
// beside the documented window alone (what the estimate is before 20 jobs finished).
#include <CLI/CLI.hpp>
#include <cmath>
#include <map>
#include <cstdio>
#include <random>

#include "bench_support.hpp"
#include "personad/eta.hpp"

namespace {

using namespace personad;
using bench::strf;

constexpr Millis kHour{3'600'000};
const TimePoint kStart = from_unix_ms(1'790'000'000'000);

struct Stage {
  const char* name;
  double median_hours;
  double sigma;
};
// Creatify's stages; the medians add up to about 1.5 days, inside the documented 1–5 days.
const Stage kStages[] = {{"pending", 2, 0.6},
                         {"processing", 10, 0.4},
                         {"video_validating", 3, 0.5},
                         {"reviewing", 16, 0.5}};

struct Life {
  TimePoint submitted;
  std::vector<TimePoint> entered;  // of each stage
  TimePoint done;
  std::vector<Transition> history;
};

Life live(std::mt19937_64& rng, TimePoint submitted) {
  Life l;
  l.submitted = submitted;
  l.history.push_back({1, submitted, std::nullopt, State::queued, "", "batch"});
  l.history.push_back({1, submitted, State::queued, State::submitting, "", "send"});
  TimePoint at = submitted;
  for (std::size_t i = 0; i < std::size(kStages); ++i) {
    l.entered.push_back(at);
    l.history.push_back({1, at, i == 0 ? State::submitting : State::pending, State::pending,
                         kStages[i].name, "poll"});
    std::lognormal_distribution<double> d(std::log(kStages[i].median_hours), kStages[i].sigma);
    at += Millis(static_cast<std::int64_t>(d(rng) * 3600'000));
  }
  l.done = at;
  l.history.push_back({1, at, State::pending, State::done, "done", "poll"});
  return l;
}

// The job as the daemon would see it at `t` (between its submission and done).
Job seen_at(const Life& l, TimePoint t) {
  Job j;
  j.state = State::pending;
  j.submitted_at = l.submitted;
  std::size_t stage = 0;
  while (stage + 1 < l.entered.size() && l.entered[stage + 1] <= t) ++stage;
  j.remote_status = kStages[stage].name;
  j.status_since = l.entered[stage];
  j.updated_at = l.entered[stage];
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_eta: the ETA's error at 10%, 50% and 90% of the way, on a simulated campaign"};
  std::size_t n = 2'000;
  bool quick = false;
  std::uint64_t seed = 1;
  app.add_option("--n", n, "jobs in the campaign");
  app.add_flag("--quick", quick, "500 jobs");
  app.add_option("--seed", seed, "random seed");
  CLI11_PARSE(app, argc, argv);
  if (quick) n = 500;

  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> arrival(0, 24);
  std::vector<Life> lives;
  for (std::size_t i = 0; i < n; ++i)
    lives.push_back(live(rng, kStart + Millis(static_cast<std::int64_t>(arrival(rng) * 3600'000))));

  // The model as the daemon has it at t: learnt from the jobs done by then (rebuilt hourly).
  auto model_at = [&](TimePoint t) {
    std::vector<std::vector<Transition>> done;
    for (const auto& l : lives)
      if (l.done <= t) done.push_back(l.history);
    return EtaModel::from_histories(done);
  };
  std::map<std::int64_t, EtaModel> models;  // hour → model
  const EtaModel documented = EtaModel::from_histories({});

  std::printf("bench_eta: %zu jobs submitted over 24 h; stages (median h, sigma): ", n);
  for (const auto& s : kStages) std::printf("%s %.0f/%.1f  ", s.name, s.median_hours, s.sigma);
  std::printf("\nerrors in hours, |eta - done|; p90 covered: truth <= eta_p90\n\n");

  bench::Table table({"way", "observed", "median |err|", "p90 |err|", "p90 covered",
                      "documented: median |err|", "p90 covered"});
  for (double way : {0.1, 0.5, 0.9}) {
    bench::Samples err, doc_err;
    std::size_t observed = 0, covered = 0, doc_covered = 0, asked = 0;
    for (const auto& l : lives) {
      const TimePoint t = l.submitted + Millis(static_cast<std::int64_t>(
                                            way * static_cast<double>((l.done - l.submitted).count())));
      const std::int64_t hour = (t - kStart) / kHour;
      auto it = models.find(hour);
      if (it == models.end()) it = models.emplace(hour, model_at(kStart + kHour * hour)).first;
      const Job j = seen_at(l, t);
      ++asked;
      auto e = it->second.estimate(j, t);
      if (e && e->eta) {
        err.add(std::fabs(static_cast<double>((*e->eta - l.done).count())) / 3600'000.0);
        if (l.done <= *e->eta_p90) ++covered;
      }
      if (e && e->basis == "observed") ++observed;
      auto d = documented.estimate(j, t);
      if (d && d->eta) {
        doc_err.add(std::fabs(static_cast<double>((*d->eta - l.done).count())) / 3600'000.0);
        if (l.done <= *d->eta_p90) ++doc_covered;
      }
    }
    auto pct = [&](std::size_t k) { return strf("%.0f%%", 100.0 * static_cast<double>(k) / static_cast<double>(asked)); };
    table.add({strf("%.0f%%", way * 100), pct(observed), strf("%.1f", err.percentile(50)),
               strf("%.1f", err.percentile(90)), pct(covered), strf("%.1f", doc_err.percentile(50)),
               pct(doc_covered)});
  }
  table.print();
  return 0;
}
