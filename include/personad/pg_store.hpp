// The PostgreSQL store (PRODUCT.md "PostgreSQL and several hosts"): the same Store interface as
// SQLite, through libpq, for several personad hosts on one database. Writes of an active host
// are fenced by the lease it holds (pg_lease.hpp): a host that lost the lease writes nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "personad/result.hpp"
#include "personad/store.hpp"
#include "personad/url.hpp"

namespace personad {

// Where the database is: a libpq connection URI ("postgresql://" alone: libpq's defaults and
// the PG* environment variables) and, when not from libpq's own sources (PGPASSWORD,
// .pgpass), the password (from $CREDENTIALS_DIRECTORY/pg_password). Never logged.
struct PgTarget {
  std::string url;
  std::string password;  // empty: libpq finds it (PGPASSWORD, ~/.pgpass) or none is needed
  // When > 0, the server ends a session of ours that sits idle inside a transaction longer than
  // this (idle_in_transaction_session_timeout). A fenced write holds the lease row (FOR SHARE)
  // until it commits: without this limit a host paused mid-transaction (SIGSTOP, a frozen VM)
  // would hold up every takeover until it woke. The daemon sets a sixth of takeover_after.
  std::chrono::milliseconds idle_in_transaction_limit{0};
};

// The lease an active host holds (pg_lease.hpp): its holder name and the epoch, which grows by
// one at every change of holder.
struct PgFence {
  std::string holder;
  std::int64_t epoch = 0;
};

// Opens the store at `target`. read_write creates and migrates the schema (under an advisory
// lock, so two hosts starting at once migrate once); read_only never writes. With `fence`,
// every write transaction first checks, in the same transaction, that the lease row still names
// this holder and epoch and has not expired by the database's clock (SELECT … FOR SHARE, so a
// takeover waits for a write in flight and every later write of the old holder fails); a failed
// check is ErrorKind::conflict with a message saying the lease was lost. A database of a newer
// personad is an error, never touched.
Result<std::unique_ptr<Store>> open_pg_store(const PgTarget& target, OpenMode mode,
                                             std::optional<PgFence> fence = std::nullopt);

// (is_pg_url and pg_url_has_password live in url.hpp, the one URL module: do not define them
// here.)

// How every error of a fenced write that found the lease lost begins (its kind is
// ErrorKind::conflict, like a row that changed meanwhile; this tells the two apart).
inline constexpr std::string_view kLeaseLost = "store: lease lost";
// True for such an error: this host is no longer the active one and must stop acting.
bool is_lease_lost(const Error& e);

}  // namespace personad
