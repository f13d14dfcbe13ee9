// Tests of the one metrics writer (metrics.hpp), its TCP listener (metrics_server.hpp), and the
// shipped Prometheus alert rules and Grafana dashboard: the page holds every family of the
// contract, passes `promtool check metrics` (when promtool is installed), and is served over TCP.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "await.hpp"
#include "fake_api.hpp"
#include "personad/config.hpp"
#include "personad/metrics.hpp"
#include "personad/metrics_server.hpp"
#include "personad/store.hpp"
#include "temp_dir.hpp"

namespace personad {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using ::testing::HasSubstr;
using ::testing::Not;

const TimePoint kT0 = from_unix_ms(1'790'000'000'000);

bool have_promtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

// Runs a shell command; its exit status and what it printed (stdout and stderr).
std::pair<int, std::string> run(const std::string& command) {
  std::string out;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

MetricsSnapshot full_snapshot(const ApiRequestMetrics& api) {
  MetricsSnapshot s;
  s.version = "1.2.3";
  s.store = StoreStats{};
  for (State st : all_states()) s.store->counts[st] = 0;
  s.store->counts[State::pending] = 3;
  s.jobs_stuck = 1;
  s.oldest_pending_age = 7200.5;
  s.tracker.polls = 42;
  s.tracker.transitions[State::done] = 2;
  s.api = &api;
  s.hooks = HookStats{5, 1, 0};
  s.capacity_remaining = 17;
  s.next_due_seconds = 12.25;
  return s;
}

TEST(MetricsText, NumbersAreSpelledAsPrometheusReadsThem) {
  EXPECT_EQ(format_metric_value(0), "0");
  EXPECT_EQ(format_metric_value(42), "42");
  EXPECT_EQ(format_metric_value(-3), "-3");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
  EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
  EXPECT_EQ(format_metric_value(HUGE_VAL), "+Inf");
  EXPECT_EQ(format_metric_value(-HUGE_VAL), "-Inf");
}

TEST(MetricsText, LabelValuesAndHelpAreEscaped) {
  PrometheusText t;
  t.family("x_total", "a \\ help\nline", "counter", {{{{"reason", "say \"hi\"\\\n"}}, 1}});
  EXPECT_EQ(t.str(),
            "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\n"
            "x_total{reason=\"say \\\"hi\\\"\\\\\\n\"} 1\n");
}

TEST(MetricsText, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.5, 0.7, 5.0, 50.0}) h.observe(v);
  EXPECT_EQ(h.cumulative(), (std::vector<std::uint64_t>{1, 3, 4}));
  EXPECT_EQ(h.count(), 5u);
  EXPECT_DOUBLE_EQ(h.sum(), 56.25);
  PrometheusText t;
  t.histogram("d_seconds", "d", {{{{"op", "get"}}, &h}});
  EXPECT_THAT(t.str(), HasSubstr("d_seconds_bucket{op=\"get\",le=\"1\"} 3\n"));
  EXPECT_THAT(t.str(), HasSubstr("d_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n"));
  EXPECT_THAT(t.str(), HasSubstr("d_seconds_count{op=\"get\"} 5\n"));
}

TEST(MetricsPage, HasEveryFamilyOfTheContract) {
  ApiRequestMetrics api;
  api.record("get", 200, 0.3);
  api.record("get", 503, 0.02);
  api.record("create", 0, 30.0);
  const std::string page = render_metrics(full_snapshot(api));
  for (const char* name :
       {"personad_jobs{state=\"pending\"} 3", "personad_transitions_total{to=\"done\"} 2",
        "personad_api_requests_total{op=\"get\",code=\"200\"} 1",
        "personad_api_requests_total{op=\"get\",code=\"503\"} 1",
        "personad_api_requests_total{op=\"create\",code=\"0\"} 1",
        "# TYPE personad_api_request_duration_seconds histogram",
        "personad_api_request_duration_seconds_bucket{op=\"get\",le=\"0.5\"} 2",
        "personad_api_request_duration_seconds_count{op=\"list\"} 0",
        "personad_oldest_pending_age_seconds 7200.5", "personad_jobs_stuck 1",
        "personad_capacity_remaining 17", "personad_build_info{version=\"1.2.3\"} 1",
        // Names from before the one writer keep working.
        "personad_polls_total 42", "personad_jobs_needs_operator 0", "personad_hook_runs_total 5",
        "personad_api_errors_total{kind=\"transient\"} 0", "personad_next_due_seconds 12.25"})
    EXPECT_THAT(page, HasSubstr(name));
}

TEST(MetricsPage, UnknownValuesAreNaNNotMissing) {
  MetricsSnapshot s;  // no store, nothing known
  const std::string page = render_metrics(s);
  EXPECT_THAT(page, HasSubstr("personad_capacity_remaining NaN\n"));
  EXPECT_THAT(page, HasSubstr("personad_jobs_stuck NaN\n"));
  EXPECT_THAT(page, Not(HasSubstr("personad_jobs{")));
}

