// End-to-end tests of the simulator's HTTP server: a real server on 127.0.0.1:0 in a thread,
// driven by a small synchronous Beast client (keep-alive, uploads, limits, faults, webhooks).
#include "sim_server.hpp"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <future>
#include <thread>

namespace creatify_sim {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace json = boost::json;
using asio::ip::tcp;
using namespace std::chrono;

// A simulator running on its own io_context thread for the duration of a test.
class RunningSim {
 public:
  RunningSim(SimConfig config, double time_scale = 1.0)
      : clock_(time_scale), server_(ioc_, clock_, std::move(config)) {
    const auto ec = server_.listen();
    EXPECT_FALSE(ec) << ec.message();
    server_.start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~RunningSim() {
    asio::post(ioc_, [this] {
      server_.stop();
      ioc_.stop();
    });
    thread_.join();
  }
  std::uint16_t port() const { return server_.port(); }

 private:
  asio::io_context ioc_{1};
  ScaledClock clock_;
  SimServer server_;
  std::thread thread_;
};

// One keep-alive connection to the simulator.
class Client {
 public:
  explicit Client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  Response send(http::verb method, const std::string& target, std::string body = {},
                std::string content_type = "application/json") {
    beast::error_code ec;
    Response res = try_send(method, target, std::move(body), std::move(content_type), ec);
    EXPECT_FALSE(ec) << target << ": " << ec.message();
    return res;
  }

  // Writes a request and never reads the answer (a client that then times out and closes).
  void send_only(http::verb method, const std::string& target, std::string body) {
    Request req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("X-API-ID", "id");
    req.set("X-API-KEY", "key");
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(stream_, req);
  }

  Response try_send(http::verb method, const std::string& target, std::string body,
                    std::string content_type, beast::error_code& ec) {
    Request req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("X-API-ID", "id");
    req.set("X-API-KEY", "key");
    if (!body.empty()) req.set(http::field::content_type, content_type);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(stream_, req, ec);
    Response res;
    if (!ec) http::read(stream_, buffer_, res, ec);
    return res;
  }

 private:
  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string create_body(const std::string& name, const std::string& webhook = {}) {
  json::object o{{"gender", "f"},
                 {"creator_name", name},
                 {"video_scene", "office"},
                 {"lipsync_input", "https://x/l.mp4"},
                 {"consent_video", "https://x/c.mp4"},
                 {"labels", json::array{"personad:" + name}}};
  if (!webhook.empty()) o["webhook_url"] = webhook;
  return json::serialize(o);
}

json::value parse(const Response& res) { return json::parse(res.body()); }

// Accepts one HTTP request on an ephemeral port and hands its body over.
class WebhookReceiver {
 public:
  WebhookReceiver() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] {
      beast::error_code ec;
      tcp::socket socket(ioc_);
      acceptor_.accept(socket, ec);
      beast::flat_buffer buffer;
      Request req;
      if (!ec) http::read(socket, buffer, req, ec);
      if (!ec) {
        Response res{http::status::ok, 11};
        res.prepare_payload();
        http::write(socket, res, ec);
      }
      body_.set_value(ec ? std::string() : req.body());
    });
  }
  ~WebhookReceiver() {
    // Unblock accept() in case the webhook never came; harmless if it did.
    {
      asio::io_context ioc;
      tcp::socket poke(ioc);
      beast::error_code ignored;
      poke.connect(acceptor_.local_endpoint(), ignored);
    }
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/hook";
  }
  std::future<std::string> body() { return body_.get_future(); }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::promise<std::string> body_;
  std::thread thread_;
};

TEST(SimServer, ListensOnAnEphemeralPort) {
  RunningSim sim{SimConfig{}};
  EXPECT_NE(sim.port(), 0);
}

TEST(SimServer, CreateGetAndListOnOneKeepAliveConnection) {
  RunningSim sim{SimConfig{}};
  Client client(sim.port());
  const Response created = client.send(http::verb::post, "/api/personas_v2/", create_body("Jane"));
  ASSERT_EQ(created.result(), http::status::created) << created.body();
  EXPECT_TRUE(created.keep_alive());
  const std::string id(parse(created).at("id").as_string());

  const Response got = client.send(http::verb::get, "/api/personas/" + id + "/");
  ASSERT_EQ(got.result(), http::status::ok);
  EXPECT_EQ(parse(got).at("creator_name"), "Jane");

  const Response list = client.send(http::verb::get, "/api/personas_v2/");
  ASSERT_EQ(list.result(), http::status::ok);
  EXPECT_EQ(parse(list).at("count"), 1);
  EXPECT_EQ(parse(list).at("results").at(0).at("id"), id.c_str());
}

