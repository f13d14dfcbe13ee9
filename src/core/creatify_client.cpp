// The Creatify API over HTTP(S) with Beast: TLS with verification and SNI, a keep-alive pool of
// max_in_flight connections, a token-bucket rate limit, deadlines, response caps, file uploads.
#include "personad/creatify_client.hpp"
#include "personad/url.hpp"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <random>
#include <set>
#include <tuple>
#include <type_traits>
#include <variant>

#include "personad/rate_limiter.hpp"
#include "personad/slot_gate.hpp"

namespace personad {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace urls = boost::urls;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kCreatePath = "/api/personas_v2/";
constexpr std::size_t kUploadChunk = 64 * 1024;
constexpr std::uint32_t kHeaderLimit = 16 * 1024;
// Load balancers close idle keep-alive connections after about a minute; one idle longer than
// this is more likely dead than alive, so it is not worth a failed attempt.
constexpr auto kIdleLimit = std::chrono::seconds(30);

// ---- Where the API is ----

using Origin = HttpUrl;

// The one parser of base_url (url.hpp): --check-config and the config reader use it too.
Result<Origin> parse_base_url(std::string_view text, bool allow_insecure) {
  auto origin = parse_api_origin(text, allow_insecure);
  if (!origin) return make_error("api.base_url: " + origin.message());
  return origin;
}

// The target of the next list page: `next` may be absolute or relative to the current page.
// Only its path and query are used, always against base_url, so credentials never travel
// anywhere else. Its scheme, host and port are ignored on purpose: APIs behind proxies often
// advertise http:// or internal host names, and refusing them would leave every reconcile stuck.
Result<std::string> next_page_target(std::string_view current, std::string_view next) {
  auto parsed = urls::parse_uri_reference(next);
  if (!parsed) return make_error("next page link is not a URL: " + std::string(next));
  urls::url ref(*parsed);
  if (ref.has_authority()) {
    ref.remove_authority();
    ref.remove_scheme();
  }
  const std::string base_text =
      "http://origin" + std::string(current);  // the view below points here
  auto base = urls::parse_uri(base_text);
  if (!base) return make_error("cannot resolve next page link against " + std::string(current));
  urls::url resolved(*base);
  if (!resolved.resolve(ref))
    return make_error("cannot resolve next page link: " + std::string(next));
  std::string target(resolved.encoded_target());
  return target.empty() ? std::string("/") : target;
}

// ---- Multipart upload, streamed from disk ----

// A stretch of the multipart body: literal text (part headers, form values, boundaries), or the
// bytes of a local file, read in chunks while sending.
struct UploadSegment {
  std::string text;
  std::string field;  // file segments: the form field, for error messages
  std::string path;   // empty for text
  std::uint64_t size = 0;
  dev_t dev = 0;  // the file checked when the request was built: the upload reads that one
  ino_t ino = 0;
};

// Opens a local video for upload without following a symbolic link in its last component,
// and only if it is still the file checked when the request was built (same device and inode).
// -1 with `why` set otherwise.
int open_checked_video(const UploadSegment& seg, std::string& why) {
  const int fd = ::open(seg.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    why = "cannot open " + seg.path + ": " + std::strerror(errno);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != seg.dev ||
      st.st_ino != seg.ino) {
    ::close(fd);
    why = seg.path + " was replaced after it was checked; not uploaded";
    return -1;
  }
  return fd;
}

// A Beast Body whose writer emits the segments in order, reading files kUploadChunk at a time.
struct MultipartBody {
  struct value_type {
    std::string boundary;
    std::vector<UploadSegment> segments;
    // Set by the writer when a file cannot be read while sending (shared: the writer only sees
    // the body as const).
    std::shared_ptr<std::string> file_failure = std::make_shared<std::string>();
  };

  static std::uint64_t size(const value_type& body) {
    std::uint64_t n = 0;
    for (const auto& s : body.segments) n += s.path.empty() ? s.text.size() : s.size;
    return n;
  }

  class writer {
   public:
    using const_buffers_type = asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(const http::header<isRequest, Fields>&, const value_type& body) : body_(body) {}

    void init(beast::error_code& ec) { ec = {}; }

    boost::optional<std::pair<const_buffers_type, bool>> get(beast::error_code& ec) {
      ec = {};
      while (index_ < body_.segments.size()) {
        const UploadSegment& seg = body_.segments[index_];
        if (seg.path.empty()) {
          ++index_;
          if (seg.text.empty()) continue;
          return std::pair{asio::const_buffer(seg.text.data(), seg.text.size()),
                           index_ < body_.segments.size()};
        }
        if (!file_.is_open()) {
          std::string why;
          const int fd = open_checked_video(seg, why);
          if (fd < 0) {
            ec = make_error_code(boost::system::errc::permission_denied);
            return fail(seg, why);
          }
          file_.native_handle(fd);
          remaining_ = seg.size;
        }
        if (remaining_ == 0) {
          beast::error_code ignored;
          file_.close(ignored);
          ++index_;
          continue;
        }
        if (chunk_.empty()) chunk_.resize(kUploadChunk);
        auto n = file_.read(chunk_.data(), std::min<std::uint64_t>(remaining_, chunk_.size()), ec);
        if (ec) return fail(seg, "cannot read " + seg.path + ": " + ec.message());
        if (n == 0) {
          // Content-Length was promised from the size at start; a shorter file breaks it.
          ec = make_error_code(boost::system::errc::io_error);
          return fail(seg, seg.path + " got shorter while it was being uploaded");
        }
        remaining_ -= n;
        return std::pair{asio::const_buffer(chunk_.data(), n), true};  // the epilogue follows
      }
      return boost::none;
    }

