// The RAII layer over SQLite3: connection, prepared statements and transactions, every return
// code checked and reported with sqlite3_errmsg.
#include "personad/sqlite.hpp"

#include <sqlite3.h>

#include <utility>

namespace personad::sqlite {

// ---- Statement -------------------------------------------------------------------------------

Statement::~Statement() {
  // sqlite3_finalize repeats the last step's error, which was already reported.
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement::Statement(Statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_rc_(std::exchange(other.bind_rc_, SQLITE_OK)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    if (stmt_ != nullptr) sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_rc_ = std::exchange(other.bind_rc_, SQLITE_OK);
  }
  return *this;
}

void Statement::remember(int rc) {
  if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Statement& Statement::bind(int index, std::int64_t value) {
  remember(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  // SQLITE_TRANSIENT: SQLite copies the bytes, so the caller's buffer may go away before step.
  remember(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8));
  return *this;
}

Statement& Statement::bind(int index, const std::optional<std::string>& value) {
  return value ? bind(index, std::string_view(*value)) : bind_null(index);
}

Statement& Statement::bind(int index, const std::optional<std::int64_t>& value) {
  return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind_null(int index) {
  remember(sqlite3_bind_null(stmt_, index));
  return *this;
}

Error Statement::error(int rc) const {
  // The connection's message is the detailed one ("UNIQUE constraint failed: jobs.key").
  if (db_ != nullptr && sqlite3_errcode(db_) != SQLITE_OK) return make_error(sqlite3_errmsg(db_));
  return make_error(sqlite3_errstr(rc));
}

Result<bool> Statement::step() {
  if (bind_rc_ != SQLITE_OK)
    return make_error(std::string("binding a parameter: ") + sqlite3_errstr(bind_rc_));
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return error(rc);
}

Result<void> Statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return row.error();
    if (!*row) return {};
  }
}

void Statement::reset() {
  if (stmt_ == nullptr) return;
  // sqlite3_reset returns the error of the last step, which the caller has already seen.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = SQLITE_OK;
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t Statement::int64(int column) const { return sqlite3_column_int64(stmt_, column); }

std::string Statement::text(int column) const {
  // Fetch the text before its length: sqlite3_column_bytes then reports the converted size.
  const auto* p = sqlite3_column_text(stmt_, column);
  if (p == nullptr) return {};
  const auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::optional<std::int64_t> Statement::optional_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return int64(column);
}

std::optional<std::string> Statement::optional_text(int column) const {
  if (is_null(column)) return std::nullopt;
  return text(column);
}

// ---- Db --------------------------------------------------------------------------------------

void Db::Close::operator()(sqlite3* db) const {
  // _v2: a statement someone forgot would keep the connection alive rather than leak it.
  sqlite3_close_v2(db);
}

namespace {

// SQLite's memory statistics (sqlite3_memory_used and the like, which personad never reads) take
// a process-wide mutex around every allocation SQLite makes. Turned off once, before the first
// connection: the call is refused (and harmless) once the library is initialised.
void configure_library_once() {
  static const bool done = [] {
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)done;
}

}  // namespace

Result<Db> Db::open(const std::string& path, int flags) {
  configure_library_once();
  sqlite3* raw = nullptr;
  // NOMUTEX: a connection is only ever used by one thread at a time (its owner: a store lane,
  // or the thread that opened it), so SQLite's lock around every call on it is pure cost.
  if ((flags & SQLITE_OPEN_FULLMUTEX) == 0) flags |= SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db;
  db.db_.reset(raw);  // SQLite allocates a handle even when the open fails: it must be closed.
  if (rc != SQLITE_OK) return make_error(raw != nullptr ? db.errmsg() : sqlite3_errstr(rc));
  // Extended codes: SQLITE_BUSY_SNAPSHOT, SQLITE_IOERR_FSYNC, … say more in a report.
  if (sqlite3_extended_result_codes(raw, 1) != SQLITE_OK) return make_error(db.errmsg());
  return db;
}

Result<Statement> Db::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  // PERSISTENT: these statements live as long as the connection, which SQLite can plan for.
  const int rc = sqlite3_prepare_v3(handle(), sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return make_error(errmsg());
  }
  if (stmt == nullptr) return make_error("no SQL statement in \"" + std::string(sql) + "\"");
  return Statement(handle(), stmt);
}

Result<void> Db::exec(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(handle(), sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return make_error(std::move(text));
}

Result<std::string> Db::query_text(const std::string& sql) {
  auto stmt = prepare(sql);
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  return *row ? stmt->text(0) : std::string();
}

Result<std::int64_t> Db::query_int64(const std::string& sql) {
  auto stmt = prepare(sql);
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  return *row ? stmt->int64(0) : std::int64_t{0};
}

std::string Db::errmsg() const { return sqlite3_errmsg(handle()); }

int Db::extended_errcode() const { return sqlite3_extended_errcode(handle()); }

std::int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(handle()); }

std::int64_t Db::changes() const { return sqlite3_changes64(handle()); }

std::int64_t Db::total_changes() const { return sqlite3_total_changes64(handle()); }

bool Db::in_transaction() const { return sqlite3_get_autocommit(handle()) == 0; }

// ---- Transaction -----------------------------------------------------------------------------

Result<Transaction> Transaction::begin(Db& db, Statement& begin, Statement& commit,
                                       Statement& rollback) {
  ResetOnExit reset(begin);
  if (auto r = begin.run(); !r) return r.error();
  return Transaction(db, &commit, &rollback);
}

Transaction Transaction::member(Db& db, std::string& broken_by, std::string_view what) {
  Transaction t(db, nullptr, nullptr);
  t.broken_by_ = &broken_by;
  t.what_ = what;
  t.changes_at_start_ = db.total_changes();
  return t;
}

Transaction::Transaction(Transaction&& other) noexcept
    : db_(other.db_),
      commit_(other.commit_),
      rollback_(other.rollback_),
      broken_by_(other.broken_by_),
      what_(other.what_),
      changes_at_start_(other.changes_at_start_),
      open_(std::exchange(other.open_, false)) {}

Transaction::~Transaction() {
  if (!open_) return;
  if (broken_by_ != nullptr) {
    const bool changed = db_->total_changes() != changes_at_start_ || !db_->in_transaction();
    if (changed && broken_by_->empty()) *broken_by_ = std::string(what_);
    return;
  }
  // Some errors (SQLITE_FULL, SQLITE_IOERR, …) have already rolled back on their own; a
  // ROLLBACK then would only fail. If the ROLLBACK itself fails there is nothing more to do here:
  // the next BEGIN reports the stuck transaction, and closing the connection rolls it back.
  if (!db_->in_transaction()) return;
  ResetOnExit reset(*rollback_);
  (void)rollback_->run();
}

Result<void> Transaction::commit() {
  if (commit_ == nullptr) {  // a member: its transaction commits it
    open_ = false;
    return {};
  }
  ResetOnExit reset(*commit_);
  if (auto r = commit_->run(); !r) return r.error();  // still open: the destructor rolls back
  open_ = false;
  return {};
}

}  // namespace personad::sqlite
