// creatify-sim's HTTP server: accepts connections on one io_context, runs one coroutine per
// connection, injects faults, routes to the API and admin handlers, and fires webhooks.
#pragma once

#include <boost/system/error_code.hpp>
#include <cstdint>
#include <memory>

#include "sim_clock.hpp"
#include "sim_config.hpp"

namespace boost::asio {
class io_context;
}

namespace creatify_sim {

class PersonaBook;

class SimServer {
 public:
  // `clock` must outlive the server; everything else is owned by it.
  SimServer(boost::asio::io_context& ioc, Clock& clock, SimConfig config);
  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  // Binds and listens on config.host:config.port; port() is then the bound port.
  boost::system::error_code listen();
  std::uint16_t port() const;

  // Starts accepting and the webhook timer; runs when the io_context runs.
  void start();
  // Stops accepting and firing webhooks. Open connections end when the io_context stops.
  void stop();

  PersonaBook& book();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace creatify_sim
