// Tests of the Beast Creatify client against a scripted HTTP server running inside the test on
// 127.0.0.1:0: request shapes, uploads, outcome mapping, pooling, limits, timeouts and TLS errors.
#include "personad/creatify_client.hpp"
#include "personad/config.hpp"
#include "personad/url.hpp"
#include "personad/remote_list.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

#include "temp_dir.hpp"

namespace personad {
namespace {

using personad::testing::TempDir;

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using Request = http::request<http::string_body>;

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
constexpr const char* kApiId = "id-123";
constexpr const char* kApiKey = "secret-key-xyz";

// What the scripted server does with one request.
struct Reply {
  using Headers = std::vector<std::pair<std::string, std::string>>;
  Reply(int status_ = 200, std::string body_ = "", Headers headers_ = {})
      : status(status_), body(std::move(body_)), headers(std::move(headers_)) {}
  static Reply hanging() {
    Reply r;
    r.hang = true;
    return r;
  }
  static Reply dropped() {
    Reply r;
    r.drop = true;
    return r;
  }

  int status = 200;
  std::string body;
  Headers headers;
  std::chrono::milliseconds delay{0};
  bool hang = false;            // read the request, never answer
  bool drop = false;            // read the request, close without answering
  bool close_silently = false;  // answer, then close without a Connection: close header
};

struct Seen {
  Request request;
  int connection = 0;
};

// A tiny HTTP/1.1 server on the test's io_context. Sessions hold it by shared_ptr, so it lives
// as long as any of them.
class TestServer : public std::enable_shared_from_this<TestServer> {
 public:
  using Handler = std::function<Reply(const Request&)>;

  static std::shared_ptr<TestServer> start(asio::io_context& io, Handler handler) {
    auto s = std::shared_ptr<TestServer>(new TestServer(io, std::move(handler)));
    asio::co_spawn(io, s->accept_loop(), asio::detached);
    return s;
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  unsigned short port() const { return port_; }

  std::vector<Seen> seen;
  int accepted = 0;
  int open = 0;
  int max_open = 0;
  int active = 0;
  int max_active = 0;

 private:
  TestServer(asio::io_context& io, Handler handler)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        handler_(std::move(handler)) {
    port_ = acceptor_.local_endpoint().port();
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kToken);
      if (ec) co_return;
      asio::co_spawn(acceptor_.get_executor(), session(self, std::move(socket), ++accepted),
                     asio::detached);
    }
  }

  static asio::awaitable<void> session(std::shared_ptr<TestServer> self, tcp::socket socket,
                                       int id) {
    max_up(self->open, self->max_open);
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64 * 1024 * 1024);
      auto [rec, n] = co_await http::async_read(socket, buffer, parser, kToken);
      if (rec) break;
      Request req = parser.release();
      self->seen.push_back({req, id});
      max_up(self->active, self->max_active);
      Reply reply = self->handler_(req);
      asio::steady_timer timer(socket.get_executor());
      if (reply.hang) reply.delay = 60s;
      if (reply.delay > 0ms) {
        timer.expires_after(reply.delay);
        co_await timer.async_wait(kToken);
      }
      --self->active;
      if (reply.drop || reply.hang) break;
      http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
      res.keep_alive(req.keep_alive());
      for (auto& [k, v] : reply.headers) res.set(k, v);
      res.body() = reply.body;
      res.prepare_payload();
      auto [wec, w] = co_await http::async_write(socket, res, kToken);
      if (wec || reply.close_silently || !res.keep_alive()) break;
    }
    --self->open;
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  static void max_up(int& value, int& max) { max = std::max(max, ++value); }

  tcp::acceptor acceptor_;
  Handler handler_;
  unsigned short port_ = 0;
};

std::string persona_json(std::string_view id, std::string_view status = "pending") {
  return json::serialize(
      json::object{{"id", id}, {"process_status", status}, {"is_active", false}});
}

Reply ok_persona(std::string_view id) { return Reply{201, persona_json(id)}; }

PersonaSpec url_spec() {
  PersonaSpec s;
  s.key = "acme-jane-01";
  s.gender = "f";
  s.creator_name = "Jane Doe";
  s.video_scene = "office";
  s.keywords = "friendly";
  s.lipsync_input = "https://cdn.example.com/jane/lipsync.mp4";
  s.consent_video = "https://cdn.example.com/jane/consent.mp4";
  s.labels = {"acme", "batch-7"};
  return s;
}

// Runs one operation on the io_context until it completes (or the limit passes).
template <class T>
T run(asio::io_context& io, asio::awaitable<T> op, std::chrono::milliseconds limit = 5s) {
  std::optional<T> out;
  asio::co_spawn(io, std::move(op), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    out = std::move(value);
    io.stop();
  });
  io.restart();
  io.run_for(limit);
  if (!out) throw std::runtime_error("operation did not finish in time");
  return std::move(*out);
}

// The whole list, one try per page (page retries are remote_list's, tested there).
asio::awaitable<ApiResult<Listing>> list_all(CreatifyApi& api) {
  static SystemClock clock;
  ListingOptions o;
  o.page_attempts = 1;
  co_return co_await fetch_listing(api, clock, o, [] { return 0.5; });
}

// Runs several operations concurrently until all complete.
template <class T>
std::vector<T> run_all(asio::io_context& io, std::vector<asio::awaitable<T>> ops,
                       std::chrono::milliseconds limit = 5s) {
  std::vector<std::optional<T>> out(ops.size());
  std::size_t done = 0;
  for (std::size_t i = 0; i < ops.size(); ++i)
    asio::co_spawn(io, std::move(ops[i]), [&, i](std::exception_ptr e, T value) {
      if (e) std::rethrow_exception(e);
      out[i] = std::move(value);
      if (++done == out.size()) io.stop();
    });
  io.restart();
  io.run_for(limit);
  if (done != out.size()) throw std::runtime_error("operations did not finish in time");
  std::vector<T> values;
  for (auto& o : out) values.push_back(std::move(*o));
  return values;
}

class CreatifyClientTest : public ::testing::Test {
 protected:
  void serve(TestServer::Handler handler) { server = TestServer::start(io, std::move(handler)); }

  ClientOptions options() const {
    ClientOptions o;
    o.base_url = server ? server->url() : "http://127.0.0.1:1";
    o.timeout = 2s;
    o.max_requests_per_second = 1000;
    o.max_in_flight = 4;
    return o;
  }

  std::unique_ptr<CreatifyClient> make_client(ClientOptions o,
                                              std::shared_ptr<spdlog::logger> log = nullptr) {
    auto c = CreatifyClient::create_client(io.get_executor(), std::move(o),
                                           Credentials{kApiId, kApiKey, "test"}, std::move(log));
    if (!c) throw std::runtime_error(c.message());
    return std::move(c).value();
  }

  std::unique_ptr<CreatifyClient> make_client() { return make_client(options()); }

  asio::io_context io;
  std::shared_ptr<TestServer> server;
};

// ---- create ----

