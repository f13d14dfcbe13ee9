// personactl's commands without a daemon: reads fall back to the database, submit writes queued
// rows, steering is refused with a clear message; tables and JSON as the contract says. And
// submit against a daemon (a control socket served by the test): large files go in chunks, the
// daemon's refusals are shown as its messages, a starting daemon is asked to pick up what was
// written into the database meanwhile.
#include "personad/ctl.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "personad/control.hpp"
#include "personad/instance_lock.hpp"
#include "personad/job_query.hpp"
#include "personad/store.hpp"
#include "temp_dir.hpp"
#include "csv_reader.hpp"

namespace personad::testing {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

// A batch file text of `count` valid entries, keys PREFIX-0 … (about 300 bytes of JSON each).
std::string big_batch(const std::string& prefix, int count) {
  std::string b;
  b.reserve(static_cast<std::size_t>(count) * 330);
  for (int i = 0; i < count; ++i) {
    std::string n = std::to_string(i);
    b += "[[persona]]\nkey = \"" + prefix + "-" + n + "\"\ngender = \"f\"\ncreator_name = \"Person " +
         prefix + " " + n + "\"\nvideo_scene = \"office\"\nkeywords = \"friendly, calm\"\n" +
         "lipsync_input = \"https://cdn.example.com/" + prefix + n + "/lipsync.mp4\"\n" +
         "consent_video = \"https://cdn.example.com/" + prefix + n + "/consent.mp4\"\n" +
         "labels = [\"acme\", \"" + prefix + "\"]\n\n";
  }
  return b;
}

std::size_t count_lines(const std::string& text, const std::string& prefix) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) n += l.rfind(prefix, 0) == 0 ? 1 : 0;
  return n;
}

// A control socket served on its own thread by a handler the test writes (what personad would
// answer), recording every request.
class FakeDaemon {
 public:
  using Handler = std::function<ControlResponse(const ControlRequest&)>;

  FakeDaemon(const std::string& path, Handler handler,
             std::size_t max_body = std::size_t{1} << 20)
      : handler_(std::move(handler)) {
    auto server = ControlServer::listen(
        ioc_.get_executor(), path,
        [this](ControlRequest r) -> boost::asio::awaitable<ControlResponse> {
          {
            std::lock_guard lock(mutex_);
            requests_.push_back(r);
          }
          co_return handler_(r);
        },
        nullptr, max_body);
    EXPECT_TRUE(server) << server.message();
    if (server) server_ = std::move(*server);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeDaemon() {
    ioc_.stop();
    thread_.join();
    server_.reset();  // closes the listener and removes the socket file
  }
  std::vector<ControlRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t count(const std::string& target) {
    std::size_t n = 0;
    for (const auto& r : requests()) n += r.target == target ? 1 : 0;
    return n;
  }

 private:
  Handler handler_;
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      ioc_.get_executor()};
  std::unique_ptr<ControlServer> server_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<ControlRequest> requests_;
};

// What personad answers to a submit it accepts: every key queued.
ControlResponse accept_all(const ControlRequest& r) {
  auto v = json::parse(r.body);
  const auto& personas = v.at("personas").as_array();
  if (r.target == "/v1/submit/check")
    return ControlResponse{200, json::serialize(json::object{{"valid", personas.size()}})};
  json::array results;
  for (const auto& p : personas)
    results.push_back(
        json::object{{"key", p.at("key")}, {"result", "queued"}, {"state", "queued"}});
  return ControlResponse{200, json::serialize(json::object{{"results", results}})};
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.store_path = (dir_.path() / "p.db").string();
    config_.control_socket = (dir_.path() / "nobody-listens.sock").string();
  }
  ctl::Context ctx() { return ctl::Context{config_, Millis(1000), out_, err_}; }
  std::string batch(const std::string& key, const std::string& gender = "f") {
    return dir_.write(key + ".toml",
                      "[[persona]]\nkey = \"" + key + "\"\ngender = \"" + gender +
                          "\"\ncreator_name = \"Jane\"\nvideo_scene = \"office\"\n"
                          "lipsync_input = \"https://cdn.example.com/l.mp4\"\n")
        .string();
  }

  TempDir dir_{"ctl"};
  Config config_;
  std::ostringstream out_, err_;
};

