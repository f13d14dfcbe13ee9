// Measures selecting jobs (personactl list and its filters, GET /v1/select) on a database of
// 100,000 jobs spread over states, clients' labels, batch files, remote stages and ten days:
// each filtered page through the query side (Store::select, then the page as JSON), and what
// personactl pays to open the database when the daemon is down.
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <memory>

#include "bench_support.hpp"
#include "personad/job_query.hpp"
#include "personad/store.hpp"

namespace {

using namespace personad;
using bench::grouped;
using bench::strf;

const TimePoint kStart = from_unix_ms(1'790'000'000'000);
constexpr std::int64_t kDay = 24 * 3600'000;

template <class T>
T must(Result<T> r, const char* what) {
  if (!r) {
    std::fprintf(stderr, "bench_select: %s: %s\n", what, r.message().c_str());
    std::exit(1);
  }
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "bench_select: %s\n", err ? err : "?");
    std::exit(1);
  }
  sqlite3_close(db);
}

// 100,000 jobs by 50 clients (label client-NN, keys cNN-…), from 20 batch files, over 10 days;
// a campaign label on half; states, remote stages and waits for the operator in realistic
// shares.
void seed(Store& store, const std::string& path, std::size_t jobs) {
  const std::size_t chunk = 5'000;
  std::size_t made = 0;
  for (std::size_t c = 0; made < jobs; ++c) {
    std::vector<PersonaSpec> specs;
    for (std::size_t i = 0; i < chunk && made < jobs; ++i, ++made) {
      PersonaSpec s = bench::make_spec(made);
      const std::size_t client = made % 50;
      s.key = strf("c%02zu-%07zu", client, made);
      s.labels = {strf("client-%02zu", client)};
      if (made % 2 == 0) s.labels.push_back("spring-campaign");
      specs.push_back(std::move(s));
    }
    const auto chunks = static_cast<std::int64_t>((jobs + chunk - 1) / chunk);
    const TimePoint at = kStart + Millis(static_cast<std::int64_t>(c) * 10 * kDay / chunks);
    const std::string source = strf("/etc/personad/batches.d/batch-%02zu.toml", c % 20);
    std::size_t ref = made * 10;
    must(store.enqueue(specs, source, "bench", at, [&] { return strf("ref-%zu", ref++); }),
         "enqueue");
  }
  // h: a spread of the ids over 0..99 that does not follow the client (id % 50).
  raw_exec(path,
           "UPDATE jobs SET "
           "state = CASE WHEN h < 40 THEN 'pending' WHEN h < 80 THEN 'done' "
           "WHEN h < 87 THEN 'failed' WHEN h < 89 THEN 'expired' WHEN h < 94 THEN 'queued' "
           "WHEN h < 97 THEN 'submitting' ELSE 'cancelled' END, "
           "remote_status = CASE WHEN h >= 89 THEN NULL ELSE "
           "(CASE id % 7 WHEN 0 THEN 'processing' WHEN 1 THEN 'voice_creating' "
           "WHEN 2 THEN 'video_validating' WHEN 3 THEN 'crop_and_matte' WHEN 4 THEN 'reviewing' "
           "WHEN 5 THEN 'done' ELSE 'rejected' END) END, "
           "remote_id = CASE WHEN h < 89 THEN 'remote-' || id END, "
           "needs_operator = CASE WHEN h2 = 105 THEN 1 ELSE 0 END, "
           "status_since = created_at + (id % 5) * 86400000 "
           "FROM (SELECT id AS hid, (id / 50 * 37 + id) % 100 AS h, "
           "             (id / 50 * 37 + id) % 1000 AS h2 FROM jobs) WHERE jobs.id = hid;"
           "PRAGMA wal_checkpoint(TRUNCATE);");
}