TEST(SimServer, MultipartUploadIsStoredWithItsSize) {
  RunningSim sim{SimConfig{}};
  Client client(sim.port());
  const std::string video(300 * 1024, '\x01');
  const auto field = [](const std::string& name, const std::string& value) {
    return "--b0undary\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value +
           "\r\n";
  };
  const std::string body = field("gender", "m") + field("creator_name", "Up Loader") +
                           field("video_scene", "studio") + field("labels", "a") +
                           field("labels", "b") +
                           "--b0undary\r\nContent-Disposition: form-data; name=\"lipsync_input\"; "
                           "filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\n" +
                           video + "\r\n--b0undary--\r\n";
  const Response res = client.send(http::verb::post, "/api/personas_v2/", body,
                                   "multipart/form-data; boundary=b0undary");
  ASSERT_EQ(res.result(), http::status::created) << res.body();
  const json::value p = parse(res);
  EXPECT_EQ(p.at("lipsync_input"), "uploaded:clip.mp4 (307200 bytes)");
  EXPECT_EQ(p.at("labels"), (json::array{"a", "b"}));
}

TEST(SimServer, AnswersExpect100Continue) {
  RunningSim sim{SimConfig{}};
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), sim.port()));
  const std::string body = create_body("Patient");
  const std::string head =
      "POST /api/personas_v2/ HTTP/1.1\r\nHost: x\r\nX-API-ID: a\r\n"
      "X-API-KEY: b\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  asio::write(socket, asio::buffer(head));
  asio::streambuf interim;
  asio::read_until(socket, interim, "\r\n\r\n");
  const std::string first(asio::buffers_begin(interim.data()), asio::buffers_end(interim.data()));
  EXPECT_TRUE(first.starts_with("HTTP/1.1 100 Continue\r\n")) << first;
  asio::write(socket, asio::buffer(body));
  beast::flat_buffer buffer;
  Response res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.result(), http::status::created);
}

TEST(SimServer, BodyOverTheLimitIs413) {
  SimConfig config;
  config.limits.body_limit = 1024;
  RunningSim sim{config};
  Client client(sim.port());
  const Response res = client.send(http::verb::post, "/api/personas_v2/", std::string(4096, 'x'));
  EXPECT_EQ(res.result(), http::status::payload_too_large);
  EXPECT_FALSE(res.keep_alive());
}

TEST(SimServer, ConfiguredCredentialsAreEnforced) {
  SimConfig config;
  config.api.api_id = "id";
  config.api.api_key = "other";
  RunningSim sim{config};
  Client client(sim.port());
  const Response res = client.send(http::verb::get, "/api/personas/");
  EXPECT_EQ(res.result(), http::status::unauthorized);
  EXPECT_EQ(parse(res), json::parse(R"({"detail": "Invalid API credentials."})"));
}

TEST(SimServer, ResetFaultClosesWithoutAnsweringButAdminIsNeverFaulted) {
  SimConfig config;
  config.faults.reset = 1.0;
  RunningSim sim{config};
  {
    Client client(sim.port());
    beast::error_code ec;
    client.try_send(http::verb::get, "/api/personas/", {}, {}, ec);
    EXPECT_TRUE(ec);  // connection reset or end of stream, never a response
  }
  Client admin(sim.port());
  const Response stats = admin.send(http::verb::get, "/_sim/stats");
  ASSERT_EQ(stats.result(), http::status::ok);
  EXPECT_EQ(parse(stats).at("faults").at("reset"), 1);
  EXPECT_EQ(parse(stats).at("requests"), 1);
  EXPECT_EQ(parse(stats).at("lists"), 1);
}

TEST(SimServer, RateLimitFaultCarriesRetryAfter) {
  SimConfig config;
  config.faults.rate_limited = 1.0;
  config.retry_after_s = 3;
  RunningSim sim{config};
  Client client(sim.port());
  const Response res = client.send(http::verb::post, "/api/personas_v2/", create_body("Jane"));
  EXPECT_EQ(res.result(), http::status::too_many_requests);
  EXPECT_EQ(res[http::field::retry_after], "3");
  EXPECT_EQ(parse(client.send(http::verb::get, "/_sim/stats")).at("personas"), 0);  // not created
}

