#!/usr/bin/env bash
# Runs the deterministic simulation of personad (tests/simulation): the real tracker and store
# on virtual time against a simulated API with seeded faults, crashes and operator actions.
#   scripts/simulate.sh --seeds 100000          many seeds (exit 1 if any fails)
#   scripts/simulate.sh --seeds 1000 --first 5000
#   scripts/simulate.sh --seed 42 --log         replay one seed with the daemon's log
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ ! -x "$BUILD_DIR/tests/personad-simulate" ]]; then
  bash scripts/build.sh >/dev/null
fi
cmake --build "$BUILD_DIR" --target personad-simulate >/dev/null
exec "$BUILD_DIR/tests/personad-simulate" "$@"