   private:
    boost::none_t fail(const UploadSegment& seg, std::string why) {
      *body_.file_failure = seg.field + ": " + why;
      return boost::none;
    }

    const value_type& body_;
    std::size_t index_ = 0;
    beast::file file_;
    std::uint64_t remaining_ = 0;
    std::vector<char> chunk_;
  };
};

std::string random_boundary() {
  std::random_device rd;
  std::string b = "personad-";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) b.push_back(kHex[rd() % 16]);
  return b;
}

std::string media_type(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".mp4" || ext == ".m4v") return "video/mp4";
  if (ext == ".mov" || ext == ".qt") return "video/quicktime";
  return "application/octet-stream";
}

// A quoted-string in Content-Disposition cannot hold quotes or line breaks (HTML's encoding).
std::string quoted_filename(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '"')
      out += "%22";
    else if (c == '\r')
      out += "%0D";
    else if (c == '\n')
      out += "%0A";
    else
      out.push_back(c);
  }
  return out;
}

std::string local_path(std::string_view value) {
  if (value.starts_with("file://")) return std::string(value.substr(7));
  if (value.starts_with("file:")) return std::string(value.substr(5));
  return std::string(value);
}

// Builds the body of a create with local videos: form fields first, then the files. Sizes come
// from stat now, so Content-Length is exact; a file that is missing or unreadable stops here,
// before anything is sent.
Result<MultipartBody::value_type> build_upload(const PersonaSpec& spec,
                                               std::string_view client_ref) {
  std::vector<std::pair<std::string, std::string>> fields = {{"gender", spec.gender},
                                                             {"creator_name", spec.creator_name},
                                                             {"video_scene", spec.video_scene}};
  if (!spec.keywords.empty()) fields.emplace_back("keywords", spec.keywords);
  std::vector<std::pair<std::string, std::string>> files;
  const std::array<std::pair<std::string_view, const std::string*>, 2> videos = {
      {{"lipsync_input", &spec.lipsync_input}, {"consent_video", &spec.consent_video}}};
  for (const auto& [name, value] : videos) {
    if (value->empty()) continue;
    if (is_local_media(*value))
      files.emplace_back(name, local_path(*value));
    else
      fields.emplace_back(name, *value);
  }
  for (auto& l : labels_as_sent(spec, client_ref)) fields.emplace_back("labels", l);
  if (!spec.webhook_url.empty()) fields.emplace_back("webhook_url", spec.webhook_url);
  if (!spec.gdown_url.empty()) fields.emplace_back("gdown_url", spec.gdown_url);

  MultipartBody::value_type body;
  auto clashes = [&](const std::string& b) {
    return std::any_of(fields.begin(), fields.end(),
                       [&](const auto& f) { return f.second.find(b) != std::string::npos; });
  };
  do body.boundary = random_boundary();
  while (clashes(body.boundary));

  std::string text;
  for (const auto& [name, value] : fields)
    text += "--" + body.boundary + "\r\nContent-Disposition: form-data; name=\"" + name +
            "\"\r\n\r\n" + value + "\r\n";
  for (const auto& [name, path] : files) {
    std::filesystem::path p(path);
    // Intake kept the video's real path, checked against the media roots: it must still be
    // that, with no symbolic link put anywhere in its way since (then O_NOFOLLOW and the
    // inode check at the upload itself close the rest of the window).
    std::error_code ec;
    const auto real = std::filesystem::canonical(p, ec);
    if (ec) return make_error(name + ": cannot read " + path + ": " + ec.message());
    if (real != p)
      return make_error(name + ": " + path + " now leads to " + real.string() +
                        " (a symbolic link in its way since it was checked); not uploaded");
    UploadSegment file{"", name, path, 0};
    {
      struct stat st {};
      const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return make_error(name + ": cannot read " + path + ": " + std::strerror(errno));
      const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
      ::close(fd);
      if (!regular) return make_error(name + ": " + path + " is not a regular file");
      file.size = static_cast<std::uint64_t>(st.st_size);
      file.dev = st.st_dev;
      file.ino = st.st_ino;
    }
    text += "--" + body.boundary + "\r\nContent-Disposition: form-data; name=\"" + name +
            "\"; filename=\"" + quoted_filename(p.filename().string()) +
            "\"\r\nContent-Type: " + media_type(p) + "\r\n\r\n";
    body.segments.push_back({std::move(text), "", "", 0});
    body.segments.push_back(std::move(file));
    text = "\r\n";
  }
  text += "--" + body.boundary + "--\r\n";
  body.segments.push_back({std::move(text), "", "", 0});
  return body;
}

// ---- Connections ----

struct Connection {
  using Plain = beast::tcp_stream;
  using Tls = beast::ssl_stream<beast::tcp_stream>;

  explicit Connection(const asio::any_io_executor& ex) : stream(std::in_place_type<Plain>, ex) {}
  Connection(const asio::any_io_executor& ex, ssl::context& ctx)
      : stream(std::in_place_type<Tls>, ex, ctx) {}