TEST(SimServer, ServerErrorFaultDoesNotCreate) {
  SimConfig config;
  config.faults.server_error = 1.0;
  RunningSim sim{config};
  Client client(sim.port());
  const Response res = client.send(http::verb::post, "/api/personas_v2/", create_body("Jane"));
  EXPECT_TRUE(res.result_int() == 500 || res.result_int() == 502 || res.result_int() == 503);
  EXPECT_EQ(parse(client.send(http::verb::get, "/_sim/stats")).at("personas"), 0);
}

TEST(SimServer, LostCreateIsStoredButNotReportedAsCreated) {
  SimConfig config;
  config.faults.lost_create = 1.0;
  config.seed = 4;
  RunningSim sim{config};
  for (int i = 0; i < 6; ++i) {
    Client client(sim.port());
    beast::error_code ec;
    const Response res =
        client.try_send(http::verb::post, "/api/personas_v2/",
                        create_body("Lost " + std::to_string(i)), "application/json", ec);
    EXPECT_TRUE(ec || res.result_int() == 500) << res.result_int();
  }
  Client admin(sim.port());
  const json::value all = parse(admin.send(http::verb::get, "/_sim/personas"));
  EXPECT_EQ(all.as_array().size(), 6u);
  EXPECT_EQ(parse(admin.send(http::verb::get, "/_sim/stats")).at("faults").at("lost_create"), 6);
}

TEST(SimServer, MalformedFaultTruncatesJsonButStillCreates) {
  SimConfig config;
  config.faults.malformed = 1.0;
  RunningSim sim{config};
  Client client(sim.port());
  const Response res = client.send(http::verb::post, "/api/personas_v2/", create_body("Jane"));
  EXPECT_EQ(res.result(), http::status::created);
  boost::system::error_code ec;
  json::parse(res.body(), ec);
  EXPECT_TRUE(ec) << res.body();
  EXPECT_EQ(parse(client.send(http::verb::get, "/_sim/stats")).at("personas"), 1);
  // Errors are never "malformed": only 2xx bodies are cut.
  const Response missing = client.send(http::verb::get, "/api/personas/nope/");
  EXPECT_EQ(parse(missing).at("detail"), "Not found.");
}

TEST(SimServer, SlowFaultDelaysTheAnswer) {
  SimConfig config;
  config.faults.slow = 1.0;
  config.slow_delay = milliseconds(200);
  RunningSim sim{config};
  Client client(sim.port());
  const auto start = steady_clock::now();
  EXPECT_EQ(client.send(http::verb::get, "/api/personas/").result(), http::status::ok);
  EXPECT_GE(steady_clock::now() - start, milliseconds(200));
}

json::value sim_stats(std::uint16_t port) {
  Client admin(port);
  return parse(admin.send(http::verb::get, "/_sim/stats"));
}

TEST(SimServer, SlowCreateIsStoredLateEvenWhenTheClientGaveUp) {
  SimConfig config;
  config.faults.slow_create = 1.0;
  config.slow_create_delay = milliseconds(400);
  RunningSim sim{config};
  {
    Client quitter(sim.port());
    quitter.send_only(http::verb::post, "/api/personas_v2/", create_body("Late"));
  }  // closed at once, like a client whose timeout is shorter than the server's work
  std::this_thread::sleep_for(milliseconds(100));
  json::value stats = sim_stats(sim.port());
  EXPECT_EQ(stats.at("personas"), 0);  // not stored yet: no get or list can see it
  EXPECT_EQ(stats.at("slow_creates_pending"), 1);
  EXPECT_EQ(stats.at("creates"), 1);
  {
    Client lister(sim.port());
    EXPECT_EQ(parse(lister.send(http::verb::get, "/api/personas_v2/")).at("count"), 0);
  }
  std::this_thread::sleep_for(milliseconds(600));
  stats = sim_stats(sim.port());
  EXPECT_EQ(stats.at("personas"), 1);  // the server stored it after the client left
  EXPECT_EQ(stats.at("slow_creates_pending"), 0);
  EXPECT_EQ(stats.at("faults").at("slow_create"), 1);
  Client lister(sim.port());
  EXPECT_EQ(parse(lister.send(http::verb::get, "/api/personas_v2/")).at("count"), 1);
}