struct Case {
  std::string name;
  std::vector<SelectionParam> params;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_select: filtered pages of personactl list on a large database"};
  std::size_t jobs = 100'000;
  std::int64_t page = 1'000;
  int runs = 15;
  std::string dir = std::filesystem::temp_directory_path().string();
  bool quick = false;
  app.add_option("--n", jobs, "jobs in the database")->capture_default_str();
  app.add_flag("--quick", quick, "10,000 jobs");
  app.add_option("--page", page, "jobs per page (personactl's table shows 1,000)")->capture_default_str();
  app.add_option("--runs", runs, "runs per figure (the median is shown)")->capture_default_str();
  app.add_option("--dir", dir, "scratch directory")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (quick) jobs = 10'000;
  if (jobs < 1'000) jobs = 1'000;  // fifty clients, twenty files: a smaller campaign says little

  bench::ScratchDir scratch(dir, "select");
  bench::print_machine(scratch.path());
  const std::string path = (scratch.path() / "personad.db").string();
  {
    auto store = must(Store::open(path, OpenMode::read_write), "open");
    bench::Stopwatch w;
    seed(*store, path, jobs);
    std::printf("seeded %s jobs in %.1f s; database %.1f MiB\n", grouped(double(jobs)).c_str(),
                w.seconds(), double(bench::database_bytes(path)) / (1 << 20));
  }
  // What personactl pays first when the daemon is down: opening (and checking) the file.
  bench::Samples opens;
  for (int i = 0; i < 5; ++i) {
    bench::Stopwatch w;
    auto s = must(Store::open(path, OpenMode::read_only), "open read-only");
    opens.add(w.seconds() * 1e3);
  }
  std::printf("open read-only (personactl without daemon): %.1f ms median\n\n",
              opens.percentile(50));

  auto store = must(Store::open(path, OpenMode::read_only), "open");
  const QueryContext ctx{kStart + Millis(11 * kDay), kDefaultStuckAfter};
  const std::string mid_key = strf("c%02zu-%07zu", (jobs / 2) % 50, jobs / 2);
  const std::vector<Case> cases = {
      {"no filter, first page", {}},
      {"no filter, page after the middle job", {{"after", mid_key}}},
      {"--state failed (7 %)", {{"state", "failed"}}},
      {"--state failed --state expired", {{"state", "failed"}, {"state", "expired"}}},
      {"--state pending (40 %)", {{"state", "pending"}}},
      {"--label client-17 (2 %)", {{"label", "client-17"}}},
      {"--label spring-campaign (50 %)", {{"label", "spring-campaign"}}},
      {"--label client-17 --label client-18", {{"label", "client-17"}, {"label", "client-18"}}},
      {"--source batch-03.toml (5 %)", {{"source", "/etc/personad/batches.d/batch-03.toml"}}},
      {"--key 'c17-*' (2 %, prefix)", {{"key", "c17-*"}}},
      {"--key '*7' (10 %, suffix)", {{"key", "*7"}}},
      {"--key '*-NNNNNNN' (one job)", {{"key", strf("*-%07zu", jobs - 1)}}},
      {"--remote-status reviewing (13 %)", {{"remote_status", "reviewing"}}},
      {"--since 2d (10 %)", {{"since", "2d"}}},
      {"--until (first day)", {{"until", format_rfc3339(kStart + Millis(kDay))}}},
      {"--needs-operator (0.1 %)", {{"needs_operator", "1"}}},
      {"--stuck", {{"stuck", "1"}}},
      {"--state failed --label client-17", {{"state", "failed"}, {"label", "client-17"}}},
      {"--state failed --since 3d", {{"state", "failed"}, {"since", "3d"}}},
      {"--label spring-campaign --label client-03 --state failed",
       {{"label", "spring-campaign"}, {"label", "client-03"}, {"state", "failed"}}},
      {"--stuck --label client-17", {{"stuck", "1"}, {"label", "client-17"}}},
      {"--state pending --remote-status reviewing --label client-03",
       {{"state", "pending"}, {"remote_status", "reviewing"}, {"label", "client-03"}}},
  };

  bench::Table table({"selection", "matching", "page", "select ms", "+ JSON ms", "count ms"});
  for (const auto& c : cases) {
    auto sel = must(parse_selection(c.params, ctx.now), "parse");
    sel.limit = page;
    SelectOptions opt;
    opt.stuck_before = ctx.now - kDefaultStuckAfter;
    Selection all = sel;
    all.limit.reset();
    all.after.reset();
    // How many match in all (a plain count, for the table).
    std::size_t matching = 0;
    {
      Selection ids = all;
      ids.limit = 1;
      opt.count_more = true;
      auto p = must(store->select(ids, opt), "count");
      matching = p.jobs.size() + static_cast<std::size_t>(p.more);
    }
    bench::Samples select_ms, json_ms, count_ms;
    std::size_t got = 0;
    for (int i = 0; i < runs; ++i) {
      opt.count_more = false;
      bench::Stopwatch w;
      auto p = must(store->select(sel, opt), "select");
      select_ms.add(w.seconds() * 1e3);
      got = p.jobs.size();
      opt.count_more = true;
      bench::Stopwatch wc;
      (void)must(store->select(sel, opt), "select and count");
      count_ms.add(wc.seconds() * 1e3);
      // The whole answer of GET /v1/select?…&count=1 as the daemon (or personactl) gives it.
      bench::Stopwatch wj;
      auto answer = answer_query(*store, "/v1/select?" + selection_query(sel) + "&count=1", ctx);
      auto text = boost::json::serialize(answer.body);
      json_ms.add(wj.seconds() * 1e3);
      if (answer.status != 200) {
        std::fprintf(stderr, "bench_select: %s: %s\n", c.name.c_str(), text.c_str());
        return 1;
      }
    }
    table.add({c.name, grouped(double(matching)), grouped(double(got)),
               strf("%.1f", select_ms.percentile(50)), strf("%.1f", json_ms.percentile(50)),
               strf("%.1f", count_ms.percentile(50))});
  }
  table.print();
  std::printf("\nselect ms: Store::select of one page (ids from an index, then the rows); "
              "count ms: the same with the count of the rest (`… N more`); + JSON ms: the whole "
              "GET /v1/select?…&count=1 answer, serialised (what the daemon's store thread and "
              "personactl without daemon do). Medians of %d runs.\n", runs);
  return 0;
}
