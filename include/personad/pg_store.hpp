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

#include "personad/pg_connection.hpp"  // PgTarget, PgFence, kLeaseLost
#include "personad/result.hpp"
#include "personad/store.hpp"
#include "personad/url.hpp"

namespace personad {

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

// True for an error that begins with kLeaseLost (pg_connection.hpp): this host is no longer the active one and must stop acting.
bool is_lease_lost(const Error& e);

}  // namespace personad
