// A PostgreSQL database of its own for one test, on the server the PG* environment names
// (scripts/test.sh runs CTest under pg_virtualenv, which starts a throw-away cluster and exports
// PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE). Created with a unique name, dropped when
// the test ends, so tests run in parallel. Usable from the unit and the integration tests.
//
//   auto db = personad::testing::PgTestDb::create();
//   if (!db) PERSONAD_PG_UNAVAILABLE(db.message());   // skips (or fails: PERSONAD_REQUIRE_PG)
//   auto store = open_pg_store((*db)->target(), OpenMode::read_write);
//   config << "[store]\nurl = \"" << (*db)->url() << "\"\n";  // the password: PGPASSWORD
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "personad/pg_connection.hpp"
#include "personad/pg_store.hpp"
#include "personad/result.hpp"

namespace personad::testing {

// True when a test must fail rather than skip without PostgreSQL: scripts/test.sh sets
// PERSONAD_REQUIRE_PG=1 when it runs the suite under pg_virtualenv, so CI never passes by
// skipping.
inline bool pg_required() {
  const char* v = std::getenv("PERSONAD_REQUIRE_PG");
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

// Skips the current test (or fails it, see pg_required) saying why PostgreSQL is unavailable.
// In a TEST body or a fixture's SetUp().
#define PERSONAD_PG_UNAVAILABLE(why)                                       \
  do {                                                                     \
    if (::personad::testing::pg_required()) FAIL() << (why);               \
    GTEST_SKIP() << (why);                                                 \
  } while (false)

class PgTestDb {
 public:
  // A fresh, empty database. Fails (with a message for the skip) when no server answers.
  static Result<std::unique_ptr<PgTestDb>> create() {
    auto admin = pg::Connection::connect(admin_target(), "personad-tests");
    if (!admin)
      return make_error(ErrorKind::unavailable,
                        "PostgreSQL not reachable (" + admin.message() +
                            "): run under pg_virtualenv (scripts/test.sh does)");
    std::unique_ptr<PgTestDb> db(new PgTestDb);
    db->name_ = unique_name();
    // Identifiers take no parameters; the name is ours ([a-z0-9_]), never outside input.
    if (auto r = admin->run("CREATE DATABASE " + db->name_); !r)
      return make_error(ErrorKind::io, "create test database: " + r.message());
    db->created_ = true;
    db->target_.url = url_of(*admin, db->name_);
    return db;
  }

  ~PgTestDb() {
    if (!created_) return;
    // FORCE: a store a failed test left open must not keep the database alive.
    if (auto admin = pg::Connection::connect(admin_target(), "personad-tests"))
      (void)admin->run("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  }
  PgTestDb(const PgTestDb&) = delete;
  PgTestDb& operator=(const PgTestDb&) = delete;

  // postgresql://user@host:port/dbname: for open_pg_store, and for a config file's
  // `[store] url` (the password comes from PGPASSWORD, which pg_virtualenv exports).
  const PgTarget& target() const { return target_; }
  const std::string& url() const { return target_.url; }
  const std::string& name() const { return name_; }

  // A connection of its own, for looking (or writing) behind the store's back.
  Result<pg::Connection> connect() const {
    return pg::Connection::connect(target_, "personad-tests");
  }
  // The first column of the first row of `sql` as text: "<null>", "<none>" or "<error: …>".
  std::string query(const std::string& sql) const {
    auto c = connect();
    if (!c) return "<error: " + c.message() + ">";
    auto rows = c->run(sql);
    if (!rows) return "<error: " + rows.message() + ">";
    if (rows->empty()) return "<none>";
    return rows->is_null(0, 0) ? "<null>" : rows->text(0, 0);
  }
  // Runs SQL (several statements allowed); the error's message, or empty.
  std::string exec(const std::string& sql) const {
    auto c = connect();
    if (!c) return c.message();
    auto r = c->run(sql);
    return r ? std::string() : r.message();
  }

 private:
  PgTestDb() = default;

  // The maintenance database of the server the environment names.
  static PgTarget admin_target() { return PgTarget{"postgresql:///postgres", ""}; }

  static std::string unique_name() {
    std::random_device random;
    const std::uint64_t r = (std::uint64_t{random()} << 32) | random();
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
    return "personad_test_" + std::to_string(::getpid()) + "_" + buf;
  }

  static std::string percent_encoded(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
        out += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        out += buf;
      }
    }
    return out;
  }

  // Where the admin connection went (host or socket directory, port, user), to `dbname`.
  static std::string url_of(const pg::Connection& admin, const std::string& dbname) {
    const std::string user = PQuser(admin.handle());
    const std::string host = PQhost(admin.handle());
    const std::string port = PQport(admin.handle());
    return "postgresql://" + percent_encoded(user) + "@" + percent_encoded(host) +
           (port.empty() ? "" : ":" + port) + "/" + dbname;
  }

  std::string name_;
  bool created_ = false;
  PgTarget target_;
};

}  // namespace personad::testing