TEST(SimServer, SlowCreateIsAnsweredOnceStoredWithItsStoredTime) {
  SimConfig config;
  config.faults.slow_create = 1.0;
  config.slow_create_delay = milliseconds(300);
  RunningSim sim{config};
  Client client(sim.port());
  const auto start = steady_clock::now();
  const Response res = client.send(http::verb::post, "/api/personas_v2/", create_body("Patient"));
  EXPECT_GE(steady_clock::now() - start, milliseconds(300));
  ASSERT_EQ(res.result(), http::status::created) << res.body();
  const std::string id(parse(res).at("id").as_string());
  EXPECT_EQ(client.send(http::verb::get, "/api/personas/" + id + "/").result(), http::status::ok);
  // Gets and lists are never slowed by it.
  const auto list_start = steady_clock::now();
  client.send(http::verb::get, "/api/personas_v2/");
  EXPECT_LT(steady_clock::now() - list_start, milliseconds(250));
}

TEST(SimServer, SlowCreateCanAlsoLoseItsAnswer) {
  SimConfig config;
  config.faults.slow_create = 1.0;
  config.faults.lost_create = 1.0;
  config.slow_create_delay = milliseconds(100);
  config.seed = 4;
  RunningSim sim{config};
  for (int i = 0; i < 4; ++i) {
    Client client(sim.port());
    beast::error_code ec;
    const Response res =
        client.try_send(http::verb::post, "/api/personas_v2/",
                        create_body("Lost late " + std::to_string(i)), "application/json", ec);
    EXPECT_TRUE(ec || res.result_int() == 500) << res.result_int();
  }
  const json::value stats = sim_stats(sim.port());
  EXPECT_EQ(stats.at("personas"), 4);
  EXPECT_EQ(stats.at("faults").at("lost_create"), 4);
  EXPECT_EQ(stats.at("faults").at("slow_create"), 4);
}

TEST(SimServer, ListLagKeepsANewPersonaOutOfListsForAWhile) {
  SimConfig config;
  config.book.list_lag = milliseconds(300);
  RunningSim sim{config};
  Client client(sim.port());
  const Response res = client.send(http::verb::post, "/api/personas_v2/", create_body("Lagging"));
  const std::string id(parse(res).at("id").as_string());
  EXPECT_EQ(client.send(http::verb::get, "/api/personas/" + id + "/").result(), http::status::ok);
  EXPECT_EQ(parse(client.send(http::verb::get, "/api/personas_v2/")).at("count"), 0);
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(parse(client.send(http::verb::get, "/api/personas_v2/")).at("count"), 1);
}

TEST(SimServer, ListPageFaultAnswers502ToListsOnly) {
  SimConfig config;
  config.faults.list_page = 1.0;
  RunningSim sim{config};
  Client client(sim.port());
  const Response created =
      client.send(http::verb::post, "/api/personas_v2/", create_body("Listed"));
  ASSERT_EQ(created.result(), http::status::created);
  const std::string id(parse(created).at("id").as_string());
  EXPECT_EQ(client.send(http::verb::get, "/api/personas/" + id + "/").result(), http::status::ok);
  for (const char* page : {"/api/personas_v2/", "/api/personas_v2/?page=2&page_size=1",
                           "/api/personas/", "/api/personas/paginated/?page=1"})
    EXPECT_EQ(client.send(http::verb::get, page).result(), http::status::bad_gateway) << page;
  const json::value stats = sim_stats(sim.port());
  EXPECT_EQ(stats.at("faults").at("list_page"), 4);
  EXPECT_EQ(stats.at("faults").at("5xx"), 0);
}

TEST(SimServer, ListSlowDelaysEveryListPageOnly) {
  SimConfig config;
  config.list_delay = milliseconds(250);
  RunningSim sim{config};
  Client client(sim.port());
  auto start = steady_clock::now();
  client.send(http::verb::post, "/api/personas_v2/", create_body("Quick"));
  EXPECT_LT(steady_clock::now() - start, milliseconds(200));
  for (const char* page : {"/api/personas_v2/", "/api/personas_v2/?page=1&page_size=1"}) {
    start = steady_clock::now();
    EXPECT_EQ(client.send(http::verb::get, page).result(), http::status::ok);
    EXPECT_GE(steady_clock::now() - start, milliseconds(250)) << page;
  }
  EXPECT_EQ(sim_stats(sim.port()).at("faults").at("list_slow"), 2);
}