  beast::tcp_stream& tcp() {
    return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); },
                      stream);
  }

  std::variant<Plain, Tls> stream;
  beast::flat_buffer buffer;
  steady::time_point idle_since{};
  std::uint64_t idle_id = 0;  // which stay in the pool this is, for the watch on it
};

// How far a request got. Without a response, for a create, this is the difference between
// "certainly not created" and "maybe created"; with one, whether the server answered early.
enum class Delivery { not_sent, incomplete, sent };

struct Reply {
  int status = 0;
  std::string body;
  std::string retry_after;
};

struct Exchange {
  std::optional<Reply> reply;
  std::string error;  // without a reply: what went wrong, for an operator
  Delivery delivery = Delivery::not_sent;  // with a reply too: not `sent` when it came early
};

// One write + read on a connection.
struct RoundTrip {
  std::optional<Reply> reply;
  bool keep_alive = false;
  std::string error;
  Delivery delivery = Delivery::not_sent;
  bool timed_out = false;
  bool nothing_received = false;  // failed before any response byte: maybe a stale keep-alive
};

struct Connected {
  std::unique_ptr<Connection> connection;
  std::string error;
};

// ---- The shared state of a client ----

// Owned jointly by the client and every running request, so a request that resumes after the
// client object is gone still finds its pool, limiter and options. Not thread-safe: it lives on
// the daemon's one event-loop thread, like everything else that touches it.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(asio::any_io_executor ex, ClientOptions options, Credentials credentials,
       std::shared_ptr<spdlog::logger> log, Origin origin, std::unique_ptr<ssl::context> tls)
      : ex_(std::move(ex)),
        options_(std::move(options)),
        credentials_(std::move(credentials)),
        log_(std::move(log)),
        origin_(std::move(origin)),
        tls_(std::move(tls)),
        limiter_(ex_, options_.max_requests_per_second),
        slots_(ex_, static_cast<std::size_t>(options_.max_in_flight)) {}

  asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec, std::string client_ref);
  asio::awaitable<ApiResult<RemotePersona>> get(std::string id);
  asio::awaitable<ApiResult<ListPage>> list_page(std::string target);
  asio::awaitable<ApiResult<AvatarCapacity>> count();
  void close();
  std::size_t idle_connections() const { return idle_.size(); }

 private:
  template <class Body>
  void add_headers(http::request<Body>& req) const;
  template <class Body>
  asio::awaitable<Exchange> send(http::request<Body>& req, bool idempotent);
  template <class Body>
  asio::awaitable<RoundTrip> round_trip(Connection& c, http::request<Body>& req);
  asio::awaitable<Connected> connect(steady::time_point deadline);
  asio::awaitable<std::tuple<beast::error_code, std::vector<tcp::endpoint>>> resolve(
      steady::time_point deadline);

  std::unique_ptr<Connection> take_idle(bool for_create);
  void make_room();
  void give_back(std::unique_ptr<Connection> c);
  void watch_idle(Connection& c);
  void drop_idle(std::uint64_t idle_id);

  template <class T>
  ApiResult<T> failure(Outcome outcome, std::string_view method, std::string_view target,
                       std::string message) const;
  ApiResult<RemotePersona> persona_result(std::string_view method, const std::string& target,
                                          const Exchange& ex, bool is_create) const;
  // A GET answered with a status that is not 2xx, for any result type: the error mapping does
  // not depend on what a success would have carried.
  template <class T>
  ApiResult<T> error_answer(const std::string& target, const Exchange& ex) const;
  void log_request(std::string_view method, std::string_view target, steady::time_point start,
                   const RoundTrip& rt) const;
  std::string timeout_message() const { return "timeout after " + format_duration(options_.timeout); }

  asio::any_io_executor ex_;
  ClientOptions options_;
  Credentials credentials_;
  std::shared_ptr<spdlog::logger> log_;
  Origin origin_;
  std::unique_ptr<ssl::context> tls_;
  RateLimiter limiter_;
  std::deque<std::unique_ptr<Connection>> idle_;  // oldest first
  std::uint64_t idle_ids_ = 0;                    // the last idle_id handed out
  SlotGate slots_;                                // one per running request (max_in_flight)
};

// -- slots and the idle pool --

