#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test (unit, simulator,
# integration, fuzz corpora) through CTest; then the same suite built with AddressSanitizer and
# UndefinedBehaviorSanitizer (scripts/sanitize.sh, ./build-asan). PERSONAD_SANITIZE=0 skips
# the second run (a quick local check); CI always runs both. Both run under a throw-away
# PostgreSQL cluster (scripts/with-pg.sh, pg_virtualenv) for the PostgreSQL store's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
bash scripts/with-pg.sh ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600
if [[ "${PERSONAD_SANITIZE:-1}" != 0 || "${CI:-}" == true ]]; then
  bash scripts/sanitize.sh
fi
