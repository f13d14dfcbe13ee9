// The SQLite layer (sqlite.hpp): how a connection is opened, and its transactions: what is
// rolled back, and when a member of a group breaks it.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "personad/sqlite.hpp"

namespace personad::sqlite {
namespace {

class SqliteTransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Db::open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(opened) << opened.message();
    db_ = std::move(*opened);
    ASSERT_TRUE(db_.exec("CREATE TABLE t (v INTEGER)"));
    for (auto [s, sql] : {std::pair{&begin_, "BEGIN"}, {&commit_, "COMMIT"}, {&rollback_, "ROLLBACK"},
                          {&insert_, "INSERT INTO t VALUES (1)"}}) {
      auto p = db_.prepare(sql);
      ASSERT_TRUE(p) << sql << ": " << p.message();
      *s = std::move(*p);
    }
  }
  std::int64_t rows() { return *db_.query_int64("SELECT count(*) FROM t"); }
  Result<void> run(Statement& s) {
    ResetOnExit reset(s);
    return s.run();
  }

  Db db_;  // before the statements: they are finalized first
  Statement begin_, commit_, rollback_, insert_;
};

// A connection is used by one thread at a time (its store lane's), so it is opened without
// SQLite's per-connection lock (SQLITE_OPEN_NOMUTEX: no mutex to return), unless the caller
// asks for one.
TEST_F(SqliteTransactionTest, AConnectionHasNoLockOfItsOwnUnlessAskedFor) {
  EXPECT_EQ(sqlite3_db_mutex(db_.handle()), nullptr);
  auto serialized =
      Db::open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX);
  ASSERT_TRUE(serialized) << serialized.message();
  EXPECT_NE(sqlite3_db_mutex(serialized->handle()), nullptr);
}

// A member of a transaction the owner holds open: committed or failed before any change, it
// leaves the transaction as it was; dropped after a change, it names itself as the breaker.
TEST_F(SqliteTransactionTest, AMemberThatFailsAfterAChangeBreaksItsTransaction) {
  auto tx = Transaction::begin(db_, begin_, commit_, rollback_);
  ASSERT_TRUE(tx);
  std::string broken_by;
  {
    auto m = Transaction::member(db_, broken_by, "first");
    ASSERT_TRUE(run(insert_));
    ASSERT_TRUE(m.commit());
  }
  { auto m = Transaction::member(db_, broken_by, "refused before any change"); }
  EXPECT_EQ(broken_by, "");
  {
    auto m = Transaction::member(db_, broken_by, "half-way");
    ASSERT_TRUE(run(insert_));
  }
  EXPECT_EQ(broken_by, "half-way");
  {
    auto m = Transaction::member(db_, broken_by, "later");
    ASSERT_TRUE(run(insert_));
  }
  EXPECT_EQ(broken_by, "half-way");  // the first breaker is the one named
  // A member issues no statement: the transaction is the owner's to end.
  EXPECT_TRUE(db_.in_transaction());
  EXPECT_EQ(rows(), 3);
}

TEST_F(SqliteTransactionTest, ATransactionNotCommittedIsRolledBack) {
  {
    auto tx = Transaction::begin(db_, begin_, commit_, rollback_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(run(insert_));
  }
  EXPECT_FALSE(db_.in_transaction());
  EXPECT_EQ(rows(), 0);
}

}  // namespace
}  // namespace personad::sqlite
