#!/usr/bin/env bash
# Runs a command (CTest, by scripts/test.sh and scripts/sanitize.sh) with a throw-away PostgreSQL
# cluster: pg_virtualenv (postgresql-common) creates it, exports PGHOST, PGPORT, PGUSER,
# PGPASSWORD and PGDATABASE to the command, and drops it afterwards, whatever the outcome. The
# PostgreSQL tests create a database of their own on it (tests/support/pg_test_db.hpp).
#   -t: a temporary directory even as root (CI runs as root; the standard locations would clash
#       with a second run at the same time);
#   PGPORT: a free port, since every temporary cluster would otherwise take 5432.
# PERSONAD_REQUIRE_PG=1 makes a PostgreSQL test that finds no server fail instead of skipping:
# where pg_virtualenv exists, the suite cannot pass by not running them. Without pg_virtualenv
# the command runs as it is and those tests skip, saying why.
set -euo pipefail

if ! command -v pg_virtualenv >/dev/null; then
  echo "with-pg: pg_virtualenv not found (apt install postgresql): the PostgreSQL tests skip" >&2
  exec "$@"
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PERSONAD_REQUIRE_PG=1
PGPORT=$port exec pg_virtualenv -t "$@"