TEST_F(CreatifyClientTest, CreateSendsJsonWithCredentialsAndItsLabel) {
  serve([](const Request&) { return ok_persona("p-1"); });
  auto client = make_client();
  auto r = run(io, client->create(url_spec(), "ref-42"));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(r.value.id, "p-1");
  EXPECT_EQ(r.http_status, 201);

  ASSERT_EQ(server->seen.size(), 1u);
  const Request& req = server->seen[0].request;
  EXPECT_EQ(req.method(), http::verb::post);
  EXPECT_EQ(req.target(), "/api/personas_v2/");
  EXPECT_EQ(req[http::field::content_type], "application/json");
  EXPECT_EQ(req[http::field::accept], "application/json");
  EXPECT_EQ(req[http::field::user_agent], "personad");
  EXPECT_EQ(req[http::field::host], "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(req["X-API-ID"], kApiId);
  EXPECT_EQ(req["X-API-KEY"], kApiKey);
  auto body = json::parse(req.body());
  EXPECT_EQ(body.at("creator_name"), "Jane Doe");
  EXPECT_EQ(body.at("lipsync_input"), "https://cdn.example.com/jane/lipsync.mp4");
  EXPECT_EQ(body.at("labels"), json::parse(R"(["acme", "batch-7", "personad:ref-42"])"));
}

struct FormPart {
  std::string name, filename, content_type, data;
};

std::vector<FormPart> parse_multipart(const std::string& body, const std::string& boundary) {
  const std::string delim = "--" + boundary;
  std::vector<FormPart> parts;
  if (body.rfind(delim + "\r\n", 0) != 0) throw std::runtime_error("body does not open a part");
  std::size_t pos = 0;
  for (;;) {
    pos += delim.size();
    if (body.compare(pos, 4, "--\r\n") == 0) {
      if (pos + 4 != body.size()) throw std::runtime_error("bytes after the final boundary");
      return parts;
    }
    pos += 2;
    auto head_end = body.find("\r\n\r\n", pos);
    auto next = body.find("\r\n" + delim, head_end);
    if (head_end == std::string::npos || next == std::string::npos)
      throw std::runtime_error("truncated part");
    std::string head = body.substr(pos, head_end - pos);
    FormPart part;
    auto quoted = [&](const std::string& key) {
      auto at = head.find(key + "=\"");
      if (at == std::string::npos) return std::string();
      at += key.size() + 2;
      return head.substr(at, head.find('"', at) - at);
    };
    part.name = quoted("name");
    part.filename = quoted("filename");
    if (auto ct = head.find("Content-Type: "); ct != std::string::npos)
      part.content_type = head.substr(ct + 14, head.find("\r\n", ct) - ct - 14);
    part.data = body.substr(head_end + 4, next - head_end - 4);
    parts.push_back(std::move(part));
    pos = next + 2;
  }
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  // Bytes that look like multipart syntax must pass through untouched.
  s.replace(n / 2, 12, "\r\n--\r\n\r\n--x");
  return s;
}

TEST_F(CreatifyClientTest, CreateUploadsLocalVideosAsStreamedMultipart) {
  serve([](const Request&) { return ok_persona("p-up"); });
  TempDir dir;
  const std::string lipsync = random_bytes(200 * 1024 + 123, 1);  // several 64 KiB chunks
  const std::string consent = random_bytes(1000, 2);
  auto spec = url_spec();
  spec.lipsync_input = dir.write("jane lipsync.mp4", lipsync);
  spec.consent_video = "file:" + dir.write("consent.MOV", consent).string();
  spec.webhook_url = "https://hooks.example.com/x";

  auto client = make_client();
  auto r = run(io, client->create(spec, "ref-7"));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(r.value.id, "p-up");

  ASSERT_EQ(server->seen.size(), 1u);
  const Request& req = server->seen[0].request;
  EXPECT_EQ(req.target(), "/api/personas_v2/");
  EXPECT_EQ(req["X-API-KEY"], kApiKey);
  std::string content_type(req[http::field::content_type]);
  ASSERT_EQ(content_type.rfind("multipart/form-data; boundary=", 0), 0u) << content_type;
  std::string boundary = content_type.substr(content_type.find('=') + 1);
  EXPECT_EQ(req[http::field::content_length], std::to_string(req.body().size()));
  EXPECT_TRUE(req[http::field::transfer_encoding].empty());

  auto parts = parse_multipart(req.body(), boundary);
  std::vector<std::string> labels;
  std::map<std::string, FormPart> by_name;
  for (auto& p : parts) {
    if (p.name == "labels")
      labels.push_back(p.data);
    else
      by_name[p.name] = p;
  }
  EXPECT_EQ(labels, (std::vector<std::string>{"acme", "batch-7", "personad:ref-7"}));
  EXPECT_EQ(by_name["gender"].data, "f");
  EXPECT_EQ(by_name["creator_name"].data, "Jane Doe");
  EXPECT_EQ(by_name["video_scene"].data, "office");
  EXPECT_EQ(by_name["keywords"].data, "friendly");
  EXPECT_EQ(by_name["webhook_url"].data, "https://hooks.example.com/x");
  EXPECT_FALSE(by_name.count("gdown_url"));

  const FormPart& lip = by_name["lipsync_input"];
  EXPECT_EQ(lip.filename, "jane lipsync.mp4");
  EXPECT_EQ(lip.content_type, "video/mp4");
  EXPECT_TRUE(lip.data == lipsync) << "lipsync bytes differ (" << lip.data.size() << " bytes)";
  const FormPart& con = by_name["consent_video"];
  EXPECT_EQ(con.filename, "consent.MOV");
  EXPECT_EQ(con.content_type, "video/quicktime");
  EXPECT_TRUE(con.data == consent);
}

TEST_F(CreatifyClientTest, CreateWithMixedUrlAndLocalVideo) {
  serve([](const Request&) { return ok_persona("p-mix"); });
  TempDir dir;
  auto spec = url_spec();
  spec.consent_video = dir.write("c.mp4", "tiny");
  auto client = make_client();
  auto r = run(io, client->create(spec, "r"));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  const Request& req = server->seen.at(0).request;
  std::string ct(req[http::field::content_type]);
  auto parts = parse_multipart(req.body(), ct.substr(ct.find('=') + 1));
  auto lip =
      std::find_if(parts.begin(), parts.end(), [](auto& p) { return p.name == "lipsync_input"; });
  ASSERT_NE(lip, parts.end());
  EXPECT_EQ(lip->data, "https://cdn.example.com/jane/lipsync.mp4");
  EXPECT_EQ(lip->filename, "");
  auto con =
      std::find_if(parts.begin(), parts.end(), [](auto& p) { return p.name == "consent_video"; });
  ASSERT_NE(con, parts.end());
  EXPECT_EQ(con->data, "tiny");
}

TEST_F(CreatifyClientTest, CreateWithMissingLocalFileSendsNothing) {
  serve([](const Request&) { return ok_persona("never"); });
  TempDir dir;
  auto spec = url_spec();
  spec.consent_video = (dir.path() / "gone.mp4").string();
  auto client = make_client();
  auto r = run(io, client->create(spec, "r"));
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_NE(r.message.find("consent_video"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find(spec.consent_video), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("(request not sent)"), std::string::npos) << r.message;
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(server->accepted, 0);
}

// Intake keeps a video's real path, checked against the media roots. A symbolic link put in
// its way afterwards (the file itself, or a directory on the path, swapped for a link to a
// secret) is refused at the upload: nothing is sent.
TEST_F(CreatifyClientTest, AVideoSwappedForASymlinkAfterItsCheckIsNotUploaded) {
  serve([](const Request&) { return ok_persona("never"); });
  TempDir dir;
  const std::string secret = dir.write("secret.txt", "root:$6$hash").string();
  std::filesystem::create_directories(dir.path() / "media" / "acme");
  const std::string video = dir.write("media/acme/consent.mp4", random_bytes(1024, 5)).string();
  auto client = make_client();

  // The file replaced by a link to the secret.
  std::filesystem::remove(video);
  std::filesystem::create_symlink(secret, video);
  auto spec = url_spec();
  spec.consent_video = video;
  auto r = run(io, client->create(spec, "r"));
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_FALSE(r.sent);
  EXPECT_NE(r.message.find("symbolic link"), std::string::npos) << r.message;

  // A directory on its path replaced by a link to another tree that has a file of that name.
  std::filesystem::remove(video);
  std::filesystem::create_directories(dir.path() / "elsewhere");
  dir.write("elsewhere/consent.mp4", "not the checked file");
  std::filesystem::remove_all(dir.path() / "media" / "acme");
  std::filesystem::create_directory_symlink(dir.path() / "elsewhere", dir.path() / "media" / "acme");
  r = run(io, client->create(spec, "r"));
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_FALSE(r.sent);
  EXPECT_NE(r.message.find("now leads to"), std::string::npos) << r.message;
  EXPECT_EQ(server->accepted, 0);
}

TEST_F(CreatifyClientTest, CreateWhoseFileVanishesBeforeSendingIsPermanent) {
  // One slot: the create waits behind a GET, and the file disappears meanwhile.
  TempDir dir;
  auto spec = url_spec();
  spec.consent_video = dir.write("consent.mp4", random_bytes(100 * 1024, 3));
  serve([&](const Request& req) {
    std::filesystem::remove(spec.consent_video);
    Reply r{200, persona_json("p")};
    r.delay = 20ms;
    return r;
  });
  auto o = options();
  o.max_in_flight = 1;
  auto client = make_client(o);
  std::vector<asio::awaitable<ApiResult<RemotePersona>>> ops;
  ops.push_back(client->get("p"));
  ops.push_back(client->create(spec, "r"));
  auto results = run_all(io, std::move(ops));
  EXPECT_EQ(results[0].outcome, Outcome::ok);
  const auto& r = results[1];
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_NE(r.message.find("consent_video: cannot open " + spec.consent_video), std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("not completely sent"), std::string::npos) << r.message;
  EXPECT_FALSE(r.sent);
  EXPECT_EQ(server->seen.size(), 1u);  // the server never got a whole POST
}

TEST_F(CreatifyClientTest, CreateRejectedByValidationIsPermanent) {
  serve([](const Request&) {
    return Reply{400, R"({"creator_name": ["This field is required."]})"};
  });
  auto client = make_client();
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.message, "POST /api/personas_v2/: HTTP 400: creator_name: This field is required.");
}

TEST_F(CreatifyClientTest, CreateWithoutAnswerIsUnknownAndNeverResent) {
  serve([](const Request&) { return Reply::dropped(); });
  auto client = make_client();
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_NE(r.message.find("POST /api/personas_v2/: "), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("(request sent; outcome unknown)"), std::string::npos) << r.message;
  EXPECT_TRUE(r.sent);
  EXPECT_EQ(server->seen.size(), 1u);
}

TEST_F(CreatifyClientTest, CreateWithServerErrorIsTransientAndUnknown) {
  serve([](const Request&) { return Reply{502, "<html><title>502 Bad Gateway</title></html>"}; });
  auto client = make_client();
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.http_status, 502);
  EXPECT_EQ(r.message,
            "POST /api/personas_v2/: HTTP 502: 502 Bad Gateway (request sent; outcome unknown)");
}

