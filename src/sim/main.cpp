// creatify-sim: a fast simulator of the Creatify personas API (compressed time, faults).
// This file only parses the command line, prints the bound port and runs the event loop.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "sim_server.hpp"

namespace {

using namespace creatify_sim;

// Readers polling for the file never see it half written.
bool write_port_file(const std::string& path, std::uint16_t port) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::trunc);
    out << port << '\n';
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"creatify-sim: a simulator of the Creatify personas API"};
  SimConfig config;
  std::string listen;
  double time_scale = 1.0;
  std::string stage_duration = "4h";
  std::string api_id, api_key, list_format = "paginated", port_file;
  std::uint64_t seed = 0;
  unsigned slow_ms = 3000, slow_create_ms = 5000, list_lag_ms = 0, list_slow_ms = 0;
  std::size_t body_limit_mb = 64;
  bool no_labels = false, verbose = false;
  const auto probability = CLI::Range(0.0, 1.0);

  app.add_option("--listen", listen, "HOST:PORT to listen on; PORT 0 picks a free port")
      ->required();
  app.add_option("--time-scale", time_scale, "simulated time runs N times faster")
      ->check(CLI::PositiveNumber);
  app.add_option("--fail-rate", config.book.fail_rate, "P(a persona ends failed or rejected)")
      ->check(probability);
  auto* seed_option = app.add_option("--seed", seed, "random seed (default: random)");
  app.add_option("--stage-duration", stage_duration, "sim time per lifecycle stage, ±50%");
  auto* id_option = app.add_option("--api-id", api_id, "required X-API-ID value");
  auto* key_option = app.add_option("--api-key", api_key, "required X-API-KEY value");
  id_option->needs(key_option);
  key_option->needs(id_option);
  app.add_option("--fault-5xx", config.faults.server_error, "P(answer 500/502/503)")
      ->check(probability);
  app.add_option("--fault-429", config.faults.rate_limited, "P(answer 429)")->check(probability);
  app.add_option("--retry-after", config.retry_after_s, "Retry-After seconds of 429s");
  app.add_option("--fault-reset", config.faults.reset, "P(close without answering)")
      ->check(probability);
  app.add_option("--fault-slow", config.faults.slow, "P(answer after --slow-ms)")
      ->check(probability);
  app.add_option("--slow-ms", slow_ms, "delay of slow answers in ms");
  app.add_option("--fault-malformed", config.faults.malformed, "P(2xx with truncated JSON)")
      ->check(probability);
  app.add_option("--lost-create", config.faults.lost_create,
                 "P(a create is stored but answered with 500 or a reset)")
      ->check(probability);
  app.add_option("--slow-create", config.faults.slow_create,
                 "P(a create is stored --slow-create-ms after it arrives, then answered)")
      ->check(probability);
  app.add_option("--slow-create-ms", slow_create_ms,
                 "delay before a slow create is stored and answered, in ms");
  app.add_option("--list-lag-ms", list_lag_ms, "a new persona shows in lists only N ms later");
  app.add_option("--retry-after-absurd", config.faults.retry_after_absurd,
                 "share of 429s whose Retry-After is 4294967295 or a date in year 9999")
      ->check(probability);
  app.add_option("--upload-limit-bytes", config.limits.upload_limit,
                 "answer 413 to a multipart create over N bytes before reading it (0: off)");
  app.add_option("--fault-list-page", config.faults.list_page, "P(a list page answers 502)")
      ->check(probability);
  app.add_option("--list-slow-ms", list_slow_ms, "every list page answers after N ms");
  app.add_option("--list-format", list_format, "GET /api/personas_v2/ shape")
      ->check(CLI::IsMember({"paginated", "array"}));
  app.add_option("--max-avatars", config.api.max_avatars,
                 "workspace capacity: GET /api/personas_v2/count/, creates beyond refused (0: none)");
  app.add_option("--page-size", config.api.page_size, "default page size")
      ->check(CLI::Range(1, 10000));
  app.add_flag("--no-labels", no_labels, "omit labels from list responses");
  app.add_option("--body-limit-mb", body_limit_mb, "request body limit in MiB")
      ->check(CLI::Range(1, 4096));
  app.add_option("--port-file", port_file, "also write the bound port to this file");
  app.add_option("--webhook-drop", config.webhook_drop,
                 "P(a webhook callback is never sent), e.g. 0.5; 1 drops every one")
      ->check(probability);
  app.add_flag("--verbose", verbose, "one line per request on stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; any usage error exits 2, like the project's other programs.
    return app.exit(e) == 0 ? 0 : 2;
  }

  const auto hostport = parse_host_port(listen);
  if (!hostport) {
    std::cerr << "creatify-sim: --listen: expected HOST:PORT, got \"" << listen << "\"\n";
    return 2;
  }
  const auto stage = parse_duration(stage_duration);
  if (!stage || stage->count() == 0) {
    std::cerr << "creatify-sim: --stage-duration: expected e.g. 4h, 30m, 500ms\n";
    return 2;
  }
  config.host = hostport->host;
  config.port = hostport->port;
  config.seed = seed_option->count() ? seed : std::random_device{}();
  config.book.stage_duration = *stage;
  if (id_option->count()) {
    config.api.api_id = api_id;
    config.api.api_key = api_key;
  }
  config.api.list_format = list_format == "array" ? ListFormat::array : ListFormat::paginated;
  config.api.labels_in_lists = !no_labels;
  config.slow_delay = std::chrono::milliseconds(slow_ms);
  config.slow_create_delay = std::chrono::milliseconds(slow_create_ms);
  config.list_delay = std::chrono::milliseconds(list_slow_ms);
  config.book.list_lag = std::chrono::milliseconds(list_lag_ms);
  config.limits.body_limit = body_limit_mb * 1024 * 1024;
  config.log = verbose ? &std::cerr : nullptr;

  try {
    boost::asio::io_context ioc{1};
    ScaledClock clock(time_scale);
    SimServer server(ioc, clock, config);
    // Installed before the port is announced: a harness may signal as soon as it reads it.
    boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code&, int) {
      server.stop();
      ioc.stop();
    });
    if (const auto ec = server.listen()) {
      std::cerr << "creatify-sim: cannot listen on " << listen << ": " << ec.message() << "\n";
      return 1;
    }
    std::cout << server.port() << std::endl;
    if (!port_file.empty() && !write_port_file(port_file, server.port())) {
      std::cerr << "creatify-sim: cannot write --port-file " << port_file << "\n";
      return 1;
    }
    if (verbose)
      std::cerr << "creatify-sim: listening on port " << server.port() << ", seed " << config.seed
                << ", time scale " << time_scale << std::endl;
    server.start();
    ioc.run();
  } catch (const std::exception& e) {
    std::cerr << "creatify-sim: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
