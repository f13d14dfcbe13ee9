// The lease (pg_lease.hpp): one row of personad_lease, every decision taken by a single
// statement on the database's clock, so two hosts racing for it cannot both win and no host's
// clock matters.
#include "personad/pg_lease.hpp"

#include <utility>

#include "personad/pg_connection.hpp"
#include "personad/pg_migrations_data.hpp"

namespace personad {

namespace {

using pg::Params;

constexpr int kLatestVersion = pg_migrations::kAll.back().version;

Error lease_error(std::string_view what, const Error& cause) {
  const ErrorKind kind = cause.kind == ErrorKind::internal ? ErrorKind::io : cause.kind;
  return make_error(kind, "lease: " + std::string(what) + ": " + cause.message);
}

class PgLeaseImpl final : public PgLease {
 public:
  PgLeaseImpl(pg::Connection c, std::string holder) : c_(std::move(c)), holder_(std::move(holder)) {}

  Result<std::optional<PgFence>> try_acquire(Millis ttl) override;
  Result<bool> renew(const PgFence& fence, Millis ttl) override;
  Result<void> release(const PgFence& fence) override;
  Result<LeaseInfo> current() override;

 private:
  Result<pg::Rows> exec(std::string_view what, std::string_view sql, const Params& params);

  pg::Connection c_;
  std::string holder_;
};

// One statement each, never inside a transaction: a connection that broke since the last call
// is re-established first.
Result<pg::Rows> PgLeaseImpl::exec(std::string_view what, std::string_view sql,
                                   const Params& params) {
  if (auto r = c_.ensure_open(); !r) return lease_error(what, r.error());
  auto rows = c_.exec(sql, params);
  if (!rows) return lease_error(what, rows.error());
  return rows;
}

// Free, expired or ours: taken for ttl from now. The epoch stays only when a live lease of this
// holder is extended; any other acquisition (another holder, or this one after its lease ran
// out) takes the next epoch, so a store fenced with an older one can never write again. Two
// hosts at once: the row lock orders them, and the second re-reads the row the first wrote.
Result<std::optional<PgFence>> PgLeaseImpl::try_acquire(Millis ttl) {
  auto rows = exec("acquire",
                   "WITH now AS (SELECT clock_timestamp() AS t) "
                   "UPDATE personad_lease SET "
                   "epoch = CASE WHEN holder = $1 AND expires_at > now.t THEN epoch "
                   "ELSE epoch + 1 END, "
                   "holder = $1, expires_at = now.t + $2::bigint * interval '1 millisecond' "
                   "FROM now WHERE id = 1 AND (expires_at <= now.t OR holder = $1) "
                   "RETURNING epoch",
                   Params().add(holder_).add(static_cast<std::int64_t>(ttl.count())));
  if (!rows) return rows.error();
  if (rows->empty()) return std::optional<PgFence>();
  return std::optional<PgFence>(PgFence{holder_, rows->int64(0, 0)});
}

// Only a live lease of the same holder and epoch: one that expired may have been taken (and
// even if not, its epoch is over: try_acquire takes a new one).
Result<bool> PgLeaseImpl::renew(const PgFence& fence, Millis ttl) {
  auto rows = exec("renew",
                   "WITH now AS (SELECT clock_timestamp() AS t) "
                   "UPDATE personad_lease SET "
                   "expires_at = now.t + $3::bigint * interval '1 millisecond' "
                   "FROM now WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > now.t "
                   "RETURNING epoch",
                   Params().add(fence.holder).add(fence.epoch).add(
                       static_cast<std::int64_t>(ttl.count())));
  if (!rows) return rows.error();
  return !rows->empty();
}

Result<void> PgLeaseImpl::release(const PgFence& fence) {
  auto rows = exec("release",
                   "UPDATE personad_lease SET expires_at = clock_timestamp() "
                   "WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > clock_timestamp()",
                   Params().add(fence.holder).add(fence.epoch));
  if (!rows) return rows.error();
  return {};
}

Result<LeaseInfo> PgLeaseImpl::current() {
  auto rows = exec("read",
                   "SELECT holder, epoch, floor(extract(epoch FROM "
                   "(expires_at - clock_timestamp())) * 1000)::bigint "
                   "FROM personad_lease WHERE id = 1",
                   Params());
  if (!rows) return rows.error();
  if (rows->empty()) return LeaseInfo{};
  return LeaseInfo{rows->text(0, 0), rows->int64(0, 1), Millis(rows->int64(0, 2))};
}

}  // namespace

Result<std::unique_ptr<PgLease>> PgLease::connect(const PgTarget& target, std::string holder) {
  if (holder.empty()) return make_error(ErrorKind::invalid, "lease: the holder name is empty");
  auto c = pg::connect_to_schema(target, "personad lease", kLatestVersion);
  if (!c) return lease_error("connect", c.error());
  // The row exists from the first migration on; a database restored without it gets it back.
  if (auto r = c->exec("INSERT INTO personad_lease (id, holder, epoch, expires_at) "
                       "VALUES (1, '', 0, 'epoch') ON CONFLICT (id) DO NOTHING");
      !r)
    return lease_error("connect", r.error());
  return std::unique_ptr<PgLease>(new PgLeaseImpl(std::move(*c), std::move(holder)));
}

}  // namespace personad