TEST_F(CreatifyClientTest, CreateWithMalformedSuccessIsTransient) {
  serve([](const Request&) { return Reply{201, R"({"process_status": "pending"})"}; });
  auto client = make_client();
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.http_status, 201);
  EXPECT_NE(r.message.find("malformed response"), std::string::npos) << r.message;
}

TEST_F(CreatifyClientTest, CreateDoesNotReuseAConnectionTheServerHasClosed) {
  // The server closes each connection after answering without saying so: a POST on that pooled
  // connection could not tell "never arrived" from "lost reply".
  serve([](const Request& req) {
    Reply r = req.method() == http::verb::get ? Reply{200, persona_json("p")} : ok_persona("p-new");
    r.close_silently = true;
    return r;
  });
  auto client = make_client();
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  auto r = run(io, client->create(url_spec(), "r"));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  ASSERT_EQ(server->seen.size(), 2u);
  EXPECT_EQ(server->seen[1].request.method(), http::verb::post);
  EXPECT_NE(server->seen[1].connection, server->seen[0].connection);
}

TEST_F(CreatifyClientTest, CreateReusesAConnectionThatHasJustAnswered) {
  serve([](const Request& req) {
    return req.method() == http::verb::get ? Reply{200, persona_json("p")} : ok_persona("p-new");
  });
  auto client = make_client();
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  auto r = run(io, client->create(url_spec(), "r"));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(server->accepted, 1);
  ASSERT_EQ(server->seen.size(), 2u);
  EXPECT_EQ(server->seen[1].connection, server->seen[0].connection);
}

TEST_F(CreatifyClientTest, CreateOpensANewConnectionWhenThePooledOnesIdledPastTheLimit) {
  serve([](const Request& req) {
    return req.method() == http::verb::get ? Reply{200, persona_json("p")} : ok_persona("p-new");
  });
  auto o = options();
  o.create_reuse_limit = 0ms;  // every pooled connection is too old for a create
  auto client = make_client(o);
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  ASSERT_EQ(run(io, client->create(url_spec(), "r")).outcome, Outcome::ok);
  EXPECT_EQ(server->accepted, 2);
  EXPECT_EQ(client->idle_connections(), 2u);  // the older one was left in the pool for reads
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_EQ(server->accepted, 2);
  ASSERT_EQ(server->seen.size(), 3u);
  EXPECT_NE(server->seen[1].connection, server->seen[0].connection);
}

TEST_F(CreatifyClientTest, CreateLostOnAReusedConnectionIsUnknownAndNeverResent) {
  // The server reads the POST on the pooled connection and closes it without an answer: it may
  // have created the avatar, so the create is neither retried on a new connection nor "not sent".
  serve([](const Request& req) {
    return req.method() == http::verb::get ? Reply{200, persona_json("p")} : Reply::dropped();
  });
  auto client = make_client();
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_NE(r.message.find("(request sent; outcome unknown)"), std::string::npos) << r.message;
  EXPECT_TRUE(r.sent);
  EXPECT_EQ(server->accepted, 1);
  ASSERT_EQ(server->seen.size(), 2u);
  EXPECT_EQ(server->seen[1].request.method(), http::verb::post);
}

// ---- an answer before the whole request has arrived ----

// What the raw server below does once it has sent its answer.
enum class AfterAnswer {
  close,           // close at once with the body unread: the client's side is reset
  shutdown_close,  // end its sending side (FIN), then close with the body unread (reset)
  shutdown_hold,   // end its sending side, then neither read nor close: the client's write blocks
};

// A raw TCP server that reads only a request's headers, sends `response` as is, then does
// `after`. Its small receive buffer keeps a multi-megabyte body from vanishing into kernel
// buffers, so the client is still writing when the answer comes.
class EarlyAnswerServer : public std::enable_shared_from_this<EarlyAnswerServer> {
 public:
  static std::shared_ptr<EarlyAnswerServer> start(asio::io_context& io, std::string response,
                                                  AfterAnswer after) {
    auto s = std::shared_ptr<EarlyAnswerServer>(
        new EarlyAnswerServer(io, std::move(response), after));
    asio::co_spawn(io, s->accept_loop(), asio::detached);
    return s;
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

  int connections = 0;
  std::string head;  // what it read of the last request (its headers, maybe some body)

 private:
  EarlyAnswerServer(asio::io_context& io, std::string response, AfterAnswer after)
      : acceptor_(io), response_(std::move(response)), after_(after) {
    acceptor_.open(tcp::v4());
    acceptor_.set_option(asio::socket_base::receive_buffer_size(16 * 1024));  // inherited
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kToken);
      if (ec) co_return;
      ++connections;
      asio::co_spawn(acceptor_.get_executor(), session(self, std::move(socket)), asio::detached);
    }
  }

  static asio::awaitable<void> session(std::shared_ptr<EarlyAnswerServer> self,
                                       tcp::socket socket) {
    std::string data;
    auto [rec, n] =
        co_await asio::async_read_until(socket, asio::dynamic_buffer(data), "\r\n\r\n", kToken);
    if (rec) co_return;
    self->head = data;
    auto [wec, w] = co_await asio::async_write(socket, asio::buffer(self->response_), kToken);
    if (wec) co_return;
    beast::error_code ignored;
    if (self->after_ != AfterAnswer::close) socket.shutdown(tcp::socket::shutdown_send, ignored);
    if (self->after_ == AfterAnswer::shutdown_hold) {
      asio::steady_timer hold(socket.get_executor(), 30s);
      co_await hold.async_wait(kToken);
    }
    socket.close(ignored);
  }

  tcp::acceptor acceptor_;
  std::string response_;
  AfterAnswer after_;
};

std::string raw_response(std::string_view status_line, std::string_view body,
                         std::string_view extra_headers = "",
                         std::optional<std::size_t> content_length = std::nullopt) {
  return "HTTP/1.1 " + std::string(status_line) +
         "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(content_length.value_or(body.size())) + "\r\n" +
         std::string(extra_headers) + "\r\n" + std::string(body);
}

class CreatifyClientEarlyAnswerTest : public CreatifyClientTest {
 protected:
  // Creates a persona whose lipsync video is a local file of 8 MiB against a server that
  // answers `response` after the request's headers, then does `after`.
  ApiResult<RemotePersona> create_against(std::string response, AfterAnswer after) {
    early = EarlyAnswerServer::start(io, std::move(response), after);
    auto spec = url_spec();
    spec.lipsync_input = dir.write("big.mp4", std::string(8 * 1024 * 1024, 'v')).string();
    auto o = options();
    o.base_url = early->url();
    auto client = make_client(o);
    const auto start = std::chrono::steady_clock::now();
    auto r = run(io, client->create(spec, "ref-early"));
    elapsed = std::chrono::steady_clock::now() - start;
    io.restart();
    io.run_for(50ms);  // time for a second connection, if there were one
    return r;
  }