TEST(SimServer, AbsurdRetryAfterAlternatesHugeSecondsAndYear9999) {
  SimConfig config;
  config.faults.rate_limited = 1.0;
  config.faults.retry_after_absurd = 1.0;
  RunningSim sim{config};
  Client client(sim.port());
  std::vector<std::string> seen;
  for (int i = 0; i < 4; ++i) {
    const Response res = client.send(http::verb::get, "/api/personas_v2/");
    EXPECT_EQ(res.result(), http::status::too_many_requests);
    EXPECT_TRUE(parse(res).at("detail").is_string());
    seen.emplace_back(res[http::field::retry_after]);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"4294967295", "Fri, 31 Dec 9999 23:59:59 GMT",
                                            "4294967295", "Fri, 31 Dec 9999 23:59:59 GMT"}));
  const json::value stats = sim_stats(sim.port());
  EXPECT_EQ(stats.at("faults").at("retry_after_absurd"), 4);
  EXPECT_EQ(stats.at("faults").at("429"), 4);
}

std::string multipart_head(std::size_t content_length, bool expect_continue = false) {
  return "POST /api/personas_v2/ HTTP/1.1\r\nHost: x\r\nX-API-ID: a\r\nX-API-KEY: b\r\n"
         "Content-Type: multipart/form-data; boundary=b0undary\r\n" +
         std::string(expect_continue ? "Expect: 100-continue\r\n" : "") +
         "Content-Length: " + std::to_string(content_length) + "\r\n\r\n";
}

TEST(SimServer, UploadOverTheLimitIs413FromTheHeadersAlone) {
  SimConfig config;
  config.limits.upload_limit = 1024 * 1024;
  RunningSim sim{config};
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), sim.port()));
  asio::write(socket, asio::buffer(multipart_head(8 * 1024 * 1024)));
  // No body byte sent: the answer comes anyway, and the server closes.
  beast::flat_buffer buffer;
  Response res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.result(), http::status::payload_too_large);
  EXPECT_EQ(parse(res), json::parse(R"({"detail": "file too large"})"));
  EXPECT_FALSE(res.keep_alive());
  beast::error_code ec;
  char byte;
  socket.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
  const json::value stats = sim_stats(sim.port());
  EXPECT_EQ(stats.at("creates"), 1);  // the create was received, and refused
  EXPECT_EQ(stats.at("personas"), 0);
  EXPECT_EQ(stats.at("faults").at("upload_too_large"), 1);
}

TEST(SimServer, EarlyUploadAnswerSurvivesTheBodyAlreadySent) {
  // The client has sent part of the body before it reads: the lingering close drains it, so
  // the answer is not destroyed by a reset.
  SimConfig config;
  config.limits.upload_limit = 64 * 1024;
  RunningSim sim{config};
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), sim.port()));
  const std::size_t total = 4 * 1024 * 1024;
  asio::write(socket, asio::buffer(multipart_head(total)));
  asio::write(socket, asio::buffer(std::string(512 * 1024, 'v')));
  std::this_thread::sleep_for(milliseconds(100));
  beast::flat_buffer buffer;
  Response res;
  beast::error_code ec;
  http::read(socket, buffer, res, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(res.result(), http::status::payload_too_large);
}

TEST(SimServer, UploadLimitAnswers413InsteadOf100Continue) {
  SimConfig config;
  config.limits.upload_limit = 1000;
  RunningSim sim{config};
  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), sim.port()));
  asio::write(socket, asio::buffer(multipart_head(5000, true)));
  beast::flat_buffer buffer;
  Response res;
  http::read(socket, buffer, res);
  EXPECT_EQ(res.result(), http::status::payload_too_large);
}

TEST(SimServer, UploadLimitAppliesToMultipartCreatesOnly) {
  SimConfig config;
  config.limits.upload_limit = 100;
  RunningSim sim{config};
  Client client(sim.port());
  // A JSON create over the limit is not an upload: handled as usual.
  EXPECT_EQ(client.send(http::verb::post, "/api/personas_v2/", create_body("Json")).result(),
            http::status::created);
  EXPECT_EQ(sim_stats(sim.port()).at("faults").at("upload_too_large"), 0);
}