TEST(MetricsPage, PassesPromtoolCheckMetrics) {
  if (!have_promtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  ApiRequestMetrics api;
  api.record("get", 200, 0.3);
  testing::TempDir dir("metrics");
  const auto file = dir.path() / "page.txt";
  std::ofstream(file) << render_metrics(full_snapshot(api));
  auto [rc, out] = run("promtool check metrics < " + file.string());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, Not(HasSubstr("problem"))) << out;
}

TEST(MetricsDocs, AlertRulesPassPromtoolCheckRules) {
  const std::string rules = std::string(PERSONAD_SOURCE_DIR) + "/docs/alerts.yml";
  std::ifstream in(rules);
  ASSERT_TRUE(in) << rules;
  std::stringstream text;
  text << in.rdbuf();
  for (const char* metric : {"personad_jobs_stuck", "personad_oldest_pending_age_seconds",
                             "personad_api_requests_total", "personad_capacity_remaining"})
    EXPECT_THAT(text.str(), HasSubstr(metric));
  if (!have_promtool()) GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  auto [rc, out] = run("promtool check rules " + rules);
  EXPECT_EQ(rc, 0) << out;
}

TEST(MetricsDocs, GrafanaDashboardIsJsonOverTheContractsMetrics) {
  std::ifstream in(std::string(PERSONAD_SOURCE_DIR) + "/docs/grafana-dashboard.json");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto v = boost::json::parse(text.str(), ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(v.as_object().at("panels").is_array());
  EXPECT_GE(v.at("panels").as_array().size(), 6u);
  for (const char* metric : {"personad_jobs", "personad_jobs_stuck", "personad_capacity_remaining",
                             "personad_api_request_duration_seconds_bucket",
                             "personad_oldest_pending_age_seconds"})
    EXPECT_THAT(text.str(), HasSubstr(metric));
}

TEST(MeteredApi, CountsEachRequestByOperationAndCodeAndTimesIt) {
  asio::io_context ioc;
  ManualClock clock(kT0);
  testing::FakeApi fake;
  ApiRequestMetrics m;
  MeteredApi api(fake, m, clock);
  PersonaSpec spec;
  spec.key = "a";
  auto created = testing::await(ioc, api.create(spec, "ref"));
  ASSERT_EQ(created.outcome, Outcome::ok);
  testing::await(ioc, api.get("no-such-id"));  // the fake answers 404
  EXPECT_EQ(m.requests().at({"create", std::to_string(created.http_status)}), 1u);
  EXPECT_EQ(m.requests().at({"get", "404"}), 1u);
  EXPECT_EQ(m.durations().at("get").count(), 1u);
}

// A store with jobs in known states, read by read_store_metrics.
TEST(MetricsStore, CountsStuckJobsAndTheOldestPendingAge) {
  testing::TempDir dir("metrics-store");
  auto store = Store::open((dir.path() / "p.db").string(), OpenMode::read_write);
  ASSERT_TRUE(store) << store.message();
  std::vector<PersonaSpec> specs;
  for (const char* k : {"a", "b", "c"}) {
    PersonaSpec s;
    s.key = k;
    specs.push_back(s);
  }
  int n = 0;
  ASSERT_TRUE((*store)->enqueue(specs, "t", "test", kT0, [&] { return "ref-" + std::to_string(++n); }));
  // a: pending since kT0 + 1h (submitted then); b: pending, submitted at kT0 + 2 days; c queued.
  auto advance = [&](const std::string& key, State to, TimePoint at, TimePoint submitted) {
    auto job = **(*store)->find(key);
    State from = job.state;
    job.state = to;
    job.submitted_at = submitted;
    job.remote_status = "pending";
    job.updated_at = at;
    ASSERT_TRUE((*store)->apply(job, Transition{job.id, at, from, to, "pending", "test"}));
  };
  for (const char* k : {"a", "b"}) {
    const TimePoint at = std::string(k) == "a" ? kT0 + std::chrono::hours(1)
                                               : kT0 + std::chrono::hours(48);
    advance(k, State::submitting, at, at);
    advance(k, State::pending, at, at);
  }
  MetricsSnapshot s;
  const TimePoint now = kT0 + std::chrono::minutes(72 * 60 + 30);
  ASSERT_TRUE(read_store_metrics(**store, now, std::chrono::hours(72), s));
  EXPECT_EQ(s.store->counts[State::pending], 2);
  // Only c has not changed for 72 hours (queued at kT0); a changed at kT0 + 1h.
  EXPECT_EQ(s.jobs_stuck, 1);
  EXPECT_DOUBLE_EQ(*s.oldest_pending_age, 71.5 * 3600);
  ASSERT_TRUE(read_store_metrics(**store, now, std::chrono::hours(1), s));
  EXPECT_EQ(s.jobs_stuck, 3);
}

TEST(ListenAddress, ParsesIpAndPortAndNamesWhatIsWrong) {
  auto a = parse_listen_address("127.0.0.1:9464");
  ASSERT_TRUE(a) << a.message();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9464);
  auto v6 = parse_listen_address("[::1]:80");
  ASSERT_TRUE(v6) << v6.message();
  EXPECT_EQ(v6->host, "::1");
  EXPECT_FALSE(parse_listen_address("localhost:9464"));
  EXPECT_FALSE(parse_listen_address("127.0.0.1"));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:0"));
  EXPECT_TRUE(parse_listen_address("127.0.0.1:0", true));
  EXPECT_FALSE(parse_listen_address("127.0.0.1:70000"));
  EXPECT_FALSE(parse_listen_address("::1:80"));
  EXPECT_THAT(parse_listen_address("127.0.0.1:x").message(), HasSubstr("\"127.0.0.1:x\""));
}

