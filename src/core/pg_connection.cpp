// libpq behind Result (see pg_connection.hpp): connecting without ever echoing the password,
// statements prepared once per connection, and transactions and savepoints that roll back
// unless finished.
#include "personad/pg_connection.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cstdlib>
#include <utility>

namespace personad::pg {

namespace {

// Statements kept prepared per connection; past this the cache starts over (selections build
// a few shapes each, a flood of odd ones must not grow the server's memory without bound).
constexpr std::size_t kMaxPrepared = 256;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

struct FreeOptions {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using Options = std::unique_ptr<PQconninfoOption, FreeOptions>;

// The URL's options as libpq reads them; nullptr when it cannot be parsed.
Options parse_options(const std::string& url) {
  char* err = nullptr;
  Options o(PQconninfoParse(url.c_str(), &err));
  PQfreemem(err);  // its text may quote the URL, password included: never shown
  return o;
}

std::string option(const Options& o, std::string_view name) {
  if (!o) return {};
  for (const PQconninfoOption* p = o.get(); p->keyword != nullptr; ++p)
    if (name == p->keyword && p->val != nullptr) return p->val;
  return {};
}

// The password as written in a URL's user info (percent-encoded or not): a message that
// quotes a piece of the URL must not show it either.
std::string raw_url_password(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  url.remove_prefix(scheme + 3);
  const auto end_of_authority = url.find_first_of("/?");
  const auto authority = url.substr(0, end_of_authority);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return {};
  const auto user_info = authority.substr(0, at);
  const auto colon = user_info.find(':');
  if (colon == std::string_view::npos) return {};
  return std::string(user_info.substr(colon + 1));
}

std::string where_from(std::string_view user, std::string_view host, std::string_view port,
                       std::string_view db) {
  std::string out;
  if (!user.empty()) out += std::string(user) + "@";
  out += host.empty() ? "(default host)" : std::string(host);
  if (!port.empty()) out += ":" + std::string(port);
  if (!db.empty()) out += "/" + std::string(db);
  return out;
}

}  // namespace

std::string scrub(std::string message, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (auto at = message.find(secret); at != std::string::npos;
         at = message.find(secret, at + 3))
      message.replace(at, secret.size(), "***");
  }
  return message;
}

std::string describe_target(const PgTarget& target) {
  auto o = parse_options(target.url);
  if (!o) return "(a URL libpq cannot read)";
  return where_from(option(o, "user"), option(o, "host"), option(o, "port"),
                    option(o, "dbname"));
}

// ---- Rows ------------------------------------------------------------------------------------

void Rows::Clear::operator()(pg_result* r) const { PQclear(r); }

int Rows::size() const { return result_ ? PQntuples(result_.get()) : 0; }

bool Rows::is_null(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}

std::string Rows::text(int row, int column) const {
  return std::string(PQgetvalue(result_.get(), row, column),
                     static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

std::optional<std::string> Rows::optional_text(int row, int column) const {
  if (is_null(row, column)) return std::nullopt;
  return text(row, column);
}

std::int64_t Rows::int64(int row, int column) const {
  const char* v = PQgetvalue(result_.get(), row, column);
  const auto len = static_cast<std::size_t>(PQgetlength(result_.get(), row, column));
  std::int64_t out = 0;
  std::from_chars(v, v + len, out);
  return out;
}

std::optional<std::int64_t> Rows::optional_int64(int row, int column) const {
  if (is_null(row, column)) return std::nullopt;
  return int64(row, column);
}

bool Rows::boolean(int row, int column) const {
  const char* v = PQgetvalue(result_.get(), row, column);
  return v != nullptr && v[0] == 't';
}

std::int64_t Rows::affected() const {
  if (!result_) return 0;
  const char* n = PQcmdTuples(result_.get());
  std::int64_t out = 0;
  if (n != nullptr) std::from_chars(n, n + std::char_traits<char>::length(n), out);
  return out;
}

std::string Rows::command() const { return result_ ? PQcmdStatus(result_.get()) : ""; }

// ---- Connection ------------------------------------------------------------------------------

void Connection::Finish::operator()(pg_conn* c) const { PQfinish(c); }

Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

Result<Connection> Connection::connect(const PgTarget& target, std::string_view application_name) {
  Connection c;
  auto options = parse_options(target.url);
  c.secrets_ = {target.password, option(options, "password"), raw_url_password(target.url)};
  if (!options)
    return make_error(ErrorKind::invalid,
                      "PostgreSQL URL is not one libpq can read (expected "
                      "postgresql://[user@][host][:port][/dbname][?param=value…])");
  c.where_ = describe_target(target);

  // Keywords before dbname are defaults the URL may override; the password after it wins.
  const std::string app(application_name);
  std::vector<const char*> keys, values;
  if (std::getenv("PGCONNECT_TIMEOUT") == nullptr) {
    keys.push_back("connect_timeout");
    values.push_back("10");
  }
  // A host cut off from the server learns it within seconds, not at the kernel's TCP timeout
  // (minutes): a lease renewal must fail while the lease still runs (pg_lease.hpp).
  for (const auto& [k, v] : {std::pair{"keepalives_idle", "5"}, std::pair{"keepalives_interval", "2"},
                             std::pair{"keepalives_count", "3"},
                             std::pair{"tcp_user_timeout", "10000"}}) {
    keys.push_back(k);
    values.push_back(v);
  }
  keys.push_back("application_name");
  values.push_back(app.c_str());
  keys.push_back("client_encoding");
  values.push_back("UTF8");
  keys.push_back("dbname");
  values.push_back(target.url.c_str());
  if (!target.password.empty()) {
    keys.push_back("password");
    values.push_back(target.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  c.conn_.reset(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  if (!c.conn_) return make_error(ErrorKind::io, "PostgreSQL: out of memory connecting");
  if (PQstatus(c.conn_.get()) != CONNECTION_OK)
    return make_error(ErrorKind::unavailable,
                      "cannot connect to PostgreSQL at " + c.where_ + ": " +
                          scrub(trimmed(PQerrorMessage(c.conn_.get())), c.secrets_));
  c.where_ = where_from(PQuser(c.conn_.get()), PQhost(c.conn_.get()), PQport(c.conn_.get()),
                        PQdb(c.conn_.get()));
  if (target.idle_in_transaction_limit.count() > 0)
    if (auto r = c.set_session("SET idle_in_transaction_session_timeout = " +
                               std::to_string(target.idle_in_transaction_limit.count()));
        !r)
      return r.error();
  return c;
}

Error Connection::error_of(pg_result* r, std::string_view what) const {
  std::string message;
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary = r != nullptr ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (primary != nullptr) {
    message = primary;
    if (const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL); detail != nullptr)
      message += std::string(" (") + detail + ")";
  } else {
    message = trimmed(PQerrorMessage(conn_.get()));
  }
  if (message.empty()) message = "unknown error";
  message = scrub(std::move(message), secrets_);
  const std::string_view code = state != nullptr ? state : "";
  ErrorKind kind = ErrorKind::io;
  if (PQstatus(conn_.get()) != CONNECTION_OK || code.starts_with("08")) {
    kind = ErrorKind::unavailable;
    message = "connection to PostgreSQL at " + where_ + " lost: " + message;
  }
  if (!what.empty()) message = std::string(what) + ": " + message;
  return make_error(kind, std::move(message));
}

Result<void> Connection::ensure_open() {
  if (!conn_) return make_error(ErrorKind::internal, "PostgreSQL: no connection");
  if (PQstatus(conn_.get()) == CONNECTION_OK) return {};
  // A transaction the server lost is rolled back there; its owner learns it from the error of
  // its next statement, and only a fresh start (no transaction) reconnects.
  prepared_.clear();
  PQreset(conn_.get());
  if (PQstatus(conn_.get()) == CONNECTION_OK) {
    for (const auto& sql : session_)
      if (auto r = run(sql); !r) return r.error();
    return {};
  }
  return make_error(ErrorKind::unavailable,
                    "cannot reconnect to PostgreSQL at " + where_ + ": " +
                        scrub(trimmed(PQerrorMessage(conn_.get())), secrets_));
}

// A broken connection is an error here, never re-established behind the caller's back: the
// statement might otherwise run outside the transaction its caller believes open.
Result<void> Connection::usable() const {
  if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return {};
  return make_error(ErrorKind::unavailable,
                    "connection to PostgreSQL at " + where_ + " lost: " +
                        (conn_ ? scrub(trimmed(PQerrorMessage(conn_.get())), secrets_)
                               : std::string("not connected")));
}

Result<Rows> Connection::exec(std::string_view sql, const Params& params) {
  if (auto r = usable(); !r) return r.error();
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    if (prepared_.size() >= kMaxPrepared && !in_transaction()) {
      Rows gone(PQexec(conn_.get(), "DEALLOCATE ALL"));
      prepared_.clear();
    }
    std::string name = "personad_" + std::to_string(++next_statement_);
    const std::string text(sql);
    Rows prepared(PQprepare(conn_.get(), name.c_str(), text.c_str(), 0, nullptr));
    if (!prepared.result_ || PQresultStatus(prepared.result_.get()) != PGRES_COMMAND_OK)
      return error_of(prepared.result_.get(), {});
    it = prepared_.emplace(text, std::move(name)).first;
  }
  std::vector<const char*> values;
  values.reserve(params.values().size());
  for (const auto& v : params.values()) values.push_back(v ? v->c_str() : nullptr);
  Rows rows(PQexecPrepared(conn_.get(), it->second.c_str(), static_cast<int>(values.size()),
                           values.data(), nullptr, nullptr, 0));
  const auto status = rows.result_ ? PQresultStatus(rows.result_.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
  return error_of(rows.result_.get(), {});
}

Result<Rows> Connection::run(const std::string& sql) {
  if (auto r = usable(); !r) return r.error();
  Rows rows(PQexec(conn_.get(), sql.c_str()));
  const auto status = rows.result_ ? PQresultStatus(rows.result_.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
  return error_of(rows.result_.get(), {});
}

Result<void> Connection::set_session(std::string sql) {
  if (auto r = run(sql); !r) return r.error();
  session_.push_back(std::move(sql));
  return {};
}

bool Connection::in_transaction() const {
  if (!conn_) return false;
  const auto s = PQtransactionStatus(conn_.get());
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

// ---- Transactions ----------------------------------------------------------------------------

Result<Transaction> Transaction::begin(Connection& c, std::string_view mode) {
  if (c.in_transaction()) return Transaction(c, false);
  if (auto r = c.ensure_open(); !r) return r.error();  // no transaction: safe to reconnect
  std::string sql = "BEGIN";
  if (!mode.empty()) sql += " " + std::string(mode);
  if (auto r = c.run(sql); !r) return r.error();
  return Transaction(c, true);
}

Transaction::Transaction(Transaction&& other) noexcept
    : c_(other.c_), owns_(other.owns_), open_(other.open_) {
  other.open_ = false;
}

Transaction::~Transaction() {
  if (open_ && owns_ && c_->in_transaction()) (void)c_->run("ROLLBACK");
}

Result<void> Transaction::commit() {
  open_ = false;
  if (!owns_) return {};
  // A connection that broke holds no transaction any more: the server rolled it back.
  if (!c_->in_transaction())
    return make_error(ErrorKind::unavailable, "connection lost before COMMIT; nothing written");
  auto r = c_->run("COMMIT");
  if (!r) {
    if (c_->in_transaction()) (void)c_->run("ROLLBACK");
    return r.error();
  }
  // COMMIT of a transaction that had failed answers ROLLBACK, not an error.
  if (r->command() != "COMMIT")
    return make_error(ErrorKind::io, "the transaction had failed and was rolled back");
  return {};
}

Result<Savepoint> Savepoint::begin(Connection& c) {
  if (auto r = c.run("SAVEPOINT personad_write"); !r) return r.error();
  return Savepoint(c);
}

Savepoint::Savepoint(Savepoint&& other) noexcept : c_(other.c_), open_(other.open_) {
  other.open_ = false;
}

Savepoint::~Savepoint() {
  if (open_ && c_->in_transaction())
    (void)c_->run("ROLLBACK TO SAVEPOINT personad_write; RELEASE SAVEPOINT personad_write");
}

Result<void> Savepoint::release() {
  open_ = false;
  auto r = c_->run("RELEASE SAVEPOINT personad_write");
  if (!r && c_->in_transaction())
    (void)c_->run("ROLLBACK TO SAVEPOINT personad_write; RELEASE SAVEPOINT personad_write");
  return r ? Result<void>() : Result<void>(r.error());
}

// ---- The lease's fence -----------------------------------------------------------------------

Result<void> check_lease(Connection& c, const PgFence& fence, std::string_view what) {
  auto held = c.exec(
      "SELECT 1 FROM personad_lease WHERE id = 1 AND holder = $1 AND epoch = $2 "
      "AND expires_at > clock_timestamp() FOR SHARE",
      Params().add(fence.holder).add(fence.epoch));
  if (!held)
    return make_error(held.kind() == ErrorKind::internal ? ErrorKind::io : held.kind(),
                      "store: " + std::string(what) + " (check the lease): " + held.message());
  if (!held->empty()) return {};
  std::string now = "unreadable";
  if (auto lease = c.exec("SELECT holder, epoch, expires_at <= clock_timestamp() "
                          "FROM personad_lease WHERE id = 1");
      lease && !lease->empty()) {
    now = "'" + lease->text(0, 0) + "' epoch " + lease->text(0, 1) +
          (lease->boolean(0, 2) ? ", expired" : "");
  }
  // Appended piece by piece: GCC 12 misreads one long concatenation that starts from a
  // temporary (-Warray-bounds, a false positive at -O2).
  std::string message(kLeaseLost);
  message += " (";
  message += what;
  message += ": this host held it as '" + fence.holder + "' epoch " +
             std::to_string(fence.epoch) + "; the lease is now " + now +
             "): this host is no longer the active one; nothing written";
  return make_error(ErrorKind::conflict, std::move(message));
}

Result<int> require_schema(Connection& c, int latest) {
  auto found = c.exec("SELECT to_regclass('personad_schema') IS NOT NULL");
  if (!found) return make_error(ErrorKind::io, "read the schema version: " + found.message());
  int v = 0;
  if (found->boolean(0, 0)) {
    auto rows = c.exec("SELECT version FROM personad_schema WHERE id = 1");
    if (!rows) return make_error(ErrorKind::io, "read the schema version: " + rows.message());
    v = rows->empty() ? 0 : static_cast<int>(rows->int64(0, 0));
  }
  if (v == 0)
    return make_error(ErrorKind::invalid, "database " + c.describe() +
                                              " has no personad schema yet (personad creates it)");
  if (v > latest)
    return make_error(ErrorKind::invalid,
                      "database " + c.describe() + " has schema version " + std::to_string(v) +
                          ", this personad knows up to " + std::to_string(latest) +
                          ": upgrade personad");
  return v;
}

Result<Connection> connect_to_schema(const PgTarget& target, std::string_view application_name,
                                     int latest) {
  auto c = Connection::connect(target, application_name);
  if (!c) return c.error();
  if (auto v = require_schema(*c, latest); !v) return v.error();
  return c;
}

}  // namespace personad::pg