  static constexpr AfterAnswer kAll[] = {AfterAnswer::close, AfterAnswer::shutdown_close,
                                         AfterAnswer::shutdown_hold};
  TempDir dir;
  std::shared_ptr<EarlyAnswerServer> early;
  std::chrono::steady_clock::duration elapsed{};
};

std::string name_of(AfterAnswer a) {
  switch (a) {
    case AfterAnswer::close:
      return "close";
    case AfterAnswer::shutdown_close:
      return "shutdown_close";
    case AfterAnswer::shutdown_hold:
      return "shutdown_hold";
  }
  return "?";
}

TEST_F(CreatifyClientEarlyAnswerTest, TooLargeBeforeTheUploadEndsIsPermanent) {
  for (auto after : kAll) {
    SCOPED_TRACE(name_of(after));
    auto r = create_against(
        raw_response("413 Request Entity Too Large", R"({"detail":"file too large"})"), after);
    EXPECT_EQ(r.outcome, Outcome::permanent) << r.message;
    EXPECT_EQ(r.http_status, 413);
    EXPECT_EQ(r.message, "POST /api/personas_v2/: HTTP 413: file too large");
    EXPECT_TRUE(r.sent);  // the API's own rejection, not a request that never arrived
    EXPECT_EQ(early->connections, 1);
    EXPECT_NE(early->head.find("POST /api/personas_v2/ HTTP/1.1"), std::string::npos);
    // The answer ends the upload: no waiting for a blocked write until the timeout (2 s).
    EXPECT_LT(elapsed, 1500ms);
  }
}

TEST_F(CreatifyClientEarlyAnswerTest, FieldErrorBeforeTheUploadEndsIsPermanent) {
  for (auto after : kAll) {
    SCOPED_TRACE(name_of(after));
    auto r = create_against(
        raw_response(
            "400 Bad Request",
            R"({"lipsync_input": ["The submitted file is empty."], "gender": ["Invalid."]})"),
        after);
    EXPECT_EQ(r.outcome, Outcome::permanent) << r.message;
    EXPECT_EQ(r.http_status, 400);
    EXPECT_EQ(r.message,
              "POST /api/personas_v2/: HTTP 400: lipsync_input: The submitted file is empty.; "
              "gender: Invalid.");
    EXPECT_EQ(early->connections, 1);
    EXPECT_LT(elapsed, 1500ms);
  }
}