// Nothing to read and no error on the socket, nor left in a buffer (ours, or the TLS layer's,
// where a close_notify that came with the answer waits): the server has neither closed the
// connection nor sent anything unasked for, as far as has arrived by now.
bool nothing_pending(Connection& c) {
  if (c.buffer.size() != 0) return false;
  if (auto* tls = std::get_if<Connection::Tls>(&c.stream)) {
    SSL* ssl = tls->native_handle();
    if (SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) != 0) return false;
  }
  char byte = 0;
  const auto n = ::recv(c.tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// The most recently used connection first: the likeliest alive. A create takes one only when it
// answered within options_.create_reuse_limit and nothing has arrived on it since (see send()):
// an older one stays in the pool for the reads.
std::unique_ptr<Connection> Core::take_idle(bool for_create) {
  const auto now = steady::now();
  while (!idle_.empty()) {
    const auto idle_for = now - idle_.back()->idle_since;
    if (for_create && idle_for >= options_.create_reuse_limit) return nullptr;
    auto c = std::move(idle_.back());
    idle_.pop_back();
    if (idle_for >= kIdleLimit) continue;
    if (for_create && !nothing_pending(*c)) continue;  // closing, or not ours to read: dropped
    // Ends the watch (its handler then finds no connection with this idle_id in the pool).
    beast::error_code ignored;
    c->tcp().socket().cancel(ignored);
    c->idle_id = 0;
    return c;
  }
  return nullptr;
}

// A request about to open a connection must not push the total over max_in_flight.
void Core::make_room() {
  while (!idle_.empty() && idle_.size() + slots_.in_use() > slots_.limit())
    idle_.pop_front();
}

void Core::give_back(std::unique_ptr<Connection> c) {
  if (slots_.closed()) return;
  c->tcp().expires_never();
  c->idle_since = steady::now();
  c->idle_id = ++idle_ids_;
  watch_idle(*c);
  idle_.push_back(std::move(c));
}

// An idle connection has nothing to read: when it becomes readable, the server has closed it
// (FIN, reset, a TLS close_notify) or sent something unasked for. Either way it is no use, so it
// is closed at once instead of lingering in CLOSE-WAIT until a request trips over it. The wait
// is on the socket itself, not through the (TLS) stream, so no stream operation is left pending
// on a connection that is later handed out or destroyed; the handler holds only the core (weakly)
// and the idle_id, and touches a connection only if that very stay in the pool is still on.
void Core::watch_idle(Connection& c) {
  c.tcp().socket().async_wait(
      tcp::socket::wait_read,
      [core = weak_from_this(), id = c.idle_id](const beast::error_code& ec) {
        if (ec == asio::error::operation_aborted) return;  // taken for a request, or closed
        if (auto self = core.lock()) self->drop_idle(id);
      });
}

void Core::drop_idle(std::uint64_t idle_id) {
  auto it = std::find_if(idle_.begin(), idle_.end(),
                         [idle_id](const auto& c) { return c->idle_id == idle_id; });
  if (it == idle_.end()) return;  // taken or dropped meanwhile
  if (log_) log_->debug("http: idle connection closed by the server, dropped from the pool");
  idle_.erase(it);  // closes the socket
}

void Core::close() {
  idle_.clear();  // closes the sockets
  slots_.close();
}

// -- one HTTP exchange --

template <class Body>
void Core::add_headers(http::request<Body>& req) const {
  req.set(http::field::host, origin_.host_header);
  req.set(http::field::user_agent, options_.user_agent);
  req.set(http::field::accept, "application/json");
  req.set("X-API-ID", credentials_.api_id);
  req.set("X-API-KEY", credentials_.api_key);
}

asio::awaitable<std::tuple<beast::error_code, std::vector<tcp::endpoint>>> Core::resolve(
    steady::time_point deadline) {
  std::vector<tcp::endpoint> endpoints;
  if (origin_.ip_literal) {
    beast::error_code ec;
    auto address = asio::ip::make_address(origin_.host, ec);
    if (!ec) endpoints.emplace_back(address, origin_.port);
    co_return std::tuple{ec, endpoints};
  }
  // getaddrinfo cannot be interrupted, so the lookup runs on its own and this coroutine waits
  // for it or the deadline, whichever comes first; a late answer lands in the shared state.
  struct Lookup {
    explicit Lookup(const asio::any_io_executor& ex) : resolver(ex), timer(ex) {}
    tcp::resolver resolver;
    asio::steady_timer timer;
    bool done = false;
    beast::error_code ec;
    std::vector<tcp::endpoint> endpoints;
  };
  auto lookup = std::make_shared<Lookup>(ex_);
  lookup->timer.expires_at(deadline);
  lookup->resolver.async_resolve(
      origin_.host, std::to_string(origin_.port),
      [lookup](beast::error_code ec, const tcp::resolver::results_type& results) {
        lookup->done = true;
        lookup->ec = ec;
        for (const auto& r : results) lookup->endpoints.push_back(r.endpoint());
        lookup->timer.cancel();
      });
  co_await lookup->timer.async_wait(kToken);
  if (!lookup->done) {
    lookup->resolver.cancel();
    co_return std::tuple{beast::error_code(beast::error::timeout), endpoints};
  }
  co_return std::tuple{lookup->ec, lookup->endpoints};
}

asio::awaitable<Connected> Core::connect(steady::time_point deadline) {
  Connected out;
  auto [rec, endpoints] = co_await resolve(deadline);
  if (rec == beast::error::timeout) {
    out.error = timeout_message() + " resolving " + origin_.host;
    co_return out;
  }
  if (rec || endpoints.empty()) {
    out.error = "cannot resolve " + origin_.host + ": " + (rec ? rec.message() : "no addresses");
    co_return out;
  }
  auto c = tls_ ? std::make_unique<Connection>(ex_, *tls_) : std::make_unique<Connection>(ex_);
  // One deadline for the whole exchange: connect, handshake, write and read all count.
  c->tcp().expires_at(deadline);
  auto [cec, ep] = co_await c->tcp().async_connect(endpoints, kToken);
  if (cec) {
    if (cec == beast::error::timeout)
      out.error = timeout_message() + " connecting to " + origin_.display();
    else if (cec == asio::error::connection_refused)
      out.error = "connection refused to " + origin_.display();
    else
      out.error = "cannot connect to " + origin_.display() + ": " + cec.message();
    co_return out;
  }
  if (auto* tls = std::get_if<Connection::Tls>(&c->stream)) {
    // SNI lets a shared front end pick the right certificate; it must not carry an IP address.
    if (!origin_.ip_literal &&
        !SSL_set_tlsext_host_name(tls->native_handle(), origin_.host.c_str())) {
      out.error = "cannot set the TLS server name for " + origin_.host;
      co_return out;
    }
    auto [hec] = co_await tls->async_handshake(ssl::stream_base::client, kToken);
    if (hec) {
      out.error = hec == beast::error::timeout
                      ? timeout_message() + " in the TLS handshake with " + origin_.display()
                      : "TLS handshake with " + origin_.display() + " failed: " + hec.message();
      co_return out;
    }
  }
  out.connection = std::move(c);
  co_return out;
}

// The peer closed or reset the connection while the request was going out: its answer (an early
// 413, say) may already be waiting to be read.
bool peer_hung_up(const beast::error_code& ec) {
  return ec == asio::error::broken_pipe || ec == asio::error::connection_reset ||
         ec == asio::error::connection_aborted || ec == asio::error::eof ||
         ec == asio::error::shut_down || ec == asio::error::not_connected;
}

// The two halves of one exchange, run side by side: a server may answer (413, 400) and close
// before it has read the whole body, and that answer is the result, not the failed write.
struct Halves {
  bool write_done = false;
  bool read_done = false;
  bool stopped = false;  // the connection was closed to end the other half
  beast::error_code wec, rec;
  std::size_t written = 0;
};

// Closing (not cancel()) stops the other half for sure: a composed Beast operation between two
// of its steps has nothing pending to cancel, and would carry on until the deadline.
void stop_other_half(Connection& c, Halves& h) {
  h.stopped = true;
  c.tcp().close();
}

// A request without a body, as Beast's serializer writes it (its fields in their order): one
// buffer, without the serializer's buffer-sequence machinery (perf: most of a GET's write path
// above the send itself).
std::string bodiless_request_bytes(const http::request<http::empty_body>& req) {
  std::string out;
  out.reserve(256);
  out.append(req.method_string()).append(" ").append(req.target()).append(" HTTP/1.1\r\n");
  for (const auto& f : req) out.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
  return out.append("\r\n");
}

template <class Body>
asio::awaitable<void> write_half(Connection& c, http::request<Body>& req, Halves& h) {
  beast::error_code ec;
  std::size_t n = 0;
  if constexpr (std::is_same_v<Body, http::empty_body>) {
    const std::string bytes = bodiless_request_bytes(req);
    std::tie(ec, n) = co_await std::visit(
        [&](auto& s) { return asio::async_write(s, asio::buffer(bytes), kToken); }, c.stream);
  } else {
    std::tie(ec, n) =
        co_await std::visit([&](auto& s) { return http::async_write(s, req, kToken); }, c.stream);
  }
  h.wec = ec;
  h.written = n;
  h.write_done = true;
  // A failure of our own (the body's file, a timeout) leaves no answer worth waiting for.
  if (ec && !h.read_done && !peer_hung_up(ec)) stop_other_half(c, h);
}

asio::awaitable<void> read_half(Connection& c, http::response_parser<http::string_body>& parser,
                                Halves& h) {
  auto [ec, n] = co_await std::visit(
      [&](auto& s) { return http::async_read(s, c.buffer, parser, kToken); }, c.stream);
  h.rec = ec;
  h.read_done = true;
  // The server has answered while the body is still going out: it does not want the rest, and
  // may have stopped reading it, so a write left running would only block until the deadline.
  if (!h.write_done && (!ec || parser.got_some())) stop_other_half(c, h);
}

// Writes the request and reads the response at once (Beast's streams allow one read and one
// write in flight); a request without a body, one after the other. Returns only when both
// halves have finished.
template <class Body>
asio::awaitable<RoundTrip> Core::round_trip(Connection& c, http::request<Body>& req) {
  http::response_parser<http::string_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(options_.max_response_bytes);
  Halves h;
  if constexpr (std::is_same_v<Body, http::empty_body>) {
    // A request without a body (every GET) goes into the socket's buffer at once: nothing can
    // answer before it is written, so it is written, then read, without the two halves' own
    // coroutines (the poll path's costliest allocations).
    co_await write_half(c, req, h);
    if (h.stopped)
      h.rec = asio::error::operation_aborted;  // our own write failure: nothing to read
    else
      co_await read_half(c, parser, h);
  } else {
    auto ex = co_await asio::this_coro::executor;
    auto [order, write_error, read_error] =
        co_await asio::experimental::make_parallel_group(
            asio::co_spawn(ex, write_half(c, req, h), asio::deferred),
            asio::co_spawn(ex, read_half(c, parser, h), asio::deferred))
            .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
    if (write_error) std::rethrow_exception(write_error);
    if (read_error) std::rethrow_exception(read_error);
  }

  RoundTrip rt;
  // A request cut short is incomplete, so the server cannot have acted on it.
  rt.delivery = !h.wec             ? Delivery::sent
                : h.written == 0 ? Delivery::not_sent
                                 : Delivery::incomplete;
  if (!h.rec) {
    auto& res = parser.get();
    // A connection closed to stop a write can carry nothing more.
    rt.keep_alive = !h.wec && !h.stopped && res.keep_alive();
    rt.reply = Reply{static_cast<int>(res.result_int()), std::move(res.body()),
                     std::string(res[http::field::retry_after])};
    co_return rt;
  }

  const bool got_some = parser.got_some() || c.buffer.size() != 0;
  rt.nothing_received = !got_some;
  if (h.wec && !got_some) {
    rt.timed_out = h.wec == beast::error::timeout;
    rt.error = rt.timed_out ? timeout_message() : "sending the request failed: " + h.wec.message();
    co_return rt;
  }
  const auto rec = h.rec;
  // One deadline for both halves: the first to hit it closes the socket under the other.
  rt.timed_out = rec == beast::error::timeout || h.wec == beast::error::timeout;
  if (rt.timed_out)
    rt.error = timeout_message();
  else if (rec == http::error::body_limit)
    rt.error = "response larger than " + std::to_string(options_.max_response_bytes) + " bytes";
  else if (rec == http::error::header_limit)
    rt.error = "response header larger than " + std::to_string(kHeaderLimit) + " bytes";
  else if (rt.nothing_received &&
           (rec == http::error::end_of_stream || rec == asio::error::connection_reset ||
            rec == ssl::error::stream_truncated))
    rt.error = "connection closed before a response";
  else if (parser.is_header_done())
    rt.error = "HTTP " + std::to_string(parser.get().result_int()) +
               " response cut short: " + rec.message();
  else
    rt.error = "reading the response failed: " + rec.message();
  co_return rt;
}

void Core::log_request(std::string_view method, std::string_view target, steady::time_point start,
                       const RoundTrip& rt) const {
  if (!log_) return;
  auto ms = std::chrono::duration_cast<Millis>(steady::now() - start).count();
  if (rt.reply)
    log_->debug("http {} {} status={} ms={}", method, target, rt.reply->status, ms);
  else
    log_->debug("http {} {} error=\"{}\" ms={}", method, target, rt.error, ms);
}

// Sends one request: waits for a slot and a token, reuses or opens a connection, and retries a
// GET once when a pooled connection turns out dead. A POST is never sent twice.
template <class Body>
asio::awaitable<Exchange> Core::send(http::request<Body>& req, bool idempotent) {
  const std::string method(req.method_string());
  const std::string target(req.target());
  // A create goes out within one timeout of this call, or not at all (see below).
  const auto write_by = steady::now() + options_.timeout;
  auto slot = co_await slots_.hold();  // given back on every path out
  if (!slot) co_return Exchange{{}, "client closed", Delivery::not_sent};
  for (int attempt = 1;; ++attempt) {
    co_await limiter_.acquire();
    if (slots_.closed()) co_return Exchange{{}, "client closed", Delivery::not_sent};
    const auto start = steady::now();
    const auto deadline = start + options_.timeout;
    // A create reuses only a connection that answered moments ago and has nothing pending
    // (take_idle): a server closes an idle connection after seconds, not within
    // create_reuse_limit, and one that closes after each answer has in all likelihood done so
    // (and been seen) by then. Should the race still happen, the create's outcome is unknown
    // and it is reconciled, never sent twice. A retry gets a fresh connection: the other
    // pooled ones may be just as stale.
    auto conn = attempt == 1 ? take_idle(!idempotent) : nullptr;
    const bool reused = conn != nullptr;
    if (reused) {
      conn->tcp().expires_at(deadline);
    } else {
      make_room();
      auto connected = co_await connect(deadline);
      if (!connected.connection) {
        log_request(method, target, start, RoundTrip{{}, false, connected.error});
        co_return Exchange{{}, connected.error, Delivery::not_sent};
      }
      conn = std::move(connected.connection);
    }
    if (!idempotent && steady::now() >= write_by) {
      // The wait for a slot, the rate limit or the connection outlasted the timeout (or the
      // process was stopped, the machine suspended): written now, the create could reach the
      // API after its sender — or another host holding the shared store by then — has
      // reconciled it as absent and sent it again. Not written, it is certainly not created.
      const std::string error = timeout_message() + " before the request was written";
      log_request(method, target, start, RoundTrip{{}, false, error});
      co_return Exchange{{}, error, Delivery::not_sent};
    }
    auto rt = co_await round_trip(*conn, req);
    log_request(method, target, start, rt);
    if (rt.reply) {
      if (rt.keep_alive) give_back(std::move(conn));
      co_return Exchange{std::move(rt.reply), "", rt.delivery};
    }
    if (reused && idempotent && attempt == 1 && rt.nothing_received && !rt.timed_out) {
      if (log_)
        log_->debug("http {} {}: pooled connection was dead, retrying on a new one", method,
                    target);
      continue;  // `conn` is dropped; the next attempt connects afresh
    }
    co_return Exchange{{}, std::move(rt.error), rt.delivery};
  }
}

// -- mapping to ApiResult --

template <class T>
ApiResult<T> Core::failure(Outcome outcome, std::string_view method, std::string_view target,
                           std::string message) const {
  ApiResult<T> r;
  r.outcome = outcome;
  r.message = std::string(method) + " " + std::string(target) + ": " + message;
  return r;
}

template <class T>
ApiResult<T> Core::error_answer(const std::string& target, const Exchange& ex) const {
  auto err = persona_result("GET", target, ex, false);
  ApiResult<T> r;
  r.outcome = err.outcome;
  r.http_status = err.http_status;
  r.retry_after = err.retry_after;
  r.message = std::move(err.message);
  return r;
}

std::string delivery_note(Delivery d) {
  switch (d) {
    case Delivery::not_sent:
      return " (request not sent)";
    case Delivery::incomplete:
      return " (request not completely sent, so not acted on)";
    case Delivery::sent:
      return " (request sent; outcome unknown)";
  }
  return "";
}

ApiResult<RemotePersona> Core::persona_result(std::string_view method, const std::string& target,
                                              const Exchange& ex, bool is_create) const {
  if (!ex.reply) {
    auto r = failure<RemotePersona>(Outcome::transient, method, target, ex.error);
    // A request the server never received whole cannot have been acted on.
    r.sent = ex.delivery == Delivery::sent;
    if (is_create) r.message += delivery_note(ex.delivery);
    return r;
  }
  const auto now = std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
  auto r = map_persona_response(ex.reply->status, ex.reply->body, ex.reply->retry_after, now);
  if (r.outcome != Outcome::ok) {
    r.message = std::string(method) + " " + target + ": " + r.message;
    // An answer that came before the whole request went out (an early 503) says the server
    // did not act on it. A 4xx stays the API's rejection, whenever it came.
    if (r.outcome == Outcome::transient && ex.delivery != Delivery::sent) r.sent = false;
    if (is_create && r.outcome == Outcome::transient) r.message += delivery_note(ex.delivery);
  }
  return r;
}

// -- the three operations --

asio::awaitable<ApiResult<RemotePersona>> Core::create(const PersonaSpec& spec,
                                                       std::string client_ref) {
  const std::string target(kCreatePath);
  if (is_local_media(spec.lipsync_input) || is_local_media(spec.consent_video)) {
    auto upload = build_upload(spec, client_ref);
    if (!upload) {
      auto r = failure<RemotePersona>(Outcome::permanent, "POST", target,
                                      upload.message() + delivery_note(Delivery::not_sent));
      r.sent = false;
      co_return r;
    }
    http::request<MultipartBody> req{http::verb::post, target, 11};
    add_headers(req);
    req.set(http::field::content_type, "multipart/form-data; boundary=" + upload->boundary);
    req.body() = std::move(upload).value();
    req.prepare_payload();
    auto ex = co_await send(req, false);
    // The file let us down, not the network: retrying the same upload will not help.
    if (!ex.reply && !req.body().file_failure->empty()) {
      auto r = failure<RemotePersona>(Outcome::permanent, "POST", target,
                                      *req.body().file_failure + delivery_note(ex.delivery));
      r.sent = ex.delivery == Delivery::sent;
      co_return r;
    }
    co_return persona_result("POST", target, ex, true);
  }
  http::request<http::string_body> req{http::verb::post, target, 11};
  add_headers(req);
  req.set(http::field::content_type, "application/json");
  req.body() = json::serialize(create_request_json(spec, client_ref));
  req.prepare_payload();
  auto ex = co_await send(req, false);
  co_return persona_result("POST", target, ex, true);
}

asio::awaitable<ApiResult<RemotePersona>> Core::get(std::string id) {
  const std::string target = "/api/personas/" + urls::encode(id, urls::unreserved_chars) + "/";
  if (id.empty())
    co_return failure<RemotePersona>(Outcome::permanent, "GET", target, "empty persona id");
  http::request<http::empty_body> req{http::verb::get, target, 11};
  add_headers(req);
  auto ex = co_await send(req, true);
  co_return persona_result("GET", target, ex, false);
}

asio::awaitable<ApiResult<ListPage>> Core::list_page(std::string target) {
  if (target.empty()) target = options_.list_path;
  http::request<http::empty_body> req{http::verb::get, target, 11};
  add_headers(req);
  auto ex = co_await send(req, true);
  if (!ex.reply) co_return failure<ListPage>(Outcome::transient, "GET", target, ex.error);
  if (classify_http_status(ex.reply->status) != Outcome::ok)
    co_return error_answer<ListPage>(target, ex);
  boost::system::error_code ec;
  auto doc = json::parse(ex.reply->body, ec);
  if (ec)
    co_return failure<ListPage>(Outcome::transient, "GET", target,
                                "malformed response: body is not JSON (" + ec.message() + ")");
  auto parsed = parse_list_page(doc);
  if (!parsed)
    co_return failure<ListPage>(Outcome::transient, "GET", target,
                                "malformed response: " + parsed.message());
  ApiResult<ListPage> out;
  out.outcome = Outcome::ok;
  out.http_status = ex.reply->status;
  out.value.items = std::move(parsed->items);
  if (!parsed->next.empty()) {
    auto next = next_page_target(target, parsed->next);
    if (!next) co_return failure<ListPage>(Outcome::transient, "GET", target, next.message());
    out.value.next = std::move(next).value();
  }
  co_return out;
}

asio::awaitable<ApiResult<AvatarCapacity>> Core::count() {
  const std::string target = "/api/personas_v2/count/";
  http::request<http::empty_body> req{http::verb::get, target, 11};
  add_headers(req);
  auto ex = co_await send(req, true);
  if (!ex.reply) co_return failure<AvatarCapacity>(Outcome::transient, "GET", target, ex.error);
  if (classify_http_status(ex.reply->status) != Outcome::ok)
    co_return error_answer<AvatarCapacity>(target, ex);
  boost::system::error_code ec;
  auto doc = json::parse(ex.reply->body, ec);
  // An answer that is not the documented shape turns the check off (permanent), not a retry.
  auto parsed = ec ? Result<AvatarCapacity>(make_error("body is not JSON")) : parse_capacity(doc);
  if (!parsed) {
    auto r = failure<AvatarCapacity>(Outcome::permanent, "GET", target,
                                     "unknown answer shape: " + parsed.message());
    r.http_status = ex.reply->status;
    co_return r;
  }
  ApiResult<AvatarCapacity> out;
  out.outcome = Outcome::ok;
  out.http_status = ex.reply->status;
  out.value = *parsed;
  co_return out;
}

Result<std::unique_ptr<ssl::context>> make_tls_context(const Origin& origin,
                                                       const std::string& ca_file) {
  try {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    beast::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec) return make_error("cannot load the system's CA certificates: " + ec.message());
    if (!ca_file.empty())
      if (auto ca = add_ca_file(ctx->native_handle(), ca_file); !ca) return ca.error();
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (!ec) ctx->set_verify_callback(ssl::host_name_verification(origin.host), ec);
    if (ec) return make_error("cannot set up TLS verification: " + ec.message());
    return ctx;
  } catch (const std::exception& e) {
    return make_error(std::string("cannot create a TLS context: ") + e.what());
  }
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

}  // namespace

