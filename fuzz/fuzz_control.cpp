// Requests on the control socket, as ControlServer hands them to ControlApi: any method, target
// and body from a member of the socket's group gets an answer with a real HTTP status and a
// body of valid UTF-8 (JSON, or Prometheus text); never a crash or an exception. The tracker
// behind it is real, on a real store in a scratch directory, with a fake API and a virtual clock
// that never moves (so no request is ever sent). Input: a method byte, the target line, the
// body.
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "await.hpp"
#include "fake_api.hpp"
#include "fuzz_input.hpp"
#include "personad/control.hpp"
#include "personad/job_json.hpp"
#include "personad/logging.hpp"
#include "personad/store.hpp"
#include "personad/store_runner.hpp"
#include "personad/tracker.hpp"

namespace personad::fuzz {
namespace {

struct World {
  World() {
    dir = std::filesystem::temp_directory_path() /
          ("personad-fuzz-control-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    auto s = Store::open((dir / "p.db").string(), OpenMode::read_write);
    if (!s) std::abort();
    store = std::move(*s);
    runner = std::make_unique<InlineStoreRunner>(*store);
    log = std::make_unique<EventLog>(
        std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>()),
        LogFormat::text);
    api.now = [this] { return clock.now(); };
    tracker = std::make_unique<Tracker>(ioc.get_executor(), *runner, api, clock, *log,
                                        TrackerOptions{}, [] { return 0.5; });
    if (!tracker->start()) std::abort();
    control = std::make_unique<ControlApi>(*tracker, *runner, clock);
  }
  ~World() {
    control.reset();
    tracker.reset();
    runner.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::filesystem::path dir;
  boost::asio::io_context ioc;
  ManualClock clock{from_unix_ms(1'790'000'000'000)};
  testing::FakeApi api;
  std::unique_ptr<Store> store;
  std::unique_ptr<InlineStoreRunner> runner;
  std::unique_ptr<EventLog> log;
  std::unique_ptr<Tracker> tracker;
  std::unique_ptr<ControlApi> control;
};

World& world() {
  static World w;
  return w;
}

}  // namespace
}  // namespace personad::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace personad;
  static const char* const kMethods[] = {"GET", "POST", "DELETE", "PUT"};
  fuzz::Input in(data, size);
  ControlRequest req;
  req.method = kMethods[in.byte() % 4];
  req.target = std::string(in.line());
  req.body = std::string(in.rest());
  // An unprivileged member of the socket's group.
  req.peer = PeerCredentials{1, 65534, 65534, {65534}};
  auto& w = fuzz::world();
  const ControlResponse r = testing::await(w.ioc, w.control->handle(std::move(req)));
  if (r.status < 100 || r.status > 599) std::abort();
  if (!is_valid_utf8(r.body)) std::abort();
  return 0;
}
