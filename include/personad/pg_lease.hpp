// Leadership among personad hosts sharing a PostgreSQL store: one lease row, timed by the
// database's clock. The active host renews it; a standby takes it once it has expired, and the
// epoch it then holds fences the old holder's writes (pg_store.hpp). Blocking calls on a
// connection of its own: the daemon runs them off its event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "personad/clock.hpp"
#include "personad/pg_store.hpp"
#include "personad/result.hpp"

namespace personad {

struct LeaseInfo {
  std::string holder;     // empty: nobody ever held it
  std::int64_t epoch = 0;
  Millis expires_in{0};   // by the database's clock; ≤ 0: expired
};

class PgLease {
 public:
  // Connects (the schema must exist: open_pg_store with read_write made it). `holder` names
  // this host in the lease (e.g. "hostname:pid"), shown by standbys and in logs.
  static Result<std::unique_ptr<PgLease>> connect(const PgTarget& target, std::string holder);
  virtual ~PgLease() = default;

  // Takes the lease if it is free, expired, or already ours, for `ttl` from now (the database's
  // clock); the epoch grows by one when the holder changes. nullopt: another host holds it.
  virtual Result<std::optional<PgFence>> try_acquire(Millis ttl) = 0;
  // Extends the lease by `ttl` from now; false when it is no longer ours (taken over, or
  // expired and taken): the caller must stop acting at once.
  virtual Result<bool> renew(const PgFence& fence, Millis ttl) = 0;
  // Gives it up (graceful stop): expired now, so a standby takes over at its next try.
  virtual Result<void> release(const PgFence& fence) = 0;
  virtual Result<LeaseInfo> current() = 0;

 protected:
  PgLease() = default;
};

}  // namespace personad