TEST_F(CtlTest, RenderTableAlignsColumns) {
  EXPECT_EQ(ctl::render_table({{"KEY", "STATE"}, {"acme-jane-01", "done"}, {"b", "pending"}}),
            "KEY           STATE\n"
            "acme-jane-01  done\n"
            "b             pending\n");
}

TEST_F(CtlTest, OfflineSubmitQueuesThenReadsComeFromTheDatabase) {
  ASSERT_EQ(ctl::submit(ctx(), {batch("a"), batch("b")}), ctl::kOk) << err_.str();
  EXPECT_EQ(out_.str(), "queued a\nqueued b\n");
  EXPECT_THAT(err_.str(), HasSubstr("personad is not running"));
  out_.str("");
  ASSERT_EQ(ctl::submit(ctx(), {batch("a")}), ctl::kOk);
  EXPECT_EQ(out_.str(), "known a queued\n");

  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), {}, ctl::ListFormat::json), ctl::kOk) << err_.str();
  auto list = json::parse(out_.str());
  ASSERT_EQ(list.as_array().size(), 2u);
  EXPECT_EQ(list.as_array()[0].at("state"), "queued");

  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), {}, ctl::ListFormat::table), ctl::kOk);
  EXPECT_THAT(out_.str(), HasSubstr("KEY"));
  EXPECT_THAT(out_.str(), HasSubstr("\na "));

  out_.str("");
  ASSERT_EQ(ctl::history(ctx(), "a", true), ctl::kOk);
  auto h = json::parse(out_.str()).as_array();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].at("to"), "queued");

  out_.str("");
  ASSERT_EQ(ctl::stats(ctx(), true), ctl::kOk);
  EXPECT_EQ(json::parse(out_.str()).at("counts").at("queued"), 2);
}

TEST_F(CtlTest, InvalidFileIsExitTwoAndEnqueuesNothing) {
  EXPECT_EQ(ctl::submit(ctx(), {batch("bad", "x")}), ctl::kInvalid);
  EXPECT_THAT(err_.str(), HasSubstr("bad.toml:"));
  EXPECT_THAT(err_.str(), HasSubstr("gender"));
  EXPECT_EQ(ctl::show(ctx(), "bad", false), ctl::kRefused);  // no database was even made
}

TEST_F(CtlTest, UnknownKeysAndSteeringWithoutDaemonAreRefused) {
  ASSERT_EQ(ctl::submit(ctx(), {batch("a")}), ctl::kOk);
  err_.str("");
  EXPECT_EQ(ctl::show(ctx(), "zzz", true), ctl::kRefused);
  EXPECT_THAT(err_.str(), HasSubstr("unknown key 'zzz'"));
  EXPECT_EQ(ctl::history(ctx(), "zzz", true), ctl::kRefused);
  EXPECT_EQ(ctl::cancel(ctx(), "a"), ctl::kRefused);
  EXPECT_THAT(err_.str(), HasSubstr("personad is not running"));
  EXPECT_EQ(ctl::resolve(ctx(), "a", "", false), ctl::kInvalid);
  EXPECT_EQ(ctl::list(ctx(), {{"state", "sideways"}}, ctl::ListFormat::table), ctl::kInvalid);
}

// 4,000 entries (1.2 MB of JSON) used to go in one request over the daemon's 1 MiB limit: the
// daemon answered 413 and closed, personactl died on "Broken pipe" and nothing was enqueued.
TEST_F(CtlTest, LargeSubmitGoesToTheDaemonInChunks) {
  FakeDaemon daemon(config_.control_socket, accept_all);
  std::string file = dir_.write("big.toml", big_batch("big", 4000)).string();
  ASSERT_EQ(ctl::submit(ctx(), {file}), ctl::kOk) << err_.str();
  EXPECT_EQ(count_lines(out_.str(), "queued big-"), 4000u);
  std::set<std::string> keys;
  std::size_t submits = 0;
  for (const auto& r : daemon.requests()) {
    EXPECT_LE(r.body.size(), ctl::kSubmitChunkBytes);
    if (r.target != "/v1/submit") continue;
    ++submits;
    auto personas = json::parse(r.body).at("personas").as_array();
    EXPECT_LE(personas.size(), ctl::kSubmitChunkEntries);
    for (const auto& p : personas) keys.insert(std::string(p.at("key").as_string()));
  }
  EXPECT_EQ(keys.size(), 4000u);
  EXPECT_GE(submits, 4u);
  // Every chunk was checked before the first was enqueued.
  EXPECT_EQ(daemon.count("/v1/submit/check"), submits);
  EXPECT_EQ(daemon.requests().front().target, "/v1/submit/check");
}