TEST(SimServer, FaultRatesChangeAtRunTime) {
  RunningSim sim{SimConfig{}};
  Client client(sim.port());
  EXPECT_EQ(client.send(http::verb::get, "/api/personas/").result(), http::status::ok);
  client.send(http::verb::post, "/_sim/faults", R"({"429": 1})");
  EXPECT_EQ(client.send(http::verb::get, "/api/personas/").result(),
            http::status::too_many_requests);
}

TEST(SimServer, WebhookFiresWhenThePersonaFinishes) {
  WebhookReceiver receiver;
  auto delivered = receiver.body();
  SimConfig config;
  config.book.stage_duration = seconds(1);
  RunningSim sim{config, 10000.0};  // six stages of about a second: under a millisecond
  Client client(sim.port());
  const Response res = client.send(http::verb::post, "/api/personas_v2/",
                                   create_body("Hooked [reject]", receiver.url()));
  ASSERT_EQ(res.result(), http::status::created);
  ASSERT_EQ(delivered.wait_for(seconds(10)), std::future_status::ready);
  const json::value payload = json::parse(delivered.get());
  EXPECT_EQ(payload.at("id"), parse(res).at("id"));
  EXPECT_EQ(payload.at("status"), "rejected");
  EXPECT_EQ(payload.at("process_status"), "rejected");
  EXPECT_TRUE(payload.at("failed_reason").is_string());
}

TEST(SimServer, PinningAFinalStatusFiresTheWebhook) {
  WebhookReceiver receiver;
  auto delivered = receiver.body();
  RunningSim sim{SimConfig{}};  // real time: the lifecycle itself would take a day
  Client client(sim.port());
  const Response res =
      client.send(http::verb::post, "/api/personas_v2/", create_body("Pinned", receiver.url()));
  const std::string id(parse(res).at("id").as_string());
  client.send(http::verb::post, "/_sim/personas/" + id,
              R"({"process_status": "done", "is_active": true})");
  ASSERT_EQ(delivered.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_EQ(json::parse(delivered.get()).at("status"), "done");
}

TEST(SimServer, WebhookDropOfOneSendsNoCallbackAndCountsIt) {
  WebhookReceiver receiver;
  auto delivered = receiver.body();
  SimConfig config;
  config.webhook_drop = 1.0;
  RunningSim sim{config};
  Client client(sim.port());
  const Response res =
      client.send(http::verb::post, "/api/personas_v2/", create_body("Dropped", receiver.url()));
  const std::string id(parse(res).at("id").as_string());
  client.send(http::verb::post, "/_sim/personas/" + id,
              R"({"process_status": "done", "is_active": true})");
  // The drop is decided when the callback falls due: the stats say so without a wait.
  const auto deadline = steady_clock::now() + seconds(5);
  json::value stats;
  do stats = parse(client.send(http::verb::get, "/_sim/stats"));
  while (stats.at("webhooks").at("dropped") != 1 && steady_clock::now() < deadline);
  EXPECT_EQ(stats.at("webhooks").at("dropped"), 1);
  EXPECT_EQ(stats.at("webhooks").at("queued"), 0);
  EXPECT_EQ(delivered.wait_for(milliseconds(300)), std::future_status::timeout);
}

TEST(SimServer, AdvanceMovesTheLifecycleForward) {
  RunningSim sim{SimConfig{}};
  Client client(sim.port());
  const std::string id(
      parse(client.send(http::verb::post, "/api/personas_v2/", create_body("Jane [done]")))
          .at("id")
          .as_string());
  client.send(http::verb::post, "/_sim/advance", R"({"by": "2d"})");
  const json::value p = parse(client.send(http::verb::get, "/api/personas/" + id + "/"));
  EXPECT_EQ(p.at("process_status"), "done");
  EXPECT_EQ(p.at("is_active"), true);
}

TEST(SimServer, ManyRequestsOnManyConnections) {
  RunningSim sim{SimConfig{}};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Client client(sim.port());
      for (int i = 0; i < 50; ++i)
        client.send(http::verb::post, "/api/personas_v2/",
                    create_body("c" + std::to_string(t) + "-" + std::to_string(i)));
    });
  }
  for (auto& t : threads) t.join();
  Client client(sim.port());
  const json::value stats = parse(client.send(http::verb::get, "/_sim/stats"));
  EXPECT_EQ(stats.at("personas"), 200);
  EXPECT_EQ(stats.at("label_duplicates"), 0);
  EXPECT_EQ(stats.at("client_ref_duplicates"), 0);
}

}  // namespace
}  // namespace creatify_sim
