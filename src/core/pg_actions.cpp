// The action queue (pg_actions.hpp): rows of personad_actions. A request is run at most once per
// epoch: the active host claims it (row locks, SKIP LOCKED), a standby may withdraw it only
// while nobody has, and a claim by an older epoch that was never answered is taken over.
#include "personad/pg_actions.hpp"

#include <algorithm>
#include <utility>

#include <libpq-fe.h>

#include "personad/pg_connection.hpp"
#include "personad/pg_migrations_data.hpp"

namespace personad {

namespace {

using pg::Params;

constexpr int kLatestVersion = pg_migrations::kAll.back().version;

Error action_error(std::string_view what, const Error& cause) {
  const ErrorKind kind = cause.kind == ErrorKind::internal ? ErrorKind::io : cause.kind;
  if (cause.message.starts_with(kLeaseLost)) return cause;  // already says it all
  return make_error(kind, "actions: " + std::string(what) + ": " + cause.message);
}

// The channel every post notifies (pg_notify's payload: the request's id, unused).
constexpr std::string_view kChannel = "personad_actions";

class PgActionQueueImpl final : public PgActionQueue {
 public:
  explicit PgActionQueueImpl(pg::Connection c) : c_(std::move(c)) {}

  Result<std::int64_t> post(const PgAction& action) override;
  Result<std::optional<PgActionAnswer>> answer(std::int64_t id) override;
  Result<bool> withdraw(std::int64_t id) override;
  Result<std::vector<PgAction>> claim(const PgFence& fence, std::size_t max) override;
  Result<void> set_answer(const PgFence& fence, std::int64_t id,
                          const PgActionAnswer& answer) override;
  Result<void> listen() override;
  int socket() const override;
  Result<bool> take_notices() override;

 private:
  Result<pg::Rows> exec(std::string_view what, std::string_view sql, const Params& params);