TEST_F(CreatifyClientEarlyAnswerTest, UnavailableBeforeTheUploadEndsWasNotActedOn) {
  for (auto after : kAll) {
    SCOPED_TRACE(name_of(after));
    auto r = create_against(
        raw_response("503 Service Unavailable", R"({"detail":"busy"})", "Retry-After: 30\r\n"),
        after);
    EXPECT_EQ(r.outcome, Outcome::transient) << r.message;
    EXPECT_EQ(r.http_status, 503);
    EXPECT_EQ(r.retry_after, Millis(30'000));
    EXPECT_EQ(r.message,
              "POST /api/personas_v2/: HTTP 503: busy "
              "(request not completely sent, so not acted on)");
    EXPECT_FALSE(r.sent);  // certainly not created: resent without a reconcile
    EXPECT_EQ(early->connections, 1);
    EXPECT_LT(elapsed, 1500ms);
  }
}

TEST_F(CreatifyClientEarlyAnswerTest, EarlyAnswerCutShortWasNotActedOn) {
  for (auto after : kAll) {
    SCOPED_TRACE(name_of(after));
    auto r = create_against(
        raw_response("503 Service Unavailable", R"({"detail":"bu)", "", 200), after);
    EXPECT_EQ(r.outcome, Outcome::transient) << r.message;
    EXPECT_EQ(r.http_status, 0);
    EXPECT_FALSE(r.sent);
    EXPECT_EQ(r.message.rfind("POST /api/personas_v2/: HTTP 503 response cut short: ", 0), 0u)
        << r.message;
    EXPECT_TRUE(r.message.ends_with(" (request not completely sent, so not acted on)"))
        << r.message;
    EXPECT_EQ(early->connections, 1);
    EXPECT_LT(elapsed, 1500ms);
  }
}

// The usual order still holds: the whole upload arrives, then the rejection.
TEST_F(CreatifyClientTest, TooLargeAfterTheWholeUploadIsPermanent) {
  serve([](const Request&) { return Reply{413, R"({"detail":"file too large"})"}; });
  TempDir dir;
  auto spec = url_spec();
  spec.lipsync_input = dir.write("big.mp4", std::string(3 * 1024 * 1024, 'v')).string();
  auto client = make_client();
  auto r = run(io, client->create(spec, "r"));
  EXPECT_EQ(r.outcome, Outcome::permanent) << r.message;
  EXPECT_EQ(r.http_status, 413);
  EXPECT_EQ(r.message, "POST /api/personas_v2/: HTTP 413: file too large");
  EXPECT_TRUE(r.sent);
  ASSERT_EQ(server->seen.size(), 1u);
  EXPECT_GT(server->seen[0].request.body().size(), 3u * 1024 * 1024);
}

// ---- absurd headers ----

TEST_F(CreatifyClientTest, HugeRetryAfterIsKeptWithoutWrapping) {
  serve([](const Request&) {
    return Reply{429, R"({"detail":"slow down"})", {{"Retry-After", "4294967295"}}};
  });
  auto client = make_client();
  for (auto& r : {run(io, client->create(url_spec(), "r")), run(io, client->get("p"))}) {
    EXPECT_EQ(r.outcome, Outcome::transient) << r.message;
    EXPECT_EQ(r.http_status, 429);
    ASSERT_TRUE(r.retry_after.has_value());
    EXPECT_GT(*r.retry_after, Millis(0));
    EXPECT_EQ(*r.retry_after, Millis(4'294'967'295'000));
  }
}

TEST_F(CreatifyClientTest, HeaderOverTheLimitIsAClearTransientError) {
  serve([](const Request&) {
    return Reply{429, R"({"detail":"slow down"})", {{"Retry-After", std::string(20'000, '9')}}};
  });
  auto client = make_client();
  auto g = run(io, client->get("p"));
  EXPECT_EQ(g.outcome, Outcome::transient);
  EXPECT_EQ(g.http_status, 0);
  EXPECT_EQ(g.message, "GET /api/personas/p/: response header larger than 16384 bytes");
  auto c = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(c.outcome, Outcome::transient);
  EXPECT_EQ(c.message,
            "POST /api/personas_v2/: response header larger than 16384 bytes (request sent; "
            "outcome unknown)");
  EXPECT_TRUE(c.sent);
}

// ---- get ----

TEST_F(CreatifyClientTest, GetMapsResponses) {
  std::map<std::string, Reply> script = {
      {"/api/personas/ok/",
       Reply{200, R"({"id": "ok", "process_status": "done", "is_active": true})"}},
      {"/api/personas/missing/", Reply{404, R"({"detail": "Not found."})"}},
      {"/api/personas/broken/", Reply{500, "upstream unavailable"}},
      {"/api/personas/busy/", Reply{429, "", {{"Retry-After", "3"}}}},
      {"/api/personas/garbled/", Reply{200, "{not json"}},
      {"/api/personas/denied/", Reply{401, R"({"detail": "Invalid API key."})"}},
  };
  serve([&](const Request& req) { return script.at(std::string(req.target())); });
  auto client = make_client();

  auto ok = run(io, client->get("ok"));
  EXPECT_EQ(ok.outcome, Outcome::ok);
  EXPECT_EQ(ok.value.process_status, "done");
  EXPECT_TRUE(ok.value.is_active);

  auto missing = run(io, client->get("missing"));
  EXPECT_EQ(missing.outcome, Outcome::permanent);
  EXPECT_EQ(missing.message, "GET /api/personas/missing/: HTTP 404: Not found.");

  auto broken = run(io, client->get("broken"));
  EXPECT_EQ(broken.outcome, Outcome::transient);
  EXPECT_EQ(broken.http_status, 500);
  EXPECT_EQ(broken.message, "GET /api/personas/broken/: HTTP 500: upstream unavailable");

  auto busy = run(io, client->get("busy"));
  EXPECT_EQ(busy.outcome, Outcome::transient);
  EXPECT_EQ(busy.retry_after, Millis(3000));

  auto garbled = run(io, client->get("garbled"));
  EXPECT_EQ(garbled.outcome, Outcome::transient);
  EXPECT_NE(garbled.message.find("malformed response"), std::string::npos) << garbled.message;

  auto denied = run(io, client->get("denied"));
  EXPECT_EQ(denied.outcome, Outcome::unauthorized);
  EXPECT_EQ(denied.message, "GET /api/personas/denied/: HTTP 401: Invalid API key.");
  EXPECT_EQ(denied.message.find(kApiKey), std::string::npos);
}

TEST_F(CreatifyClientTest, GetPercentEncodesTheId) {
  serve([](const Request&) { return Reply{200, persona_json("x")}; });
  auto client = make_client();
  auto r = run(io, client->get("a b/c?d"));
  EXPECT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(server->seen.at(0).request.target(), "/api/personas/a%20b%2Fc%3Fd/");
}

TEST_F(CreatifyClientTest, GetWithEmptyIdSendsNothing) {
  serve([](const Request&) { return Reply{200, persona_json("x")}; });
  auto client = make_client();
  auto r = run(io, client->get(""));
  EXPECT_EQ(r.outcome, Outcome::permanent);
  EXPECT_EQ(server->accepted, 0);
}

// ---- list ----

std::string page_json(std::vector<std::string> ids, std::optional<std::string> next) {
  json::array results;
  for (auto& id : ids)
    results.push_back(json::object{
        {"id", id}, {"process_status", "done"}, {"labels", json::array{"personad:" + id}}});
  json::object o{{"count", 5}, {"results", results}, {"previous", nullptr}};
  if (next)
    o["next"] = *next;
  else
    o["next"] = nullptr;
  return json::serialize(o);
}

TEST_F(CreatifyClientTest, ListFollowsRelativeAndAbsoluteNextLinks) {
  std::string base;
  serve([&](const Request& req) {
    std::string t(req.target());
    if (t == "/api/personas_v2/")
      return Reply{200, page_json({"a", "b"}, "/api/personas_v2/?page=2")};
    if (t == "/api/personas_v2/?page=2")
      return Reply{200, page_json({"c"}, base + "/api/personas_v2/?page=3")};
    if (t == "/api/personas_v2/?page=3") return Reply{200, page_json({"d", "e"}, "?page=4")};
    if (t == "/api/personas_v2/?page=4") return Reply{200, page_json({}, std::nullopt)};
    return Reply{404, "no such page " + t};
  });
  base = server->url();
  auto client = make_client();
  auto r = run(io, list_all(*client));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  std::vector<std::string> ids;
  for (auto& p : r.value.items) ids.push_back(p.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_TRUE(r.value.items[0].has_labels);
  EXPECT_EQ(server->seen.size(), 4u);
  for (auto& s : server->seen) EXPECT_EQ(s.request["X-API-KEY"], kApiKey);
}

TEST_F(CreatifyClientTest, ListAcceptsAPlainArrayAtTheConfiguredPath) {
  serve([](const Request& req) {
    if (req.target() != "/api/personas/") return Reply{404, ""};
    return Reply{200, "[" + persona_json("x") + "," + persona_json("y") + "]"};
  });
  auto o = options();
  o.list_path = "/api/personas/";
  auto client = make_client(o);
  auto r = run(io, list_all(*client));
  ASSERT_EQ(r.outcome, Outcome::ok) << r.message;
  ASSERT_EQ(r.value.items.size(), 2u);
  EXPECT_EQ(r.value.items[1].id, "y");
  EXPECT_FALSE(r.value.items[0].has_labels);
}

TEST_F(CreatifyClientTest, ListFailsWhenAnyPageFails) {
  serve([](const Request& req) {
    if (req.target() == "/api/personas_v2/")
      return Reply{200, page_json({"a"}, "/api/personas_v2/?page=2")};
    return Reply{503, "maintenance", {{"Retry-After", "30"}}};
  });
  auto client = make_client();
  auto r = run(io, list_all(*client));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.retry_after, Millis(30'000));
  EXPECT_EQ(r.message, "GET /api/personas_v2/?page=2: HTTP 503: maintenance (page 2 of the list)");
  EXPECT_TRUE(r.value.items.empty() || r.value.items.size() == 1u);
}

TEST_F(CreatifyClientTest, ListFollowsForeignHostLinksOnBaseUrlAndStopsLoops) {
  serve([](const Request& req) {
    if (req.target() == "/api/personas_v2/")
      return Reply{200, page_json({"a"}, "https://elsewhere.example.com/api/personas_v2/?page=2")};
    if (req.target() == "/api/personas_v2/?page=2") return Reply{200, page_json({"b"}, "")};
    return Reply{200, page_json({"c"}, "/loop/")};
  });
  auto client = make_client();
  auto foreign = run(io, list_all(*client));
  ASSERT_EQ(foreign.outcome, Outcome::ok) << foreign.message;
  ASSERT_EQ(foreign.value.items.size(), 2u);  // page 2 came from our server, not from elsewhere
  EXPECT_EQ(foreign.value.items[1].id, "b");
  EXPECT_EQ(server->seen.size(), 2u);

  auto o = options();
  o.list_path = "/loop/";
  auto looping = make_client(o);
  auto loop = run(io, list_all(*looping));
  EXPECT_EQ(loop.outcome, Outcome::transient);
  EXPECT_NE(loop.message.find("loops back"), std::string::npos) << loop.message;
}

TEST_F(CreatifyClientTest, ListWithMalformedPageIsTransient) {
  serve([](const Request&) { return Reply{200, R"({"count": 1})"}; });
  auto client = make_client();
  auto r = run(io, list_all(*client));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_NE(r.message.find("malformed response"), std::string::npos) << r.message;
}

// ---- transport ----

TEST_F(CreatifyClientTest, TimeoutWhenTheServerNeverAnswers) {
  serve([](const Request&) { return Reply::hanging(); });
  auto o = options();
  o.timeout = 300ms;
  auto client = make_client(o);
  auto start = std::chrono::steady_clock::now();
  auto r = run(io, client->get("slow"));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.message, "GET /api/personas/slow/: timeout after 300ms");
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LT(elapsed, 1500ms);
  EXPECT_EQ(server->seen.size(), 1u);  // a timed-out GET is not retried at once
}

TEST_F(CreatifyClientTest, CreateTimeoutIsUnknownOutcome) {
  serve([](const Request&) { return Reply::hanging(); });
  auto o = options();
  o.timeout = 200ms;
  auto client = make_client(o);
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.message,
            "POST /api/personas_v2/: timeout after 200ms (request sent; outcome unknown)");
}

TEST_F(CreatifyClientTest, ACreateNotWrittenWithinItsTimeoutIsNeverWritten) {
  // One slot, held in turn by two GETs the server never answers: the create waits for it about
  // two timeouts, one more than its own. Written then, it could reach the API after a reconcile
  // (here or on the host that took over) had given it up for absent; it is not written, a
  // certain "not sent". (Behind one GET alone the slot came free within microseconds of the
  // create's own deadline, and a loaded machine could let the create through: the margin is a
  // whole timeout now.)
  serve([](const Request& req) {
    if (req.method() == http::verb::get) return Reply::hanging();
    return Reply{201, persona_json("p")};
  });
  auto o = options();
  o.timeout = 200ms;
  o.max_in_flight = 1;
  auto client = make_client(o);
  const PersonaSpec spec = url_spec();  // outlives the coroutine that reads it
  std::vector<asio::awaitable<ApiResult<RemotePersona>>> ops;
  ops.push_back(client->get("slow"));
  ops.push_back(client->get("slower"));
  ops.push_back(client->create(spec, "r"));
  auto results = run_all(io, std::move(ops));
  EXPECT_EQ(results[0].outcome, Outcome::transient);
  EXPECT_EQ(results[1].outcome, Outcome::transient);
  const auto& r = results[2];
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_FALSE(r.sent);
  EXPECT_NE(r.message.find("timeout after 200ms before the request was written"), std::string::npos)
      << r.message;
  for (const auto& seen : server->seen) EXPECT_NE(seen.request.method(), http::verb::post);
}

TEST_F(CreatifyClientTest, ResponseOverTheSizeCapIsRejected) {
  serve([](const Request&) { return Reply{200, std::string(2000, 'x')}; });
  auto o = options();
  o.max_response_bytes = 1024;
  auto client = make_client(o);
  auto r = run(io, client->get("big"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.message, "GET /api/personas/big/: response larger than 1024 bytes");
}

TEST_F(CreatifyClientTest, SequentialRequestsReuseOneConnection) {
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  auto client = make_client();
  EXPECT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_EQ(run(io, list_all(*client)).outcome, Outcome::transient);  // a persona is not a list
  EXPECT_EQ(server->accepted, 1);
  EXPECT_EQ(server->seen.size(), 3u);
}

TEST_F(CreatifyClientTest, GetRetriesOnceWhenThePooledConnectionDied) {
  serve([](const Request&) {
    Reply r{200, persona_json("p")};
    r.close_silently = true;
    return r;
  });
  auto client = make_client();
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  auto second = run(io, client->get("p"));
  EXPECT_EQ(second.outcome, Outcome::ok) << second.message;
  EXPECT_EQ(server->accepted, 2);
  EXPECT_EQ(server->seen.size(), 2u);
}

TEST_F(CreatifyClientTest, ConnectionCloseResponsesAreNotPooled) {
  serve([](const Request&) { return Reply{200, persona_json("p"), {{"Connection", "close"}}}; });
  auto client = make_client();
  EXPECT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_EQ(server->accepted, 2);
}

// Runs the loop until `done` holds (or the limit passes); says whether it holds.
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds limit = 3s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(5ms);
  }
  return done();
}

// TCP sockets of this machine connected to 127.0.0.1:`port` that the peer has closed and we
// have not (CLOSE-WAIT), from /proc/net/tcp: what `ss -tan state close-wait` shows.
int close_wait_sockets_to(unsigned short port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // the header
  char remote[16];
  std::snprintf(remote, sizeof remote, "0100007F:%04X", port);
  int n = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, rem, state;
    fields >> slot >> local >> rem >> state;
    n += rem == remote && state == "08";
  }
  return n;
}

TEST_F(CreatifyClientTest, IdleConnectionClosedByTheServerLeavesThePoolAtOnce) {
  // The server closes each connection after answering without saying so, as a load balancer's
  // idle timeout would.
  serve([](const Request&) {
    Reply r{200, persona_json("p")};
    r.close_silently = true;
    return r;
  });
  std::ostringstream out;
  auto log = std::make_shared<spdlog::logger>(
      "client-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  log->set_level(spdlog::level::debug);
  auto client = make_client(options(), log);
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_TRUE(run_until(io, [&] { return client->idle_connections() == 0; }))
      << "the closed connection is still in the pool";
  EXPECT_TRUE(run_until(io, [&] { return close_wait_sockets_to(server->port()) == 0; }))
      << "a socket the server closed is left in CLOSE-WAIT";

  // The next GET opens a fresh connection at once: no failed attempt on the dead one.
  auto second = run(io, client->get("p"));
  EXPECT_EQ(second.outcome, Outcome::ok) << second.message;
  EXPECT_EQ(server->accepted, 2);
  ASSERT_EQ(server->seen.size(), 2u);
  EXPECT_EQ(server->seen[1].connection, 2);
  log->flush();
  EXPECT_EQ(out.str().find("was dead"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("idle connection closed by the server"), std::string::npos)
      << out.str();
}

TEST_F(CreatifyClientTest, WatchedIdleConnectionsStayUsable) {
  // Taking a connection from the pool ends the wait on it; the wait must neither close it nor
  // disturb the request that now uses it, however long it sat idle first.
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  auto client = make_client();
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok) << i;
    EXPECT_FALSE(run_until(io, [&] { return client->idle_connections() != 1; },
                           i % 5 == 0 ? 30ms : 0ms));
  }
  std::vector<asio::awaitable<ApiResult<RemotePersona>>> ops;
  for (int i = 0; i < 4; ++i) ops.push_back(client->get("p"));
  for (auto& r : run_all(io, std::move(ops))) EXPECT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(server->seen.size(), 24u);
  EXPECT_LE(server->accepted, 4);
  EXPECT_EQ(client->idle_connections(), static_cast<std::size_t>(server->accepted));
}

TEST_F(CreatifyClientTest, IdleConnectionsOutliveNeitherCloseNorTheClient) {
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  auto client = make_client();
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  EXPECT_EQ(client->idle_connections(), 1u);
  client->close();
  EXPECT_EQ(client->idle_connections(), 0u);
  run_until(io, [] { return false; }, 20ms);  // the cancelled wait's handler runs, harmlessly

  auto other = make_client();
  ASSERT_EQ(run(io, other->get("p")).outcome, Outcome::ok);
  other.reset();  // destroyed with a watched connection in its pool
  EXPECT_TRUE(run_until(io, [&] { return server->open == 0; }));  // both were closed
}

TEST_F(CreatifyClientTest, MaxInFlightBoundsConnectionsAndRequests) {
  serve([](const Request&) {
    Reply r{200, persona_json("p")};
    r.delay = 40ms;
    return r;
  });
  auto o = options();
  o.max_in_flight = 2;
  auto client = make_client(o);
  std::vector<asio::awaitable<ApiResult<RemotePersona>>> ops;
  for (int i = 0; i < 6; ++i) ops.push_back(client->get("p" + std::to_string(i)));
  auto results = run_all(io, std::move(ops));
  for (auto& r : results) EXPECT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(server->max_active, 2);
  EXPECT_LE(server->max_open, 2);
  EXPECT_LE(server->accepted, 2);
  // FIFO: waiting requests get a slot in the order they asked, two at a time.
  ASSERT_EQ(server->seen.size(), 6u);
  auto pair_at = [&](std::size_t i) {
    std::set<std::string> s{std::string(server->seen[i].request.target()),
                            std::string(server->seen[i + 1].request.target())};
    return s;
  };
  EXPECT_EQ(pair_at(0), (std::set<std::string>{"/api/personas/p0/", "/api/personas/p1/"}));
  EXPECT_EQ(pair_at(2), (std::set<std::string>{"/api/personas/p2/", "/api/personas/p3/"}));
  EXPECT_EQ(pair_at(4), (std::set<std::string>{"/api/personas/p4/", "/api/personas/p5/"}));
}

TEST_F(CreatifyClientTest, RateLimitSpacesRequests) {
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  auto o = options();
  o.max_requests_per_second = 50;  // burst 50
  auto client = make_client(o);
  std::vector<asio::awaitable<ApiResult<RemotePersona>>> ops;
  for (int i = 0; i < 70; ++i) ops.push_back(client->get("p"));
  auto start = std::chrono::steady_clock::now();
  auto results = run_all(io, std::move(ops));
  auto elapsed = std::chrono::steady_clock::now() - start;
  for (auto& r : results) EXPECT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_GE(elapsed, 390ms);  // (70 - 50) / 50 s
  EXPECT_LT(elapsed, 3s);
}

TEST_F(CreatifyClientTest, ConnectionRefusedIsTransientAndNotSent) {
  unsigned short port;
  {
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  auto o = options();
  o.base_url = "http://127.0.0.1:" + std::to_string(port);
  auto client = make_client(o);
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.message, "POST /api/personas_v2/: connection refused to 127.0.0.1:" +
                           std::to_string(port) + " (request not sent)");
  auto g = run(io, client->get("x"));
  EXPECT_EQ(g.message,
            "GET /api/personas/x/: connection refused to 127.0.0.1:" + std::to_string(port));
}

TEST_F(CreatifyClientTest, HttpsAgainstAPlainServerFailsCleanly) {
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  auto o = options();
  o.base_url = "https://127.0.0.1:" + std::to_string(server->port());
  auto client = make_client(o);
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_NE(r.message.find("TLS handshake with 127.0.0.1:"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("(request not sent)"), std::string::npos) << r.message;
  EXPECT_FALSE(r.sent);
  EXPECT_TRUE(server->seen.empty());
}

// A TLS server whose certificate no system CA signed: the client must refuse it (peer
// verification is on), before any byte of a request leaves.
TEST_F(CreatifyClientTest, HttpsRefusesAnUntrustedCertificate) {
  namespace ssl = asio::ssl;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);
  ssl::context server_tls(ssl::context::tls_server);
  ASSERT_EQ(SSL_CTX_use_certificate(server_tls.native_handle(), cert), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey(server_tls.native_handle(), key), 1);
  X509_free(cert);
  EVP_PKEY_free(key);

  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  bool handshake_failed = false;
  std::size_t bytes_read = 0;
  acceptor.async_accept([&](boost::system::error_code ec, asio::ip::tcp::socket socket) {
    if (ec) return;
    auto stream = std::make_shared<ssl::stream<asio::ip::tcp::socket>>(std::move(socket),
                                                                      server_tls);
    stream->async_handshake(ssl::stream_base::server, [&, stream](boost::system::error_code hec) {
      handshake_failed = static_cast<bool>(hec);
      if (hec) return;
      auto buf = std::make_shared<std::array<char, 1024>>();
      stream->async_read_some(asio::buffer(*buf), [&, stream, buf](boost::system::error_code,
                                                                   std::size_t n) {
        bytes_read = n;
      });
    });
  });

  auto o = options();
  o.base_url = "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  auto client = make_client(o);
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_NE(r.message.find("certificate verify failed"), std::string::npos) << r.message;
  EXPECT_FALSE(r.sent);
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(handshake_failed);
  EXPECT_EQ(bytes_read, 0u);
}

TEST_F(CreatifyClientTest, CloseMakesLaterRequestsFailFast) {
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  auto client = make_client();
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  client->close();
  auto r = run(io, client->get("p"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_EQ(r.message, "GET /api/personas/p/: client closed");
  auto c = run(io, client->create(url_spec(), "r"));
  EXPECT_NE(c.message.find("(request not sent)"), std::string::npos);
  EXPECT_EQ(server->seen.size(), 1u);
}

TEST_F(CreatifyClientTest, CloseWakesRequestsWaitingForASlot) {
  CreatifyClient* client_ptr = nullptr;
  serve([&](const Request&) {
    client_ptr->close();  // while the second request waits for the only slot
    Reply r{200, persona_json("p")};
    r.delay = 20ms;
    return r;
  });
  auto o = options();
  o.max_in_flight = 1;
  auto client = make_client(o);
  client_ptr = client.get();
  std::vector<asio::awaitable<ApiResult<RemotePersona>>> ops;
  ops.push_back(client->get("first"));
  ops.push_back(client->get("second"));
  auto results = run_all(io, std::move(ops));
  EXPECT_EQ(results[0].outcome, Outcome::ok);  // in flight: allowed to finish
  EXPECT_EQ(results[1].outcome, Outcome::transient);
  EXPECT_EQ(results[1].message, "GET /api/personas/second/: client closed");
  EXPECT_EQ(server->seen.size(), 1u);
}

TEST_F(CreatifyClientTest, LogsEachRequestWithoutSecrets) {
  serve([](const Request&) { return Reply{200, persona_json("p")}; });
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto log = std::make_shared<spdlog::logger>("client-test", sink);
  log->set_level(spdlog::level::debug);
  auto client = make_client(options(), log);
  ASSERT_EQ(run(io, client->get("p")).outcome, Outcome::ok);
  log->flush();
  std::string text = out.str();
  EXPECT_NE(text.find("http GET /api/personas/p/ status=200 ms="), std::string::npos) << text;
  EXPECT_EQ(text.find(kApiKey), std::string::npos);
  EXPECT_EQ(text.find(kApiId), std::string::npos);
}

// ---- construction ----

TEST_F(CreatifyClientTest, RejectsUnusableSettings) {
  auto try_url = [&](std::string url) {
    ClientOptions o;
    o.base_url = std::move(url);
    return CreatifyClient::create_client(io.get_executor(), o, Credentials{kApiId, kApiKey, ""},
                                         nullptr);
  };
  for (auto url : {"", "not a url", "ftp://example.com", "http://", "http://user:pw@example.com",
                   "https://example.com/api", "http://example.com?x=1", "http://example.com:0"}) {
    auto c = try_url(url);
    EXPECT_FALSE(c.ok()) << url;
  }
  for (auto url : {"http://127.0.0.1:8080", "https://api.creatify.ai", "https://api.creatify.ai/",
                   "http://[::1]:9000", "http://localhost:1"})
    EXPECT_TRUE(try_url(url).ok()) << url << ": " << try_url(url).message();

  ClientOptions o;
  o.base_url = "http://127.0.0.1:1";
  auto bad_key = CreatifyClient::create_client(
      io.get_executor(), o, Credentials{kApiId, "abc\r\nX-Evil: 1", ""}, nullptr);
  ASSERT_FALSE(bad_key.ok());
  EXPECT_EQ(bad_key.message().find("X-Evil"), std::string::npos);
  o.max_in_flight = 0;
  EXPECT_FALSE(CreatifyClient::create_client(io.get_executor(), o, Credentials{}, nullptr).ok());
  o.max_in_flight = 1;
  o.list_path = "api/personas_v2/";
  EXPECT_FALSE(CreatifyClient::create_client(io.get_executor(), o, Credentials{}, nullptr).ok());
}

TEST(CreatifyClientOptions, FromApiConfig) {
  ApiConfig api;
  api.base_url = "http://127.0.0.1:9";
  api.list_path = "/api/personas/";
  api.timeout = Millis(1234);
  api.max_requests_per_second = 2.5;
  api.max_in_flight = 7;
  auto o = client_options_from(api);
  EXPECT_EQ(o.base_url, api.base_url);
  EXPECT_EQ(o.list_path, api.list_path);
  EXPECT_EQ(o.timeout, Millis(1234));
  EXPECT_EQ(o.max_requests_per_second, 2.5);
  EXPECT_EQ(o.max_in_flight, 7);
}

// ---- TLS with api.ca_file, and one rule for base_url (issue 10) ----

// A private CA and a server certificate it signed for 127.0.0.1 (subjectAltName IP), made with
// OpenSSL's API: no network, no files but the CA's PEM.
struct TestPki {
  EVP_PKEY* ca_key = nullptr;
  X509* ca = nullptr;
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  TestPki() {
    ca_key = EVP_EC_gen("P-256");
    key = EVP_EC_gen("P-256");
    ca = make(ca_key, nullptr, nullptr, "personad test CA", true);
    cert = make(key, ca, ca_key, "127.0.0.1", false);
  }
  ~TestPki() {
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  static void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) throw std::runtime_error("cannot make an X.509 extension");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  static X509* make(EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key, const char* cn,
                    bool is_ca) {
    static long serial = 1;
    X509* c = X509_new();
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), -60);
    X509_gmtime_adj(X509_getm_notAfter(c), 3600);
    X509_set_pubkey(c, subject_key);
    X509_NAME* name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                               -1, -1, 0);
    X509_set_issuer_name(c, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    if (is_ca) {
      add_ext(c, issuer, NID_basic_constraints, "critical,CA:TRUE");
      add_ext(c, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add_ext(c, issuer, NID_basic_constraints, "CA:FALSE");
      add_ext(c, issuer, NID_subject_alt_name, "IP:127.0.0.1");
      add_ext(c, issuer, NID_ext_key_usage, "serverAuth");
    }
    if (X509_sign(c, issuer_key != nullptr ? issuer_key : subject_key, EVP_sha256()) <= 0)
      throw std::runtime_error("cannot sign a test certificate");
    return c;
  }
  std::string ca_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, ca);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  }
};

// A TLS server on 127.0.0.1 that answers one request a connection with a persona; counts
// handshakes. With `close_notify`, it ends each connection right after its answer with a TLS
// close_notify (no Connection: close) and keeps the TCP connection open for the client's own:
// the answer and the alert leave in one segment (TCP_CORK until both are written), so the
// client reads the alert with the answer and the socket shows nothing more.
class TlsServer {
 public:
  TlsServer(asio::io_context& io, const TestPki& pki, bool close_notify = false)
      : tls_(asio::ssl::context::tls_server),
        acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}),
        close_notify_(close_notify) {
    SSL_CTX_use_certificate(tls_.native_handle(), pki.cert);
    SSL_CTX_use_PrivateKey(tls_.native_handle(), pki.key);
    accept();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  int handshakes_ok = 0;
  int handshakes_failed = 0;
  int requests = 0;

 private:
  using Stream = asio::ssl::stream<asio::ip::tcp::socket>;
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      auto stream = std::make_shared<Stream>(std::move(socket), tls_);
      stream->async_handshake(asio::ssl::stream_base::server,
                              [this, stream](boost::system::error_code hec) {
                                if (hec) {
                                  ++handshakes_failed;
                                  return;
                                }
                                ++handshakes_ok;
                                serve(stream);
                              });
      accept();
    });
  }
  void serve(const std::shared_ptr<Stream>& stream) {
    auto buffer = std::make_shared<beast::flat_buffer>();
    auto req = std::make_shared<http::request<http::string_body>>();
    http::async_read(*stream, *buffer, *req,
                     [this, stream, buffer, req](boost::system::error_code ec, std::size_t) {
                       if (ec) return;
                       ++requests;
                       if (close_notify_) cork(*stream, true);
                       auto res = std::make_shared<http::response<http::string_body>>(
                           http::status::ok, 11);
                       res->set(http::field::content_type, "application/json");
                       res->body() = persona_json("tls-1", "processing");
                       res->prepare_payload();
                       http::async_write(
                           *stream, *res,
                           [this, stream, res](boost::system::error_code wec, std::size_t) {
                             if (wec || !close_notify_) return;
                             stream->async_shutdown([stream](boost::system::error_code) {});
                             // The alert is written by now (the shutdown waits only for the
                             // client's); the uncork sends both.
                             auto later = std::make_shared<asio::steady_timer>(
                                 stream->get_executor(), std::chrono::milliseconds(20));
                             later->async_wait([stream, later](boost::system::error_code) {
                               cork(*stream, false);
                             });
                           });
                     });
  }
  static void cork(Stream& stream, bool on) {
    int v = on ? 1 : 0;
    ::setsockopt(stream.lowest_layer().native_handle(), IPPROTO_TCP, TCP_CORK, &v, sizeof v);
  }
  asio::ssl::context tls_;
  asio::ip::tcp::acceptor acceptor_;
  bool close_notify_ = false;
};