// The daemon refuses the request (413 over its body limit, answered before it read the body):
// personactl shows the daemon's message, never the broken pipe of the rest of its write.
TEST_F(CtlTest, DaemonRefusalIsShownAsItsMessage) {
  FakeDaemon daemon(config_.control_socket, accept_all, 4096);
  std::string file = dir_.write("big.toml", big_batch("big", 4000)).string();
  EXPECT_EQ(ctl::submit(ctx(), {file}), ctl::kRefused);
  EXPECT_THAT(err_.str(), HasSubstr("request body larger than 4096 bytes"));
  EXPECT_THAT(err_.str(), ::testing::Not(HasSubstr("Broken pipe")));
  EXPECT_THAT(err_.str(), HasSubstr("big.toml: nothing enqueued from this file"));
  EXPECT_EQ(out_.str(), "");
}

// A later chunk refused (the daemon began shutting down): its message, and how much of the file
// got in before.
TEST_F(CtlTest, LaterChunkRefusedSaysHowMuchWasEnqueued) {
  std::atomic<int> submits{0};
  FakeDaemon daemon(config_.control_socket, [&](const ControlRequest& r) {
    if (r.target == "/v1/submit" && ++submits > 1)
      return ControlResponse{503, R"({"error":"personad is shutting down; nothing was enqueued"})"};
    return accept_all(r);
  });
  std::string file = dir_.write("mid.toml", big_batch("mid", 2500)).string();
  EXPECT_EQ(ctl::submit(ctx(), {file}), ctl::kRefused);
  EXPECT_EQ(count_lines(out_.str(), "queued mid-"), ctl::kSubmitChunkEntries);
  EXPECT_THAT(err_.str(), HasSubstr("personad is shutting down; nothing was enqueued"));
  EXPECT_THAT(err_.str(), HasSubstr("the first 1000 of 2500 entries were enqueued"));
}

// The daemon finds a chunk invalid (say, a local video it may not read): nothing of the file is
// enqueued, exit 2, its field errors shown.
TEST_F(CtlTest, DaemonFieldErrorsEnqueueNothingOfTheFile) {
  FakeDaemon daemon(config_.control_socket, [&](const ControlRequest& r) {
    if (r.body.find("\"bad-1500\"") != std::string::npos)
      return ControlResponse{
          400, R"({"error":"invalid personas; nothing was enqueued","errors":[{"index":500,)"
               R"("key":"bad-1500","field":"lipsync_input","message":"cannot read it"}]})"};
    return accept_all(r);
  });
  std::string file = dir_.write("bad.toml", big_batch("bad", 2500)).string();
  EXPECT_EQ(ctl::submit(ctx(), {file}), ctl::kInvalid);
  EXPECT_THAT(err_.str(), HasSubstr("key 'bad-1500' field 'lipsync_input': cannot read it"));
  EXPECT_THAT(err_.str(), HasSubstr("bad.toml: nothing enqueued from this file"));
  EXPECT_EQ(daemon.count("/v1/submit"), 0u);
  EXPECT_EQ(out_.str(), "");
}

