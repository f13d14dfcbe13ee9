// The daemon wired together: lock, store, client, tracker, batches directory, control socket,
// signals (SIGHUP reload, SIGTERM/SIGINT graceful stop) and systemd notifications, on one loop.
#pragma once

#include <memory>
#include <string>

#include "personad/config.hpp"
#include "personad/logging.hpp"

namespace personad {

// Runs until SIGTERM/SIGINT. Returns the process exit code: 0 after a clean stop, 1 when
// start-up failed (the reason is logged).
int run_daemon(Config config, Credentials credentials, const EventLog& log);

}  // namespace personad
