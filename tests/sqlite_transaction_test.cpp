// The SQLite layer's transactions and savepoints (sqlite.hpp): what is rolled back, and what a
// rolled-back savepoint leaves on the stack.
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
                          {&savepoint_, "SAVEPOINT w"}, {&release_, "RELEASE w"},
                          {&rollback_to_, "ROLLBACK TO w"}, {&insert_, "INSERT INTO t VALUES (1)"}}) {
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
  Statement begin_, commit_, rollback_, savepoint_, release_, rollback_to_, insert_;
};

TEST_F(SqliteTransactionTest, ASavepointRolledBackUndoesItsWritesOnlyAndLeavesTheStack) {
  auto tx = Transaction::begin(db_, begin_, commit_, rollback_);
  ASSERT_TRUE(tx);
  ASSERT_TRUE(run(insert_));
  {
    auto sp = Transaction::savepoint(db_, savepoint_, release_, rollback_to_);
    ASSERT_TRUE(sp);
    ASSERT_TRUE(run(insert_));
    EXPECT_EQ(rows(), 2);
  }  // not committed: rolled back
  EXPECT_TRUE(db_.in_transaction());
  EXPECT_EQ(rows(), 1);
  // Released too: ROLLBACK TO alone leaves it open, and the next savepoint would nest in it.
  auto again = run(release_);
  ASSERT_FALSE(again);
  EXPECT_NE(again.message().find("no such savepoint"), std::string::npos) << again.message();

  {
    auto sp = Transaction::savepoint(db_, savepoint_, release_, rollback_to_);
    ASSERT_TRUE(sp);
    ASSERT_TRUE(run(insert_));
    ASSERT_TRUE(sp->commit());
  }
  ASSERT_TRUE(tx->commit());
  EXPECT_FALSE(db_.in_transaction());
  EXPECT_EQ(rows(), 2);
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
