#!/usr/bin/env bash
# Builds the benchmark programs (Release, into build-bench/) and runs them all; each prints its
# own table. Arguments (e.g. --quick) go to every benchmark. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-bench}
JOBS=${JOBS:-2}
# Scratch databases go on the disk the repository lives on, not /tmp (often tmpfs, where fsync
# costs nothing and the durability figures would mean nothing).
SCRATCH=${BENCH_DIR:-$BUILD_DIR/scratch}

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$BUILD_DIR" -j "$JOBS" \
  --target bench_store bench_scheduler bench_daemon bench_http bench_select bench_policy
mkdir -p "$SCRATCH"

compare=()
[[ -d /dev/shm ]] && compare=(--compare-dir /dev/shm)

run() {
  echo
  echo "################ $* ################"
  "$@"
}
run "$BUILD_DIR/bench/bench_store" --dir "$SCRATCH" "$@"
run "$BUILD_DIR/bench/bench_scheduler" "$@"
run "$BUILD_DIR/bench/bench_daemon" --dir "$SCRATCH" "${compare[@]}" "$@"
run "$BUILD_DIR/bench/bench_http" --dir "$SCRATCH" "$@"
run "$BUILD_DIR/bench/bench_select" --dir "$SCRATCH" "$@"
run "$BUILD_DIR/bench/bench_policy" "$@"