// No daemon: 100,000 entries go straight into the database, in transactions of 10,000.
TEST_F(CtlTest, OfflineSubmitOfAHundredThousandEntries) {
  std::string file = dir_.write("huge.toml", big_batch("h", 100'000)).string();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(ctl::submit(ctx(), {file}), ctl::kOk) << err_.str();
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(count_lines(out_.str(), "queued h-"), 100'000u);
  auto store = Store::open(config_.store_path, OpenMode::read_only);
  ASSERT_TRUE(store) << store.message();
  auto stats = (*store)->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->counts[State::queued], 100'000);
  auto last = (*store)->find("h-99999");
  ASSERT_TRUE(last && *last);
  // How long it took is a figure (bench/README), not a test: printed only.
  std::cerr << "100,000 entries offline in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n";
}

// The daemon holds the database (it takes the lock first) but does not listen yet: personactl
// writes into the database, then waits for the socket and has the daemon pick the jobs up, so
// they do not wait for a SIGHUP.
TEST_F(CtlTest, SubmitWhileTheDaemonStartsIsPickedUp) {
  config_.store_path = (std::filesystem::canonical(dir_.path()) / "p.db").string();
  auto lock = InstanceLock::acquire(config_.store_path + ".lock");
  ASSERT_TRUE(lock) << lock.message();
  std::unique_ptr<FakeDaemon> daemon;
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    daemon = std::make_unique<FakeDaemon>(config_.control_socket, [](const ControlRequest& r) {
      if (r.target == "/v1/adopt-queued") return ControlResponse{200, R"({"adopted":1})"};
      return ControlResponse{404, R"({"error":"no such route"})"};
    });
  });
  int code = ctl::submit(ctx(), {batch("early")});
  starter.join();
  EXPECT_EQ(code, ctl::kOk) << err_.str();
  EXPECT_EQ(out_.str(), "queued early\n");
  EXPECT_EQ(daemon->count("/v1/adopt-queued"), 1u);
  EXPECT_THAT(err_.str(), HasSubstr("picked it up (1 queued jobs scheduled now)"));
  EXPECT_THAT(err_.str(), ::testing::Not(HasSubstr("SIGHUP")));
}

// The daemon holds the database and its socket never answers: the jobs are in the database, the
// message says a reload sends them, and personactl does not wait for ever.
TEST_F(CtlTest, SubmitWhileTheDaemonHoldsTheDatabaseButNeverListens) {
  config_.store_path = (std::filesystem::canonical(dir_.path()) / "p.db").string();
  auto lock = InstanceLock::acquire(config_.store_path + ".lock");
  ASSERT_TRUE(lock) << lock.message();
  auto c = ctx();
  c.startup_wait = Millis(300);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ctl::submit(c, {batch("stuck")}), ctl::kOk) << err_.str();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(out_.str(), "queued stuck\n");
  EXPECT_THAT(err_.str(), HasSubstr("sent after a reload (SIGHUP)"));
}