TEST_F(CreatifyClientTest, HttpsHandshakeSucceedsWithTheCaFromCaFile) {
  TestPki pki;
  TlsServer tls(io, pki);
  personad::testing::TempDir dir("ca");
  const auto ca_file = dir.write("ca.pem", pki.ca_pem());

  auto o = options();
  o.base_url = "https://127.0.0.1:" + std::to_string(tls.port());
  o.ca_file = ca_file.string();
  auto client = make_client(o);
  auto r = run(io, client->get("tls-1"));
  EXPECT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(r.value.id, "tls-1");
  EXPECT_EQ(r.value.process_status, "processing");
  EXPECT_EQ(tls.handshakes_ok, 1);
  EXPECT_EQ(tls.requests, 1);
}

TEST_F(CreatifyClientTest, CreateDoesNotReuseATlsConnectionTheServerHasEnded) {
  // The close_notify came with the answer: it waits in the TLS layer, not on the socket, so
  // neither the idle watch nor a peek at the socket sees it. A create must look there too.
  TestPki pki;
  TlsServer tls(io, pki, /*close_notify=*/true);
  personad::testing::TempDir dir("ca");
  auto o = options();
  o.base_url = "https://127.0.0.1:" + std::to_string(tls.port());
  o.ca_file = dir.write("ca.pem", pki.ca_pem()).string();
  auto client = make_client(o);
  ASSERT_EQ(run(io, client->get("tls-1")).outcome, Outcome::ok);
  io.restart();
  io.run_for(std::chrono::milliseconds(50));
  ASSERT_EQ(client->idle_connections(), 1u) << "the alert reached the socket, not the TLS layer";
  auto r = run(io, client->create(url_spec(), "r"));
  EXPECT_EQ(r.outcome, Outcome::ok) << r.message;
  EXPECT_EQ(tls.handshakes_ok, 2);
  EXPECT_EQ(tls.requests, 2);
}