struct CreatifyClient::Impl {
  std::shared_ptr<Core> core;
};

std::size_t CreatifyClient::idle_connections() const { return impl_->core->idle_connections(); }

ClientOptions client_options_from(const ApiConfig& api) {
  ClientOptions o;
  o.base_url = api.base_url;
  o.list_path = api.list_path;
  o.timeout = api.timeout;
  o.max_requests_per_second = api.max_requests_per_second;
  o.max_in_flight = api.max_in_flight;
  o.ca_file = api.ca_file;
  o.allow_insecure = api.allow_insecure;
  return o;
}

Result<std::unique_ptr<CreatifyClient>> CreatifyClient::create_client(
    asio::any_io_executor ex, ClientOptions options, Credentials credentials,
    std::shared_ptr<spdlog::logger> log) {
  auto origin = parse_base_url(options.base_url, options.allow_insecure);
  if (!origin) return origin.error();
  if (options.list_path.empty() || options.list_path.front() != '/')
    return make_error("api.list_path must start with '/'");
  if (options.max_in_flight < 1) return make_error("api.max_in_flight must be at least 1");
  if (options.timeout <= Millis(0)) return make_error("api.timeout must be positive");
  // A line break in a header value would let it smuggle extra headers (and never names them).
  if (has_control_chars(credentials.api_id) || has_control_chars(credentials.api_key))
    return make_error("the API credentials contain control characters");
  std::unique_ptr<ssl::context> tls;
  if (origin->tls) {
    auto ctx = make_tls_context(*origin, options.ca_file);
    if (!ctx) return ctx.error();
    tls = std::move(ctx).value();
  }
  auto core = std::make_shared<Core>(std::move(ex), std::move(options), std::move(credentials),
                                     std::move(log), std::move(origin).value(), std::move(tls));
  return std::unique_ptr<CreatifyClient>(
      new CreatifyClient(std::make_unique<Impl>(Impl{std::move(core)})));
}

