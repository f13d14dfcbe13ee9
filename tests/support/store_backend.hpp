// The store's backends for parameterised tests: the same test runs on a fresh SQLite file and
// on a fresh PostgreSQL database (pg_test_db.hpp; skipped without a server).
//
//   class MyTest : public ::testing::TestWithParam<StoreBackendKind> {
//     void SetUp() override {
//       auto b = StoreBackend::make(GetParam());
//       if (!b) PERSONAD_PG_UNAVAILABLE(b.message());
//       backend_ = std::move(*b);
//     }
//   };
//   INSTANTIATE_TEST_SUITE_P(Backends, MyTest, kAllStoreBackends, store_backend_name);
#pragma once

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <string>

#include "personad/pg_store.hpp"
#include "personad/store.hpp"
#include "pg_test_db.hpp"
#include "temp_dir.hpp"

namespace personad::testing {

enum class StoreBackendKind { sqlite, postgresql };

inline const auto kAllStoreBackends =
    ::testing::Values(StoreBackendKind::sqlite, StoreBackendKind::postgresql);

inline std::string store_backend_name(const ::testing::TestParamInfo<StoreBackendKind>& info) {
  return info.param == StoreBackendKind::sqlite ? "sqlite" : "postgresql";
}

class StoreBackend {
 public:
  // A fresh, empty place for a store; an error (the reason to skip) when PostgreSQL is not
  // reachable.
  static Result<std::unique_ptr<StoreBackend>> make(StoreBackendKind kind) {
    std::unique_ptr<StoreBackend> b(new StoreBackend(kind));
    if (kind == StoreBackendKind::postgresql) {
      auto db = PgTestDb::create();
      if (!db) return db.error();
      b->pg_ = std::move(*db);
    } else {
      b->dir_ = std::make_unique<TempDir>("store");
      b->path_ = (b->dir_->path() / "personad.db").string();
    }
    return b;
  }

  StoreBackendKind kind() const { return kind_; }
  bool is_pg() const { return kind_ == StoreBackendKind::postgresql; }

  Result<std::unique_ptr<Store>> open(OpenMode mode) const {
    if (is_pg()) return open_pg_store(pg_->target(), mode);
    return Store::open(path_, mode);
  }
  Result<std::unique_ptr<Store>> open_fenced(OpenMode mode, const PgFence& fence) const {
    return open_pg_store(pg_->target(), mode, fence);
  }

  // The first column of the first row of `sql`, as text, read behind the store's back
  // ("<null>" for NULL): SQL both dialects read alike (counts, sums, plain columns).
  std::string query(const std::string& sql) const {
    if (is_pg()) return pg_->query(sql);
    sqlite3* db = nullptr;
    sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* stmt = nullptr;
    std::string out = "<error>";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(stmt, 0);
      out = text != nullptr ? reinterpret_cast<const char*>(text) : "<null>";
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
  }

  const std::string& sqlite_path() const { return path_; }
  const PgTestDb* pg() const { return pg_.get(); }

 private:
  explicit StoreBackend(StoreBackendKind kind) : kind_(kind) {}
  StoreBackendKind kind_;
  std::unique_ptr<TempDir> dir_;
  std::string path_;
  std::unique_ptr<PgTestDb> pg_;
};

}  // namespace personad::testing
