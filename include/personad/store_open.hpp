// Opening the store the configuration names: SQLite at [store] path (the default), or
// PostgreSQL at [store] url (pg_store.hpp). The daemon, personactl's offline reads and its
// maintenance commands all open it here, so they never disagree about where the jobs are.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "personad/config.hpp"
#include "personad/pg_store.hpp"
#include "personad/result.hpp"
#include "personad/store.hpp"

namespace personad {

// True with [store] url: a PostgreSQL store shared by hosts, one of them active at a time.
inline bool uses_pg_store(const Config& c) { return !c.store_url.empty(); }

// The PostgreSQL target of [store] url, its password from $CREDENTIALS_DIRECTORY/pg_password
// when that file exists (load_pg_password).
Result<PgTarget> pg_target(const Config& c, const EnvLookup& env);

// Opens the configured store. `fence` applies to a PostgreSQL store only (pg_store.hpp).
Result<std::unique_ptr<Store>> open_configured_store(const Config& c, OpenMode mode,
                                                     const std::optional<PgFence>& fence = {});

// Where the store is, for log lines and messages: the SQLite path, or the PostgreSQL URI (which
// never holds a password: config refuses one).
std::string store_display(const Config& c);

}  // namespace personad