CreatifyClient::CreatifyClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CreatifyClient::~CreatifyClient() { impl_->core->close(); }

void CreatifyClient::close() { impl_->core->close(); }

// Each operation holds the core for its whole run (the client may be destroyed meanwhile) and
// turns anything thrown (allocation failure) into a transient error, so nothing escapes.
asio::awaitable<ApiResult<RemotePersona>> CreatifyClient::create(const PersonaSpec& spec,
                                                                 std::string client_ref) {
  auto core = impl_->core;
  try {
    co_return co_await core->create(spec, std::move(client_ref));
  } catch (const std::exception& e) {
    ApiResult<RemotePersona> r;
    r.message = std::string("POST ") + std::string(kCreatePath) + ": internal error: " + e.what() +
                delivery_note(Delivery::sent);
    co_return r;
  }
}

asio::awaitable<ApiResult<RemotePersona>> CreatifyClient::get(std::string id) {
  auto core = impl_->core;
  try {
    co_return co_await core->get(std::move(id));
  } catch (const std::exception& e) {
    ApiResult<RemotePersona> r;
    r.message = std::string("GET persona: internal error: ") + e.what();
    co_return r;
  }
}

asio::awaitable<ApiResult<AvatarCapacity>> CreatifyClient::count() {
  auto core = impl_->core;
  try {
    co_return co_await core->count();
  } catch (const std::exception& e) {
    ApiResult<AvatarCapacity> r;
    r.message = std::string("GET count: internal error: ") + e.what();
    co_return r;
  }
}

asio::awaitable<ApiResult<ListPage>> CreatifyClient::list_page(std::string target) {
  auto core = impl_->core;
  try {
    co_return co_await core->list_page(std::move(target));
  } catch (const std::exception& e) {
    ApiResult<ListPage> r;
    r.message = std::string("GET list: internal error: ") + e.what();
    co_return r;
  }
}

}  // namespace personad
