// Tests of url.hpp's PostgreSQL URI checks ([store] url); the HTTP URL parser is tested through
// config_test and batch_test, where its messages reach the operator.
#include "personad/url.hpp"

#include <gtest/gtest.h>

namespace personad {
namespace {

TEST(PgUrl, NamesPostgresqlSchemesOnly) {
  EXPECT_TRUE(is_pg_url("postgresql://"));
  EXPECT_TRUE(is_pg_url("postgres://db.example/personad"));
  EXPECT_FALSE(is_pg_url("postgresql:/db"));
  EXPECT_FALSE(is_pg_url("https://db.example"));
  EXPECT_FALSE(is_pg_url("/var/lib/personad/personad.db"));
}

TEST(PgUrl, FindsAPasswordInTheUserInformationOrTheQuery) {
  EXPECT_TRUE(pg_url_has_password("postgresql://personad:secret@db/personad"));
  EXPECT_TRUE(pg_url_has_password("postgresql://:secret@db"));
  EXPECT_TRUE(pg_url_has_password("postgresql://db/personad?password=secret"));
  EXPECT_TRUE(pg_url_has_password("postgresql://db/personad?sslmode=require&password=x"));
  EXPECT_FALSE(pg_url_has_password("postgresql://personad@db:5432/personad"));
  EXPECT_FALSE(pg_url_has_password("postgresql://db1:5432,db2:5433/personad"));
  EXPECT_FALSE(pg_url_has_password("postgresql://"));
  EXPECT_FALSE(pg_url_has_password("postgresql://db/p?passfile=/etc/personad/pgpass"));
}

}  // namespace
}  // namespace personad
