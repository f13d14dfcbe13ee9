// Measures the SQLite store: enqueue of a whole batch, reads (load_active, stats, find, get),
// fsync'd commits (apply, update) and what synchronous=NORMAL or grouped commits would give.
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <type_traits>

#include "bench_support.hpp"
#include "personad/store.hpp"

namespace {

using namespace personad;
using bench::grouped;
using bench::strf;

const TimePoint kStart = from_unix_ms(1'790'000'000'000);

std::unique_ptr<Store> open_store(const std::filesystem::path& db) {
  auto s = Store::open(db.string(), OpenMode::read_write);
  if (!s) {
    std::fprintf(stderr, "bench_store: %s\n", s.message().c_str());
    std::exit(1);
  }
  return std::move(*s);
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "bench_store: %s: %s\n", what, r.message().c_str());
    std::exit(1);
  }
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

// Median of `runs` timings of `f`, in milliseconds: one slow run (a page cache miss, a
// neighbour's build) should not move the figure.
template <class F>
double median_ms(int runs, F&& f) {
  bench::Samples s;
  for (int i = 0; i < runs; ++i) {
    bench::Stopwatch w;
    f();
    s.add(w.seconds() * 1e3);
  }
  return s.percentile(50);
}

// Latency of a lookup repeated `count` times on random jobs, in µs.
template <class F>
bench::Samples lookups(std::size_t jobs, std::size_t count, F&& lookup) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::size_t> pick(0, jobs - 1);
  bench::Samples s;
  s.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t j = pick(rng);
    bench::Stopwatch w;
    lookup(j);
    s.add(w.micros());
  }
  return s;
}

// The change a status poll commits: pending → pending with a new process_status. This is the
// commonest transition of a job's life (every status change is one).
const char* const kStatuses[] = {"processing", "voice_creating", "video_validating",
                                 "crop_and_matte", "reviewing"};

