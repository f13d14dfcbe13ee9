// The Creatify API over HTTP(S) with Beast: TLS with peer verification and SNI, a keep-alive
// connection pool of max_in_flight, a token-bucket rate limit, timeouts and response size caps.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>

#include "personad/config.hpp"
#include "personad/creatify_api.hpp"

namespace spdlog { class logger; }

namespace personad {

struct ClientOptions {
  std::string base_url;          // http://host:port or https://host[:port], no path (url.hpp)
  std::string list_path = "/api/personas_v2/";
  Millis timeout{30'000};        // per request: connect + write + read
  double max_requests_per_second = 5.0;
  int max_in_flight = 4;
  std::size_t max_response_bytes = 8 * 1024 * 1024;
  std::string user_agent = "personad";
  std::string ca_file;          // extra CA certificates (PEM) for https; empty: the system's only
  bool allow_insecure = false;  // allow http:// to a host that is not loopback
  // A create goes on a pooled connection only if it answered less than this long ago (and has
  // nothing pending); otherwise on a new one. Not a config key: tests set 0 (always new).
  Millis create_reuse_limit{1'000};
};

ClientOptions client_options_from(const ApiConfig& api);

class CreatifyClient final : public CreatifyApi {
 public:
  // Fails when base_url is not an origin parse_api_origin accepts (the config reader's rule), or
  // the TLS context (system CAs, ca_file) cannot be set up.
  static Result<std::unique_ptr<CreatifyClient>> create_client(
      boost::asio::any_io_executor ex, ClientOptions options, Credentials credentials,
      std::shared_ptr<spdlog::logger> log);
  ~CreatifyClient() override;

  boost::asio::awaitable<ApiResult<RemotePersona>> create(const PersonaSpec& spec,
                                                          std::string client_ref) override;
  boost::asio::awaitable<ApiResult<RemotePersona>> get(std::string id) override;
  boost::asio::awaitable<ApiResult<ListPage>> list_page(std::string target) override;
  boost::asio::awaitable<ApiResult<AvatarCapacity>> count() override;

  // Closes pooled connections (shutdown).
  void close();

  // Keep-alive connections waiting in the pool (one the server closes leaves it at once).
  std::size_t idle_connections() const;

  struct Impl;

 private:
  explicit CreatifyClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace personad