TEST(ListenAddress, ConfigKeysAreReadAndCheckedWithTheirLine) {
  auto c = parse_config("[metrics]\nlisten = \"127.0.0.1:9464\"\n[alerts]\nstuck_after = \"2d\"\n",
                        "/etc/personad/personad.toml");
  ASSERT_TRUE(c) << c.message();
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(c->stuck_after, std::chrono::hours(48));
  auto d = parse_config("", "/etc/personad/personad.toml");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->metrics_listen, "");
  EXPECT_EQ(d->stuck_after, std::chrono::hours(72));
  auto bad = parse_config("[metrics]\nlisten = \"example.com:9464\"\n", "/x/personad.toml");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.message(), HasSubstr("metrics.listen"));
  EXPECT_THAT(bad.message(), HasSubstr("personad.toml:2:"));
}

// One HTTP exchange with the listener, from a coroutine on the same loop.
asio::awaitable<std::pair<int, std::string>> fetch(std::uint16_t port, http::verb verb,
                                                   std::string target) {
  beast::tcp_stream s(co_await asio::this_coro::executor);
  co_await s.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                           asio::use_awaitable);
  http::request<http::empty_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  co_await http::async_write(s, req, asio::use_awaitable);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  co_await http::async_read(s, buf, res, asio::use_awaitable);
  co_return std::pair<int, std::string>{res.result_int(), res.body()};
}

TEST(MetricsServer, ServesTheRenderedPageAtGetMetricsOnly) {
  asio::io_context ioc;
  int renders = 0;
  auto server = MetricsServer::listen(
      ioc.get_executor(), *parse_listen_address("127.0.0.1:0", true),
      [&]() -> asio::awaitable<std::string> {
        ++renders;
        co_return "personad_build_info{version=\"t\"} 1\n";
      },
      nullptr);
  ASSERT_TRUE(server) << server.message();
  const auto port = (*server)->port();
  ASSERT_NE(port, 0);
  auto ok = testing::await(ioc, fetch(port, http::verb::get, "/metrics"));
  EXPECT_EQ(ok.first, 200);
  EXPECT_EQ(ok.second, "personad_build_info{version=\"t\"} 1\n");
  EXPECT_EQ(testing::await(ioc, fetch(port, http::verb::get, "/")).first, 404);
  EXPECT_EQ(testing::await(ioc, fetch(port, http::verb::post, "/metrics")).first, 405);
  EXPECT_EQ(renders, 1);
  (*server)->stop();
}

TEST(MetricsServer, ClosesConnectionsBeyondTheCap) {
  asio::io_context ioc;
  MetricsServerLimits limits;
  limits.max_connections = 1;
  auto server = MetricsServer::listen(
      ioc.get_executor(), *parse_listen_address("127.0.0.1:0", true),
      []() -> asio::awaitable<std::string> { co_return "x 1\n"; }, nullptr, limits);
  ASSERT_TRUE(server) << server.message();
  // The first connection sends nothing and holds the one slot.
  asio::ip::tcp::socket idle(ioc);
  idle.connect({asio::ip::make_address("127.0.0.1"), (*server)->port()});
  while ((*server)->refused_busy() == 0) {
    asio::co_spawn(ioc, fetch((*server)->port(), http::verb::get, "/metrics"),
                   [](std::exception_ptr, auto&&...) {});
    for (int i = 0; i < 100 && (*server)->refused_busy() == 0; ++i) ioc.run_one();
  }
  EXPECT_EQ((*server)->refused_busy(), 1u);
  idle.close();
  (*server)->stop();
}

}  // namespace
}  // namespace personad