TEST_F(CreatifyClientTest, HttpsHandshakeIsRefusedWithoutTheCa) {
  TestPki pki;
  TlsServer tls(io, pki);
  auto o = options();
  o.base_url = "https://127.0.0.1:" + std::to_string(tls.port());
  auto client = make_client(o);  // the system's CAs only
  auto r = run(io, client->get("tls-1"));
  EXPECT_EQ(r.outcome, Outcome::transient);
  EXPECT_NE(r.message.find("certificate verify failed"), std::string::npos) << r.message;
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
  EXPECT_EQ(tls.handshakes_ok, 0);
  EXPECT_EQ(tls.requests, 0);
}

TEST_F(CreatifyClientTest, AnUnusableCaFileIsRefusedAtCreationAndByCheckStartup) {
  personad::testing::TempDir dir("ca");
  const auto junk = dir.write("junk.pem", "not a certificate\n");
  for (const std::string& path : {junk.string(), (dir.path() / "missing.pem").string()}) {
    auto o = options();
    o.base_url = "https://127.0.0.1:1";
    o.ca_file = path;
    auto c = CreatifyClient::create_client(io.get_executor(), o, Credentials{kApiId, kApiKey, ""},
                                           nullptr);
    ASSERT_FALSE(c.ok()) << path;
    EXPECT_NE(c.message().find("api.ca_file: cannot load CA certificates from '" + path + "'"),
              std::string::npos)
        << c.message();
    EXPECT_FALSE(check_ca_file(path).ok());
    Config config;
    config.api.ca_file = path;
    config.store_path = (dir.path() / "p.db").string();
    const StartupCheck check = check_startup(config, [](std::string_view) {
      return std::optional<std::string>("x");
    });
    ASSERT_FALSE(check.ok());
    EXPECT_EQ(check.errors[0].what, "api.ca_file");
  }
  TestPki pki;
  EXPECT_TRUE(check_ca_file(dir.write("ca.pem", pki.ca_pem()).string()).ok());
}

