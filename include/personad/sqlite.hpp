// A thin RAII layer over the SQLite3 C API: a connection, prepared statements and transactions,
// with every return code turned into a Result whose message is sqlite3_errmsg.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "personad/result.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace personad::sqlite {

// A prepared statement, compiled once and reused. Bind errors are remembered and reported by
// the next step(), so a caller binds every parameter and checks a single result.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1, as in SQL (?1, ?2, …).
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view value);  // copied by SQLite (SQLITE_TRANSIENT)
  Statement& bind(int index, const std::optional<std::string>& value);  // empty → NULL
  Statement& bind(int index, const std::optional<std::int64_t>& value);
  Statement& bind_null(int index);

  // true: a row is ready to read; false: the statement has finished.
  Result<bool> step();
  // Steps a statement that returns no rows (INSERT, UPDATE, …).
  Result<void> run();
  // Ready for the next use: clears the bindings too, so no value from one call leaks into the
  // next, and ends the statement's read of the database (a WAL snapshot left open would stop
  // checkpoints and hide later commits).
  void reset();

  // Columns are numbered from 0, as in sqlite3_column_*.
  bool is_null(int column) const;
  std::int64_t int64(int column) const;
  std::string text(int column) const;  // NULL reads as ""
  std::optional<std::int64_t> optional_int64(int column) const;
  std::optional<std::string> optional_text(int column) const;

 private:
  Error error(int rc) const;
  void remember(int rc);

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = 0;  // the first failed bind since the last reset, SQLITE_OK when none
};

// Resets a statement when the scope ends, whichever way it ends.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& s_;
};

// One connection. Closing it finalizes nothing: statements must be destroyed first, which the
// owner guarantees by declaring the Db before its statements.
class Db {
 public:
  // `flags`: SQLITE_OPEN_* flags for sqlite3_open_v2. The connection has no lock of its own
  // (SQLITE_OPEN_NOMUTEX) unless they hold SQLITE_OPEN_FULLMUTEX: one thread uses it at a time.
  static Result<Db> open(const std::string& path, int flags);

  Db() = default;
  Db(Db&&) noexcept = default;
  Db& operator=(Db&&) noexcept = default;

  Result<Statement> prepare(std::string_view sql);
  // Runs SQL text that may hold several statements and no values (migrations, pragmas).
  Result<void> exec(const std::string& sql);
  // The first column of the first row of a one-off query, as text ("" when there is no row).
  Result<std::string> query_text(const std::string& sql);
  Result<std::int64_t> query_int64(const std::string& sql);

  sqlite3* handle() const { return db_.get(); }
  std::string errmsg() const;
  int extended_errcode() const;
  std::int64_t last_insert_rowid() const;
  std::int64_t changes() const;  // rows changed by the last INSERT, UPDATE or DELETE
  // Rows changed by every INSERT, UPDATE or DELETE completed on this connection so far (a
  // failed statement counts none: SQLite has undone it).
  std::int64_t total_changes() const;
  bool in_transaction() const;

 private:
  struct Close {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<sqlite3, Close> db_;
};

// A transaction that rolls back unless committed. BEGIN, COMMIT and ROLLBACK are statements
// prepared once by the owner and passed in, so a transaction compiles no SQL.
class Transaction {
 public:
  static Result<Transaction> begin(Db& db, Statement& begin, Statement& commit,
                                   Statement& rollback);
  // A write inside a transaction the owner holds open (a group of writes), with no statement
  // of its own: a SAVEPOINT would copy every page the write touches into the statement journal
  // and cut it back after every statement (issue 12: a quarter of a grouped write's time, and
  // quadratic in a bulk write's rows). Committed, nothing happens. Dropped uncommitted, the
  // write failed: if it had changed rows by then (or SQLite had rolled the whole transaction
  // back), `broken_by` is set to `what` (if still empty), since half a write cannot be undone
  // alone and the enclosing transaction must not commit. A write that fails before it changes
  // anything (a conflict found by its UPDATE's WHERE clause, a check before the first
  // statement) leaves the transaction as it was.
  static Transaction member(Db& db, std::string& broken_by, std::string_view what);
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  Result<void> commit();

 private:
  Transaction(Db& db, Statement* commit, Statement* rollback) : db_(&db), commit_(commit), rollback_(rollback) {}

  Db* db_;
  Statement* commit_;    // null for a member
  Statement* rollback_;  // null for a member
  std::string* broken_by_ = nullptr;  // a member's
  std::string_view what_;
  std::int64_t changes_at_start_ = 0;
  bool open_ = true;
};

}  // namespace personad::sqlite