  pg::Connection c_;
  bool listening_ = false;  // LISTEN is among the connection's session statements
};

Result<pg::Rows> PgActionQueueImpl::exec(std::string_view what, std::string_view sql,
                                         const Params& params) {
  if (!c_.in_transaction())
    if (auto r = c_.ensure_open(); !r) return action_error(what, r.error());
  auto rows = c_.exec(sql, params);
  if (!rows) return action_error(what, rows.error());
  return rows;
}

Result<std::int64_t> PgActionQueueImpl::post(const PgAction& action) {
  auto rows = exec("post",
                   "WITH posted AS (INSERT INTO personad_actions (method, target, body, "
                   "requested_by) VALUES ($1, $2, $3, $4) RETURNING id) "
                   "SELECT id, pg_notify('" + std::string(kChannel) + "', id::text) FROM posted",
                   Params().add(action.method).add(action.target).add(action.body).add(
                       action.requested_by));
  if (!rows) return rows.error();
  return rows->int64(0, 0);
}

Result<std::optional<PgActionAnswer>> PgActionQueueImpl::answer(std::int64_t id) {
  auto rows = exec("answer",
                   "SELECT answered_at IS NOT NULL, status, answer FROM personad_actions "
                   "WHERE id = $1",
                   Params().add(id));
  if (!rows) return rows.error();
  if (rows->empty())
    return make_error(ErrorKind::not_found,
                      "actions: no request " + std::to_string(id) + " (answered long ago?)");
  if (!rows->boolean(0, 0)) return std::optional<PgActionAnswer>();
  return std::optional<PgActionAnswer>(
      PgActionAnswer{static_cast<int>(rows->int64(0, 1)), rows->text(0, 2)});
}

// Only while nobody claimed it: the claim and the withdrawal lock the same row, so one of them
// sees the other's mark.
Result<bool> PgActionQueueImpl::withdraw(std::int64_t id) {
  auto rows = exec("withdraw",
                   "UPDATE personad_actions SET withdrawn = true "
                   "WHERE id = $1 AND claimed_epoch IS NULL AND answered_at IS NULL RETURNING id",
                   Params().add(id));
  if (!rows) return rows.error();
  return !rows->empty();
}

Result<std::vector<PgAction>> PgActionQueueImpl::claim(const PgFence& fence, std::size_t max) {
  if (auto r = c_.ensure_open(); !r) return action_error("claim", r.error());
  auto tx = pg::Transaction::begin(c_);
  if (!tx) return action_error("claim", tx.error());
  if (auto r = pg::check_lease(c_, fence, "claim operator actions"); !r) return r.error();
  // Requests done with (answered or withdrawn) an hour ago: no standby waits for them any more.
  if (auto r = exec("claim",
                    "DELETE FROM personad_actions WHERE (answered_at IS NOT NULL OR withdrawn) "
                    "AND requested_at < clock_timestamp() - interval '1 hour'",
                    Params());
      !r)
    return r.error();
  auto rows = exec("claim",
                   "UPDATE personad_actions SET claimed_epoch = $2, claimed_by = $1, "
                   "claimed_at = clock_timestamp() WHERE id IN ("
                   "SELECT id FROM personad_actions WHERE answered_at IS NULL AND NOT withdrawn "
                   "AND (claimed_epoch IS NULL OR claimed_epoch < $2) "
                   "ORDER BY id LIMIT $3::bigint FOR UPDATE SKIP LOCKED) "
                   "RETURNING id, method, target, body, requested_by",
                   Params().add(fence.holder).add(fence.epoch).add(static_cast<std::int64_t>(max)));
  if (!rows) return rows.error();
  std::vector<PgAction> out;
  for (int r = 0; r < rows->size(); ++r)
    out.push_back(PgAction{rows->int64(r, 0), rows->text(r, 1), rows->text(r, 2), rows->text(r, 3),
                           rows->text(r, 4)});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  if (auto r = tx->commit(); !r) return action_error("claim (commit)", r.error());
  return out;
}

Result<void> PgActionQueueImpl::set_answer(const PgFence& fence, std::int64_t id,
                                           const PgActionAnswer& answer) {
  if (auto r = c_.ensure_open(); !r) return action_error("answer", r.error());
  auto tx = pg::Transaction::begin(c_);
  if (!tx) return action_error("answer", tx.error());
  if (auto r = pg::check_lease(c_, fence, "answer an operator action"); !r) return r.error();
  auto rows = exec("answer",
                   "UPDATE personad_actions SET answered_at = clock_timestamp(), status = $3, "
                   "answer = $4 WHERE id = $1 AND claimed_epoch = $2 AND answered_at IS NULL "
                   "RETURNING id",
                   Params().add(id).add(fence.epoch).add(answer.status).add(answer.body));
  if (!rows) return rows.error();
  if (rows->empty())
    return make_error(ErrorKind::conflict, "actions: request " + std::to_string(id) +
                                               " is not claimed by epoch " +
                                               std::to_string(fence.epoch) +
                                               " or is answered already");
  if (auto r = tx->commit(); !r) return action_error("answer (commit)", r.error());
  return {};
}

Result<void> PgActionQueueImpl::listen() {
  // Re-established connections run the session's statements again, LISTEN among them.
  if (auto r = c_.ensure_open(); !r) return action_error("listen", r.error());
  if (listening_) return {};
  if (auto r = c_.set_session("LISTEN " + std::string(kChannel)); !r)
    return action_error("listen", r.error());
  listening_ = true;
  return {};
}

int PgActionQueueImpl::socket() const {
  return c_.handle() != nullptr ? PQsocket(c_.handle()) : -1;
}

Result<bool> PgActionQueueImpl::take_notices() {
  pg_conn* conn = c_.handle();
  if (conn == nullptr || PQconsumeInput(conn) == 0)
    return make_error(ErrorKind::unavailable,
                      "actions: the connection to " + c_.describe() + " is broken");
  bool any = false;
  while (PGnotify* n = PQnotifies(conn)) {
    any = true;
    PQfreemem(n);
  }
  return any;
}

}  // namespace

Result<std::unique_ptr<PgActionQueue>> PgActionQueue::connect(const PgTarget& target) {
  auto c = pg::connect_to_schema(target, "personad actions", kLatestVersion);
  if (!c) return action_error("connect", c.error());
  return std::unique_ptr<PgActionQueue>(new PgActionQueueImpl(std::move(*c)));
}

}  // namespace personad
