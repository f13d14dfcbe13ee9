#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test (unit, simulator,
# integration) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600
