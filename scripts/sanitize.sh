#!/usr/bin/env bash
# The whole test suite built with AddressSanitizer and UndefinedBehaviorSanitizer (./build-asan,
# -O1 for a shorter build) and run through CTest; any sanitizer report fails the test that made
# it. scripts/test.sh (the README's test command, run by CI) runs it after the ordinary suite.
# CTest runs under a throw-away PostgreSQL cluster (scripts/with-pg.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$ASAN_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$ASAN_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPERSONAD_SANITIZE=ON -DPERSONAD_BUILD_BENCH=OFF \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
fi
cmake --build "$ASAN_DIR" -j "$JOBS"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
bash scripts/with-pg.sh ctest --test-dir "$ASAN_DIR" --output-on-failure -j "$JOBS" --timeout 900 "$@"