// A key longer than the contract's 128 characters is refused by personactl itself (exit 2),
// before anything is sent; a 20,000-character one used to reset the daemon's connection.
TEST_F(CtlTest, KeysLongerThan128AreRefusedBeforeSending) {
  FakeDaemon daemon(config_.control_socket, [](const ControlRequest&) {
    return ControlResponse{404, R"({"error":"unknown key"})"};
  });
  for (const std::size_t n : {std::size_t{129}, std::size_t{20'000}}) {
    const std::string key(n, 'k');
    err_.str("");
    EXPECT_EQ(ctl::show(ctx(), key, false), ctl::kInvalid);
    EXPECT_THAT(err_.str(), HasSubstr("key too long: " + std::to_string(n) + " characters"));
    EXPECT_EQ(ctl::history(ctx(), key, true), ctl::kInvalid);
    EXPECT_EQ(ctl::cancel(ctx(), key), ctl::kInvalid);
    EXPECT_EQ(ctl::retry(ctx(), key, false), ctl::kInvalid);
    EXPECT_EQ(ctl::resolve(ctx(), key, "", true), ctl::kInvalid);
  }
  EXPECT_TRUE(daemon.requests().empty());
  EXPECT_EQ(ctl::show(ctx(), std::string(128, 'k'), false), ctl::kRefused);
  EXPECT_EQ(daemon.requests().size(), 1u);
}

// A known key whose file entry differs from the job's spec is reported as such (the change is
// not sent: a new key is the way to create it anew); personactl used to print a plain "known".
TEST_F(CtlTest, SubmitReportsAChangedSpec) {
  // Without a daemon: the outcome comes from the database.
  ASSERT_EQ(ctl::submit(ctx(), {batch("a")}), ctl::kOk) << err_.str();
  out_.str("");
  ASSERT_EQ(ctl::submit(ctx(), {batch("a", "m")}), ctl::kOk) << err_.str();
  EXPECT_EQ(out_.str(), "known a queued (spec changed: not sent again)\n");
  out_.str("");
  ASSERT_EQ(ctl::submit(ctx(), {batch("a")}), ctl::kOk) << err_.str();
  EXPECT_EQ(out_.str(), "known a queued\n");

  // Through the daemon: its results say so.
  FakeDaemon daemon(config_.control_socket, [](const ControlRequest& r) {
    if (r.target == "/v1/submit/check") return ControlResponse{200, R"({"valid":1})"};
    const std::string key(json::parse(r.body).at("personas").as_array()[0].at("key").as_string());
    return ControlResponse{
        200, R"({"results":[{"key":")" + key + R"(","result":"known","state":"pending","spec_changed":)" +
                 (key == "b" ? "true" : "false") + "}]}"};
  });
  out_.str("");
  ASSERT_EQ(ctl::submit(ctx(), {batch("b")}), ctl::kOk) << err_.str();
  ASSERT_EQ(ctl::submit(ctx(), {batch("c")}), ctl::kOk) << err_.str();
  EXPECT_EQ(out_.str(), "known b pending (spec changed: not sent again)\nknown c pending\n");
}

// A daemon serving as many control connections as it will answers 503 {"busy": true}:
// personactl asks again rather than giving up on the first try.
TEST_F(CtlTest, BusyDaemonIsAskedAgain) {
  std::atomic<int> calls{0};
  FakeDaemon daemon(config_.control_socket, [&](const ControlRequest&) {
    if (++calls <= 3)
      return ControlResponse{503, R"({"error":"personad is busy","busy":true})"};
    return ControlResponse{200, R"({"counts":{"queued":0},"total":0,"polls":0,"attempts":0,)"
                                R"("next_due_at":null,"next_due_key":null})"};
  });
  ctl::Context c = ctx();
  c.busy_retry = Millis(1);
  EXPECT_EQ(ctl::stats(c, true), ctl::kOk) << err_.str();
  EXPECT_EQ(calls.load(), 4);
  EXPECT_THAT(out_.str(), HasSubstr("\"counts\""));

  // For as long as busy_wait: then the daemon's own message, exit 1.
  out_.str("");
  calls = -1'000'000;
  c.busy_wait = Millis(20);
  EXPECT_EQ(ctl::stats(c, true), ctl::kRefused);
  EXPECT_THAT(err_.str(), HasSubstr("personad is busy"));
}

// ---- list: selections and formats ------------------------------------------------------------

TEST(Csv, FieldsAreQuotedAsRfc4180Says) {
  EXPECT_EQ(ctl::csv_field("plain"), "plain");
  EXPECT_EQ(ctl::csv_field(""), "");
  EXPECT_EQ(ctl::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(ctl::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(ctl::csv_field("\""), "\"\"\"\"");
  EXPECT_EQ(ctl::csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(ctl::csv_field("cr\rhere"), "\"cr\rhere\"");
  EXPECT_EQ(ctl::csv_field(" spaces stay "), " spaces stay ");
  EXPECT_EQ(ctl::csv_field("émoji 😀; semicolon"), "émoji 😀; semicolon");
  EXPECT_EQ(ctl::csv_header(),
            "key,state,remote_status,remote_id,failed_reason,source,labels,created_at,"
            "submitted_at,updated_at,polls,attempts,eta\r\n");
}

TEST(Csv, ARowHoldsTheContractsColumnsOfAJob) {
  auto job = json::parse(R"({"key":"acme-1","state":"failed","remote_status":"rejected",
    "remote_id":"r-1","failed_reason":"consent video: \"unclear\",\nresubmit","client_ref":"x",
    "created_at":"2026-11-30T08:00:00.000Z","submitted_at":null,
    "updated_at":"2026-11-30T09:00:00.000Z","next_poll_at":null,"polls":12,"attempts":1,
    "spec":{"labels":["acme","spring, 2027","personad:x"]},"source":"batches.d/a.toml"})")
                 .as_object();
  EXPECT_EQ(ctl::csv_row(job),
            "acme-1,failed,rejected,r-1,\"consent video: \"\"unclear\"\",\nresubmit\","
            "batches.d/a.toml,\"acme;spring, 2027\",2026-11-30T08:00:00.000Z,,"
            "2026-11-30T09:00:00.000Z,12,1,\r\n");
}

class CtlListTest : public CtlTest {
 protected:
  void SetUp() override {
    CtlTest::SetUp();
    one_ = dir_.write("one.toml", big_batch("one", 12)).string();
    two_ = dir_.write("two.toml", big_batch("two", 8)).string();
    ASSERT_EQ(ctl::submit(ctx(), {one_, two_}), ctl::kOk) << err_.str();
    out_.str("");
    err_.str("");
  }
  // Runs list; what it printed.
  std::string list(const std::vector<SelectionParam>& sel, ctl::ListFormat format,
                   int expect = ctl::kOk) {
    out_.str("");
    err_.str("");
    EXPECT_EQ(ctl::list(ctx(), sel, format), expect) << err_.str();
    return out_.str();
  }
  std::vector<std::string> json_keys(const std::string& text) {
    std::vector<std::string> out;
    const json::value v = json::parse(text);
    for (const auto& j : v.as_array()) out.emplace_back(j.at("key").as_string());
    return out;
  }
  std::string one_, two_;
};

TEST_F(CtlListTest, FiltersPagingAndFormatsFromTheDatabase) {
  auto all = json_keys(list({}, ctl::ListFormat::json));
  ASSERT_EQ(all.size(), 20u);
  // One file's entries share a creation time, so they come in key order; the first file first.
  EXPECT_EQ(all[0], "one-0");
  EXPECT_EQ(all[1], "one-1");
  EXPECT_EQ(all[2], "one-10");
  EXPECT_EQ(all[12], "two-0");

  EXPECT_EQ(json_keys(list({{"label", "two"}}, ctl::ListFormat::json)).size(), 8u);
  EXPECT_EQ(json_keys(list({{"source", two_}}, ctl::ListFormat::json)).size(), 8u);
  EXPECT_EQ(json_keys(list({{"key", "one-1*"}}, ctl::ListFormat::json)),
            (std::vector<std::string>{"one-1", "one-10", "one-11"}));
  EXPECT_EQ(json_keys(list({{"state", "queued"}, {"label", "one"}, {"key", "*-2"}},
                           ctl::ListFormat::json)),
            std::vector<std::string>{"one-2"});
  EXPECT_EQ(list({{"state", "done"}}, ctl::ListFormat::json), "[]\n");

  // --limit/--after, page after page: together they are the whole listing, once each.
  std::vector<std::string> paged;
  std::vector<SelectionParam> sel{{"limit", "3"}};
  for (;;) {
    auto page = json_keys(list(sel, ctl::ListFormat::json));
    paged.insert(paged.end(), page.begin(), page.end());
    if (page.size() < 3) break;
    sel = {{"limit", "3"}, {"after", page.back()}};
  }
  EXPECT_EQ(paged, all);

  // JSON lines: one job object a line, the same objects as the array.
  const std::string lines = list({}, ctl::ListFormat::jsonl);
  std::istringstream in(lines);
  const json::value listed = json::parse(list({}, ctl::ListFormat::json));
  const auto& array = listed.as_array();
  std::size_t n = 0;
  for (std::string line; std::getline(in, line); ++n) {
    ASSERT_LT(n, array.size());
    EXPECT_EQ(json::parse(line), array[n]);
  }
  EXPECT_EQ(n, 20u);

  // CSV: the header, then one row per job, that a spreadsheet reads back.
  auto rows = parse_csv(list({{"label", "one"}, {"limit", "2"}}, ctl::ListFormat::csv));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0], "key");
  EXPECT_EQ(rows[0].size(), 13u);
  EXPECT_EQ(rows[1][0], "one-0");
  EXPECT_EQ(rows[1][1], "queued");
  EXPECT_EQ(rows[1][5], one_);
  EXPECT_EQ(rows[1][6], "acme;one");
  EXPECT_EQ(rows[2][0], "one-1");
  EXPECT_EQ(rows[2].size(), 13u);

  // A table says how many more there are beyond what it shows.
  const std::string table = list({{"label", "two"}, {"limit", "5"}}, ctl::ListFormat::table);
  EXPECT_EQ(count_lines(table, "two-"), 5u);
  EXPECT_THAT(table, ::testing::EndsWith("\n\u2026 3 more\n"));
  EXPECT_THAT(list({{"label", "two"}}, ctl::ListFormat::table), ::testing::Not(HasSubstr("more")));
}

TEST_F(CtlListTest, BadSelectionsAreExitTwo) {
  list({{"state", "sideways"}}, ctl::ListFormat::table, ctl::kInvalid);
  EXPECT_THAT(err_.str(), HasSubstr("state: unknown state 'sideways'"));
  list({{"since", "last tuesday"}}, ctl::ListFormat::json, ctl::kInvalid);
  list({{"limit", "0"}}, ctl::ListFormat::json, ctl::kInvalid);
  list({{"key", "one-[1"}}, ctl::ListFormat::json, ctl::kInvalid);
  list({{"after", "no-such-job"}}, ctl::ListFormat::json, ctl::kInvalid);
  EXPECT_THAT(err_.str(), HasSubstr("after: unknown key 'no-such-job'"));
}

// A table shows 1,000 rows unless --limit says otherwise; JSON is every job, read in pages of
// 1,000 and printed as one array.
TEST_F(CtlTest, TableStopsAtAThousandRowsJsonHasThemAll) {
  std::string file = dir_.write("big.toml", big_batch("big", 1'005)).string();
  ASSERT_EQ(ctl::submit(ctx(), {file}), ctl::kOk) << err_.str();
  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), {}, ctl::ListFormat::table), ctl::kOk) << err_.str();
  EXPECT_EQ(count_lines(out_.str(), "big-"), 1'000u);
  EXPECT_THAT(out_.str(), ::testing::EndsWith("\n\u2026 5 more\n"));
  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), {{"limit", "1005"}}, ctl::ListFormat::table), ctl::kOk);
  EXPECT_EQ(count_lines(out_.str(), "big-"), 1'005u);
  EXPECT_THAT(out_.str(), ::testing::Not(HasSubstr("more")));
  out_.str("");
  ASSERT_EQ(ctl::list(ctx(), {}, ctl::ListFormat::json), ctl::kOk);
  std::set<std::string> keys;
  const json::value listed = json::parse(out_.str());
  for (const auto& j : listed.as_array()) keys.emplace(j.at("key").as_string());
  EXPECT_EQ(keys.size(), 1'005u);
}

// The same commands with a daemon on the socket and without one print the same bytes: the
// daemon's reads are job_query's (ControlTest.ReadsAreAnsweredByTheQuerySide), and personactl
// without a daemon runs job_query itself on the database.
TEST_F(CtlListTest, OnlineAndOfflineAnswersAreTheSame) {
  Config online_config = config_;
  online_config.control_socket = (dir_.path() / "daemon.sock").string();
  auto ro = Store::open(config_.store_path, OpenMode::read_only);
  ASSERT_TRUE(ro) << ro.message();
  FakeDaemon daemon(online_config.control_socket, [&](const ControlRequest& r) {
    auto a = answer_query(**ro, r.target, QueryContext{SystemClock().now(), kDefaultStuckAfter});
    return ControlResponse{a.status, json::serialize(a.body)};
  });
  auto run = [&](const Config& config, const std::function<int(const ctl::Context&)>& command) {
    std::ostringstream out, err;
    ctl::Context c{config, Millis(5000), out, err};
    const int code = command(c);
    return std::to_string(code) + "\n" + out.str() + err.str();
  };
  const std::vector<std::vector<SelectionParam>> selections = {
      {}, {{"label", "one"}, {"key", "*1*"}}, {{"limit", "4"}, {"after", "one-3"}},
      {{"state", "queued"}, {"since", "1d"}}, {{"state", "sideways"}}};
  for (const auto& sel : selections)
    for (auto format : {ctl::ListFormat::table, ctl::ListFormat::json, ctl::ListFormat::jsonl,
                        ctl::ListFormat::csv}) {
      auto command = [&](const ctl::Context& c) { return ctl::list(c, sel, format); };
      const std::string online = run(online_config, command);
      EXPECT_EQ(online, run(config_, command)) << online;
    }
  for (const auto& command : std::vector<std::function<int(const ctl::Context&)>>{
           [](const ctl::Context& c) { return ctl::show(c, "two-3", true); },
           [](const ctl::Context& c) { return ctl::show(c, "two-3", false); },
           [](const ctl::Context& c) { return ctl::history(c, "one-0", true); },
           [](const ctl::Context& c) { return ctl::show(c, "nope", true); },
           [](const ctl::Context& c) { return ctl::stats(c, true); }})
    EXPECT_EQ(run(online_config, command), run(config_, command));
  EXPECT_GT(daemon.requests().size(), 20u);  // the online runs did ask the daemon
}

}  // namespace
}  // namespace personad::testing
