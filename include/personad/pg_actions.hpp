// Operator actions from any host (PRODUCT.md: `personactl` actions reach the active host
// wherever it runs): a standby host writes the control request it received into an action
// table; the active host takes it, runs it through its own control API, and writes the answer
// back, which the standby returns to personactl. Blocking calls on a connection of its own;
// every post notifies the active host, which waits for that rather than asking the table.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "personad/pg_store.hpp"
#include "personad/result.hpp"

namespace personad {

struct PgAction {
  std::int64_t id = 0;
  std::string method;  // POST
  std::string target;  // /v1/jobs/KEY/cancel
  std::string body;
  std::string requested_by;  // the standby host's holder name
};

struct PgActionAnswer {
  int status = 0;
  std::string body;
};

class PgActionQueue {
 public:
  static Result<std::unique_ptr<PgActionQueue>> connect(const PgTarget& target);
  virtual ~PgActionQueue() = default;

  // A standby: records the request; its id is what answer() is asked for.
  virtual Result<std::int64_t> post(const PgAction& action) = 0;
  // The answer once the active host has written it; nullopt while it has not.
  virtual Result<std::optional<PgActionAnswer>> answer(std::int64_t id) = 0;
  // A standby that gave up waiting: the request is withdrawn unless already taken (true if
  // withdrawn, so it will never run).
  virtual Result<bool> withdraw(std::int64_t id) = 0;

  // The active host: up to `max` requests not yet answered, oldest first, claimed for `fence`
  // (a request claimed by an older epoch and never answered is claimed again: its host died
  // between running it and answering; the actions are idempotent by key). Fenced like writes.
  virtual Result<std::vector<PgAction>> claim(const PgFence& fence, std::size_t max) = 0;
  virtual Result<void> set_answer(const PgFence& fence, std::int64_t id,
                                  const PgActionAnswer& answer) = 0;

  // The active host, so that it need not ask the table over and over: from this call on, every
  // post() (from any host) sends this connection a notice (LISTEN/NOTIFY; listened for again
  // after the connection is re-established). A claim after that catches what came before.
  virtual Result<void> listen() = 0;
  // The connection's socket, readable when a notice (or anything else) has arrived; -1 while
  // the connection is down. Waited on by the loop (fd_wait.hpp), read only by the calls here.
  virtual int socket() const = 0;
  // Reads what has arrived, without waiting: true when it held at least one notice. An error
  // when the connection is broken (the next claim re-establishes it).
  virtual Result<bool> take_notices() = 0;

 protected:
  PgActionQueue() = default;
};

}  // namespace personad
