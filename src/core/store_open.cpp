// Opening the configured store (see store_open.hpp).
#include "personad/store_open.hpp"

namespace personad {

Result<PgTarget> pg_target(const Config& c, const EnvLookup& env) {
  auto password = load_pg_password(env);
  if (!password) return password.error();
  return PgTarget{c.store_url, std::move(*password)};
}

Result<std::unique_ptr<Store>> open_configured_store(const Config& c, OpenMode mode,
                                                     const std::optional<PgFence>& fence) {
  if (!uses_pg_store(c)) return Store::open(c.store_path, mode);
  auto target = pg_target(c, process_env());
  if (!target) return target.error();
  return open_pg_store(*target, mode, fence);
}

std::string store_display(const Config& c) { return uses_pg_store(c) ? c.store_url : c.store_path; }

}  // namespace personad