void next_poll_result(Job& job, std::size_t op) {
  job.state = State::pending;
  if (!job.remote_id) job.remote_id = "remote-" + job.client_ref;
  job.remote_status = kStatuses[op % std::size(kStatuses)];
  job.updated_at = kStart + Millis(static_cast<std::int64_t>(op));
  job.next_poll_at = job.updated_at + Millis(300'000);
  ++job.polls;
}

struct Rate {
  std::size_t ops = 0;
  double seconds = 0;
  bench::Samples latency;  // µs per op
};

// Runs `op(i)` until `budget` seconds have passed (at least 50 times).
template <class F>
Rate time_boxed(double budget, F&& op) {
  Rate r;
  bench::Stopwatch total;
  while (r.ops < 50 || total.seconds() < budget) {
    bench::Stopwatch w;
    op(r.ops);
    r.latency.add(w.micros());
    ++r.ops;
  }
  r.seconds = total.seconds();
  return r;
}

std::vector<std::string> rate_row(std::string name, Rate& r, std::size_t per_op = 1) {
  const double n = static_cast<double>(r.ops * per_op);
  return {std::move(name), grouped(n / r.seconds), strf("%.0f", r.latency.percentile(50)),
          strf("%.0f", r.latency.percentile(99)), strf("%.0f", r.latency.percentile(100))};
}

// ---- The same write through the bare C API --------------------------------------------------

// One connection with the statements an apply runs, prepared once, so the only difference from
// Store::apply is the store's own work (checks, binding helpers) and the synchronous setting.
class RawWriter {
 public:
  RawWriter(const std::filesystem::path& db, const char* synchronous) {
    check(sqlite3_open_v2(db.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), "open");
    exec("PRAGMA busy_timeout = 5000");
    exec("PRAGMA foreign_keys = ON");
    exec(std::string("PRAGMA synchronous = ") + synchronous);
    begin_ = prepare("BEGIN IMMEDIATE");
    commit_ = prepare("COMMIT");
    update_ = prepare(
        "UPDATE jobs SET state = ?3, remote_id = ?4, remote_status = ?5, failed_reason = ?6, "
        "submitted_at = ?7, updated_at = ?8, next_poll_at = ?9, polls = ?10, attempts = ?11, "
        "errors = ?12, submitting_since = ?13, needs_operator = ?14, send_unknown = ?15, "
        "last_sent_at = ?16, expires_at = ?17, client_ref = ?18 WHERE id = ?1 AND key = ?2");
    insert_ = prepare(
        "INSERT INTO transitions (job_id, at, from_state, to_state, remote_status, reason) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  }
  ~RawWriter() {
    for (auto* s : {begin_, commit_, update_, insert_}) sqlite3_finalize(s);
    sqlite3_close_v2(db_);
  }
  RawWriter(const RawWriter&) = delete;
  RawWriter& operator=(const RawWriter&) = delete;

  // `jobs` as one transaction: the row update and its transition for each.
  void apply(const std::vector<const Job*>& jobs, const std::string& reason) {
    step(begin_);
    for (const Job* job : jobs) {
      bind_text(update_, 2, job->key);
      sqlite3_bind_int64(update_, 1, job->id);
      bind_text(update_, 3, std::string(to_string(job->state)));
      bind_text(update_, 4, *job->remote_id);
      bind_text(update_, 5, *job->remote_status);
      sqlite3_bind_null(update_, 6);
      sqlite3_bind_null(update_, 7);
      sqlite3_bind_int64(update_, 8, to_unix_ms(job->updated_at));
      sqlite3_bind_int64(update_, 9, to_unix_ms(*job->next_poll_at));
      sqlite3_bind_int64(update_, 10, job->polls);
      sqlite3_bind_int64(update_, 11, job->attempts);
      sqlite3_bind_int64(update_, 12, job->errors);
      for (int i : {13, 16, 17}) sqlite3_bind_null(update_, i);
      sqlite3_bind_int64(update_, 14, 0);
      sqlite3_bind_int64(update_, 15, 0);
      bind_text(update_, 18, job->client_ref);
      step(update_);
      sqlite3_bind_int64(insert_, 1, job->id);
      sqlite3_bind_int64(insert_, 2, to_unix_ms(job->updated_at));
      bind_text(insert_, 3, "pending");
      bind_text(insert_, 4, "pending");
      bind_text(insert_, 5, *job->remote_status);
      bind_text(insert_, 6, reason);
      step(insert_);
    }
    step(commit_);
  }

 private:
  void check(int rc, const char* what) {
    if (rc == SQLITE_OK || rc == SQLITE_DONE) return;
    std::fprintf(stderr, "bench_store: raw %s: %s\n", what, db_ ? sqlite3_errmsg(db_) : "");
    std::exit(1);
  }
  void exec(const std::string& sql) { check(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), "exec"); }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    check(sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr), "prepare");
    return s;
  }
  void step(sqlite3_stmt* s) {
    check(sqlite3_step(s), "step");
    sqlite3_reset(s);
  }
  static void bind_text(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text64(s, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt *begin_ = nullptr, *commit_ = nullptr, *update_ = nullptr, *insert_ = nullptr;
};

// ---- The runs -------------------------------------------------------------------------------

struct Options {
  std::vector<std::size_t> sizes{1'000, 10'000, 100'000};
  std::size_t commit_jobs = 10'000;  // jobs in the database during the commit benchmarks
  double seconds = 3.0;              // time box of each commit benchmark
  std::filesystem::path dir = std::filesystem::temp_directory_path();
};

void intake_and_reads(const Options& o) {
  std::printf("\n== Intake and reads, by number of jobs in the database ==\n");
  bench::Table t({"jobs", "enqueue (1 call)", "enqueue rows/s", "for_each_active", "its memory",
                  "load_active", "its memory", "stats()", "find p50/p99", "get p50/p99",
                  "bytes/job"});
  for (std::size_t n : o.sizes) {
    bench::ScratchDir dir(o.dir, "store");
    const auto db = dir.path() / "p.db";
    auto store = open_store(db);
    auto specs = bench::make_specs(n);
    bench::Stopwatch w;
    auto outcomes = must(store->enqueue(specs, "bench", "enqueued from bench", kStart,
                                        [] { return new_client_ref(); }),
                         "enqueue");
    const double enqueue_s = w.seconds();

    // Tracker::start() streams (id, state, due, needs_operator) of every active job into the
    // schedule: the entries kept are its cost (the scheduler's own is bench_scheduler's).
    std::size_t streamed = 0;
    bench::reset_peak_rss();
    const double rss_before_stream = bench::rss_mib();
    const double stream_ms = median_ms(3, [&] {
      std::vector<ScheduleEntry> entries;
      must(store->for_each_active([&](const ScheduleEntry& e) { entries.push_back(e); }), "for_each_active");
      streamed = entries.size();
    });
    const double stream_mib = bench::peak_rss_mib() - rss_before_stream;
    if (streamed != n) std::fprintf(stderr, "bench_store: for_each_active saw %zu of %zu\n", streamed, n);

    // Every active Job in full (spec parsed) at once: what start-up did before it streamed.
    std::size_t loaded = 0;
    bench::reset_peak_rss();
    const double rss_before_load = bench::rss_mib();
    const double load_ms = median_ms(3, [&] { loaded = must(store->load_active(), "load").size(); });
    const double load_mib = bench::peak_rss_mib() - rss_before_load;
    if (loaded != n) std::fprintf(stderr, "bench_store: load_active saw %zu of %zu\n", loaded, n);
    const double stats_ms = median_ms(11, [&] { (void)must(store->stats(), "stats"); });
    const std::size_t probes = std::min<std::size_t>(20'000, 4 * n);
    auto find = lookups(n, probes, [&](std::size_t j) {
      if (!must(store->find(specs[j].key), "find")) std::exit(1);
    });
    auto get = lookups(n, probes, [&](std::size_t j) {
      if (!must(store->get(outcomes[j].job_id), "get")) std::exit(1);
    });
    store.reset();  // closing the last connection checkpoints the WAL into the main file
    const double per_job = static_cast<double>(bench::database_bytes(db)) / static_cast<double>(n);

    t.add({grouped(static_cast<double>(n)), strf("%.1f ms", enqueue_s * 1e3),
           grouped(static_cast<double>(n) / enqueue_s), strf("%.1f ms", stream_ms),
           strf("%.1f MiB", stream_mib), strf("%.1f ms", load_ms),
           strf("%.1f MiB", load_mib),
           strf("%.2f ms", stats_ms),
           strf("%.1f / %.1f µs", find.percentile(50), find.percentile(99)),
           strf("%.1f / %.1f µs", get.percentile(50), get.percentile(99)), strf("%.0f B", per_job)});
  }
  t.print();
  std::printf("(enqueue: one transaction for the whole list; for_each_active (start-up: id, "
              "state, due time) and load_active (every active row in full): median of 3 runs, "
              "memory = peak RSS growth while their vector exists; stats: median of 11 runs; "
              "bytes/job: file size after close, one transition per job)\n");
}

void commits(const Options& o) {
  const std::size_t n = o.commit_jobs;
  std::printf("\n== Commits: %s jobs in the database, each op its own transaction unless noted,"
              " %.1f s per row ==\n", grouped(static_cast<double>(n)).c_str(), o.seconds);
  bench::ScratchDir dir(o.dir, "store");
  const auto db = dir.path() / "p.db";
  auto store = open_store(db);
  must(store->enqueue(bench::make_specs(n), "bench", "enqueued from bench", kStart,
                      [] { return new_client_ref(); }),
       "enqueue");
  store.reset();
  {
    // Every job pending, as in the middle of a campaign (one statement, not 20,000 commits).
    sqlite3* raw = nullptr;
    sqlite3_open(db.c_str(), &raw);
    sqlite3_exec(raw,
                 "UPDATE jobs SET state = 'pending', remote_id = 'remote-' || client_ref, "
                 "remote_status = 'pending'",
                 nullptr, nullptr, nullptr);
    sqlite3_close(raw);
  }
  store = open_store(db);
  auto jobs = must(store->load_active(), "load");
  store.reset();
  const auto bytes_before = bench::database_bytes(db);
  store = open_store(db);

  bench::Table t({"operation", "ops/s", "p50 µs", "p99 µs", "max µs"});
  auto apply = time_boxed(o.seconds, [&](std::size_t i) {
    Job& job = jobs[i % n];
    next_poll_result(job, i);
    const Transition tr{.job_id = job.id, .at = job.updated_at, .from = State::pending,
                        .to = State::pending, .remote_status = *job.remote_status,
                        .reason = "process_status pending → " + *job.remote_status};
    must(store->apply(job, tr), "apply");
  });
  t.add(rate_row("Store::apply, synchronous=FULL (as shipped)", apply));
  auto update = time_boxed(o.seconds, [&](std::size_t i) {
    Job& job = jobs[i % n];
    next_poll_result(job, i);
    must(store->update(job), "update");
  });
  t.add(rate_row("Store::update, synchronous=FULL (as shipped)", update));
  // What the store thread does with the writes that arrived during the previous commit: one
  // group, a savepoint each, one fsync.
  constexpr std::size_t kStoreGroup = 64;
  auto grouped_apply = time_boxed(o.seconds, [&](std::size_t i) {
    must(store->begin_group(), "begin_group");
    for (std::size_t k = 0; k < kStoreGroup; ++k) {
      Job& job = jobs[(i * kStoreGroup + k) % n];
      next_poll_result(job, i * kStoreGroup + k);
      const Transition tr{.job_id = job.id, .at = job.updated_at, .from = State::pending,
                          .to = State::pending, .remote_status = *job.remote_status,
                          .reason = "process_status pending → " + *job.remote_status};
      must(store->apply(job, tr), "apply");
    }
    must(store->end_group(), "end_group");
  });
  t.add(rate_row(strf("Store::apply, %zu in one group (store thread), FULL", kStoreGroup),
                 grouped_apply, kStoreGroup));
  store.reset();
  const auto bytes_after = bench::database_bytes(db);

  const std::string reason = "process_status pending → reviewing";
  auto raw = [&](const char* sync, std::size_t group) {
    RawWriter w(db, sync);
    std::vector<const Job*> batch(group);
    return time_boxed(o.seconds, [&](std::size_t i) {
      for (std::size_t k = 0; k < group; ++k) {
        Job& job = jobs[(i * group + k) % n];
        next_poll_result(job, i);
        batch[k] = &job;
      }
      w.apply(batch, reason);
    });
  };
  auto raw_full = raw("FULL", 1);
  t.add(rate_row("raw C API UPDATE+INSERT, synchronous=FULL", raw_full));
  auto raw_normal = raw("NORMAL", 1);
  t.add(rate_row("raw C API UPDATE+INSERT, synchronous=NORMAL", raw_normal));
  constexpr std::size_t kGroup = 64;
  auto raw_group = raw("FULL", kGroup);
  t.add(rate_row(strf("raw C API, %zu UPDATE+INSERT per commit, FULL", kGroup), raw_group, kGroup));
  t.print();
  std::printf("(grouped rows: ops/s counts transitions, latencies are per commit of %zu)\n", kGroup);

  const double per_transition = static_cast<double>(bytes_after - bytes_before) /
                                static_cast<double>(apply.ops + grouped_apply.ops * kStoreGroup);
  std::printf("(a transition row with its job row update adds ~%.0f B to the file; a job that "
              "reaches done writes ~6 transitions)\n", per_transition);
  std::printf("durability cost: FULL commits at %s/s vs NORMAL at %s/s (x%.1f); grouping %zu per "
              "FULL commit: x%.1f\n",
              grouped(static_cast<double>(raw_full.ops) / raw_full.seconds).c_str(),
              grouped(static_cast<double>(raw_normal.ops) / raw_normal.seconds).c_str(),
              (raw_normal.ops / raw_normal.seconds) / (raw_full.ops / raw_full.seconds), kGroup,
              (raw_group.ops * kGroup / raw_group.seconds) / (raw_full.ops / raw_full.seconds));
  std::printf("the store's own groups of %zu: %s transitions/s, x%.1f over one Store::apply per "
              "commit\n", kStoreGroup,
              grouped(static_cast<double>(grouped_apply.ops * kStoreGroup) / grouped_apply.seconds).c_str(),
              (static_cast<double>(grouped_apply.ops * kStoreGroup) / grouped_apply.seconds) /
                  (static_cast<double>(apply.ops) / apply.seconds));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_store: speed and size of the personad SQLite store"};
  Options o;
  bool quick = false;
  std::optional<std::size_t> n;
  std::string dir = o.dir.string();
  app.add_flag("--quick", quick, "smaller sizes and 1 s per commit benchmark");
  app.add_option("--n", n, "one database size instead of 1k, 10k, 100k")->check(CLI::Range(10, 10'000'000));
  app.add_option("--seconds", o.seconds, "time box of each commit benchmark")->check(CLI::PositiveNumber);
  app.add_option("--dir", dir, "where the scratch databases go (put it on the disk you deploy on)")
      ->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);
  o.dir = dir;
  if (quick) {
    o.sizes = {1'000, 10'000};
    if (app.count("--seconds") == 0) o.seconds = 1.0;
  }
  if (n) {
    o.sizes = {*n};
    o.commit_jobs = *n;
  }

  std::printf("bench_store: SQLite %s\n", sqlite3_libversion());
  bench::print_machine(o.dir);
  intake_and_reads(o);
  commits(o);
  std::printf("\npeak RSS: %.1f MiB\n", bench::peak_rss_mib());
  return 0;
}
