#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS (default 600) with ASan and UBSan:
#   bash scripts/fuzz.sh fuzz_batch 600
# Targets: fuzz_batch fuzz_config fuzz_duration fuzz_api_response fuzz_control fuzz_webhook
# (fuzz/*.cpp).
# Builds them with clang into ./build-fuzz. Starts from the seed corpus fuzz/corpus/TARGET
# (read only) and a working corpus in build-fuzz/corpus/TARGET; a crash is written to
# fuzz/findings/ and the run fails. A finding is fixed, then added to fuzz/corpus/TARGET, where
# CTest replays it in every build (tests label "fuzz").
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-600}
build=${FUZZ_BUILD_DIR:-build-fuzz}

if ! command -v clang++ >/dev/null; then
  echo "fuzz: installing clang (libFuzzer comes with it)"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-14-dev
fi
bash scripts/install-deps.sh >/dev/null

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f "$build/CMakeCache.txt" ]]; then
  CXX=clang++ CC=clang cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPERSONAD_FUZZ=ON
fi
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target "$target"

mkdir -p "$build/corpus/$target" fuzz/findings
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="fuzz/findings/$target-" \
  "$build/corpus/$target" "fuzz/corpus/$target"