// --check-config (parse_config) and the daemon's client (create_client with the options the
// daemon derives from that config) accept and refuse exactly the same base_urls.
TEST_F(CreatifyClientTest, CheckConfigAndTheClientAgreeOnEveryBaseUrl) {
  const std::vector<std::string> urls = {
      "https://api.creatify.ai", "https://api.creatify.ai/", "https://api.creatify.ai:8443",
      "https://API.Creatify.ai", "https://api.creatify.ai//", "https://api.creatify.ai/api",
      "https://api.creatify.ai/api/", "https://api.creatify.ai/?x=1", "https://api.creatify.ai#f",
      "https://user:pw@api.creatify.ai", "https://user@api.creatify.ai", "https://api.creatify.ai:0",
      "https://api.creatify.ai:", "https://api.creatify.ai:99999", "https://[::1]:8443",
      "https://10.0.0.1", "https://", "https:///api", "ftp://api.creatify.ai",
      "api.creatify.ai", "", "not a url", "http://127.0.0.1:8080", "http://127.0.0.2:8080",
      "http://localhost:1", "http://LOCALHOST:1", "http://[::1]:9000", "http://[::ffff:127.0.0.1]:1",
      "http://10.0.0.1:8080", "http://api.creatify.ai", "http://localhost.example:1",
      "http://0.0.0.0:1", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/x",
      "https://[v1.x]", "https://exa mple.com", "https://%65xample.com", "HTTPS://api.creatify.ai"};
  for (const bool insecure : {false, true}) {
    for (const auto& url : urls) {
      std::string text = "[api]\nbase_url = \"" + url + "\"\n";
      if (insecure) text += "allow_insecure = true\n";
      auto config = parse_config(text, "p.toml");
      ClientOptions o;
      if (config) {
        o = client_options_from(config->api);
      } else {
        o.base_url = url;
        o.allow_insecure = insecure;
      }
      auto client = CreatifyClient::create_client(io.get_executor(), o,
                                                  Credentials{kApiId, kApiKey, ""}, nullptr);
      EXPECT_EQ(config.ok(), client.ok())
          << url << " insecure=" << insecure << ": config says "
          << (config ? std::string("ok") : config.message()) << ", client says "
          << (client ? std::string("ok") : client.message());
    }
  }
  // And the rule itself: http:// only to loopback, unless allowed.
  EXPECT_FALSE(parse_config("[api]\nbase_url = \"http://api.creatify.ai\"\n", "p.toml").ok());
  EXPECT_TRUE(parse_config("[api]\nbase_url = \"http://api.creatify.ai\"\nallow_insecure = true\n",
                           "p.toml")
                  .ok());
  EXPECT_TRUE(parse_config("[api]\nbase_url = \"http://127.0.0.1:9\"\n", "p.toml").ok());
  EXPECT_FALSE(parse_config("[api]\nbase_url = \"https://api.creatify.ai/api\"\n", "p.toml").ok());
}

}  // namespace
}  // namespace personad
