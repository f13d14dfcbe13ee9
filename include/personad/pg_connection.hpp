// A thin RAII layer over libpq for the PostgreSQL store, lease and action queue: one connection,
// statements sent with text parameters (never values spliced into SQL) and prepared once per
// connection, results as Rows, every failure a Result whose message never holds the password.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "personad/result.hpp"

struct pg_conn;
struct pg_result;

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

// How every error of a fenced write that found the lease lost begins (its kind is
// ErrorKind::conflict, like a row that changed meanwhile; this tells the two apart).
inline constexpr std::string_view kLeaseLost = "store: lease lost";
}  // namespace personad

namespace personad::pg {

// The parameters of one statement, in order ($1, $2, …), as text; nullopt is SQL NULL.
class Params {
 public:
  Params& add(std::string_view v) { values_.emplace_back(std::string(v)); return *this; }
  Params& add(const char* v) { return add(std::string_view(v)); }
  Params& add(const std::string& v) { return add(std::string_view(v)); }
  Params& add(std::int64_t v) { values_.emplace_back(std::to_string(v)); return *this; }
  Params& add(int v) { return add(static_cast<std::int64_t>(v)); }
  Params& add(bool v) { values_.emplace_back(v ? "true" : "false"); return *this; }
  Params& add(const std::optional<std::string>& v) { values_.push_back(v); return *this; }
  Params& add(const std::optional<std::int64_t>& v) {
    if (v) return add(*v);
    return null();
  }
  Params& null() { values_.emplace_back(std::nullopt); return *this; }

  const std::vector<std::optional<std::string>>& values() const { return values_; }

 private:
  std::vector<std::optional<std::string>> values_;
};

// The rows a statement returned (text format). Columns and rows are numbered from 0.
class Rows {
 public:
  Rows() = default;
  int size() const;
  bool empty() const { return size() == 0; }
  bool is_null(int row, int column) const;
  std::string text(int row, int column) const;  // NULL reads as ""
  std::optional<std::string> optional_text(int row, int column) const;
  std::int64_t int64(int row, int column) const;  // NULL or not a number reads as 0
  std::optional<std::int64_t> optional_int64(int row, int column) const;
  bool boolean(int row, int column) const;  // 't'
  // Rows an INSERT, UPDATE or DELETE touched (its command tag), 0 for others.
  std::int64_t affected() const;
  // The command tag: "COMMIT", "ROLLBACK", "UPDATE 3", …
  std::string command() const;

 private:
  friend class Connection;
  struct Clear {
    void operator()(pg_result* r) const;
  };
  explicit Rows(pg_result* r) : result_(r) {}
  std::unique_ptr<pg_result, Clear> result_;
};

// One connection. Not for concurrent use: each owner (store, lease, action queue) has its own.
class Connection {
 public:
  // Connects to `target` (libpq's own defaults and PG* variables fill what the URL leaves
  // out). `application_name` shows in pg_stat_activity. A failure names the server (user, host,
  // port, database), never the password.
  static Result<Connection> connect(const PgTarget& target, std::string_view application_name);

  Connection() = default;
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  // One statement with parameters, prepared on first use and kept (a connection that was
  // re-established prepares again). Errors are ErrorKind::io, or ErrorKind::unavailable when
  // the connection is gone (never re-established here: see ensure_open).
  Result<Rows> exec(std::string_view sql, const Params& params = {});
  // SQL text without values, possibly several statements (migrations, BEGIN, SET …).
  Result<Rows> run(const std::string& sql);

  // Runs `sql` (a SET …) now and again after every reconnection: the session's settings.
  Result<void> set_session(std::string sql);

  // True inside a transaction block (BEGIN … COMMIT), also one that failed.
  bool in_transaction() const;
  // Re-establishes a connection that broke (the server restarted, a network cut), when no
  // transaction was open on it; a no-op when it is fine.
  Result<void> ensure_open();
  // "user@host:port/dbname": where this connection goes, for messages.
  const std::string& describe() const { return where_; }
  pg_conn* handle() const { return conn_.get(); }

 private:
  struct Finish {
    void operator()(pg_conn* c) const;
  };
  Error error_of(pg_result* r, std::string_view what) const;
  Result<void> usable() const;

  std::unique_ptr<pg_conn, Finish> conn_;
  std::string where_;
  std::vector<std::string> secrets_;  // scrubbed from every message
  std::vector<std::string> session_;  // set_session's statements
  std::map<std::string, std::string, std::less<>> prepared_;  // SQL → statement name
  std::uint64_t next_statement_ = 0;
};

// `message` with every occurrence of each non-empty secret replaced by "***".
std::string scrub(std::string message, const std::vector<std::string>& secrets);

// Where `target` points, without the password: "user@host:port/dbname" (parts the URL leaves
// to libpq's defaults are left out).
std::string describe_target(const PgTarget& target);

// Runs `f` in a transaction unless one is already open (then `f` joins it): reads that need
// one snapshot, and the store's writes inside a group.
class Transaction {
 public:
  // BEGIN with `mode` (e.g. "ISOLATION LEVEL REPEATABLE READ READ ONLY"); joins an open one.
  static Result<Transaction> begin(Connection& c, std::string_view mode = {});
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // COMMIT (a no-op when this joined an outer transaction). A COMMIT the server turned into a
  // ROLLBACK (the transaction had failed) is an error.
  Result<void> commit();

 private:
  Transaction(Connection& c, bool owns) : c_(&c), owns_(owns) {}
  Connection* c_;
  bool owns_;
  bool open_ = true;
};

// A savepoint that rolls back unless released: one write inside a group, so that a failing
// statement leaves the group's transaction usable (PostgreSQL aborts the whole transaction
// otherwise).
class Savepoint {
 public:
  static Result<Savepoint> begin(Connection& c);
  ~Savepoint();
  Savepoint(Savepoint&& other) noexcept;
  Savepoint& operator=(Savepoint&&) = delete;
  Savepoint(const Savepoint&) = delete;
  Savepoint& operator=(const Savepoint&) = delete;
  Result<void> release();

 private:
  explicit Savepoint(Connection& c) : c_(&c) {}
  Connection* c_;
  bool open_ = true;
};

// In the open transaction of `c`: the lease row still names `fence`'s holder and epoch and has
// not expired by the database's clock. FOR SHARE holds the row until the transaction ends, so a
// takeover (an UPDATE of that row) waits for this transaction, and every later one of the old
// holder fails here. Lost: ErrorKind::conflict, the message starting with kLeaseLost and
// naming `what`, who holds the lease now and that nothing was written.
Result<void> check_lease(Connection& c, const PgFence& fence, std::string_view what);

// The schema version of the database `c` is connected to, checked: an error when personad's
// schema is not there (no read-write store was opened yet) or is newer than this binary's.
Result<int> require_schema(Connection& c, int latest);

// A connection to a database that already holds personad's schema, no newer than `latest`: what
// the lease and the action queue open beside the store (whose read-write open migrated it).
Result<Connection> connect_to_schema(const PgTarget& target, std::string_view application_name,
                                     int latest);

}  // namespace personad::pg
