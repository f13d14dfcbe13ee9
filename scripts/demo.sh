#!/usr/bin/env bash
# The demo: builds personad, starts creatify-sim with compressed time and a few faults, runs
# personad on config/batches.d plus a batch submitted with personactl, prints every transition
# as it happens, and ends with `personactl list`. Leaves no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

bash scripts/build.sh
BIN=${BUILD_DIR:-build}
RUN=$ROOT/demo-run
rm -rf "$RUN"
mkdir -p "$RUN/batches.d" "$RUN/media"
cp config/batches.d/*.toml "$RUN/batches.d/"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# 1 simulated day ≈ 4 s: the API's multi-day creation window fits in the demo.
"$BIN/creatify-sim" --listen 127.0.0.1:0 --port-file "$RUN/sim.port" --time-scale 20000 \
  --api-id demo-id --api-key demo-key --seed 7 --fail-rate 0.2 \
  --fault-5xx 0.05 --fault-429 0.05 --lost-create 0.2 >"$RUN/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$RUN/sim.port" ]] && break; sleep 0.05; done
PORT=$(cat "$RUN/sim.port")
echo "== creatify-sim listening on 127.0.0.1:$PORT (time x20000, 20% failures, some faults)"

# The documented example config, pointed at the simulator and at this directory, with a
# poll policy scaled to the simulator's compressed time.
sed -e "s|^base_url = .*|base_url = \"http://127.0.0.1:$PORT\"|" \
    -e "s|^credentials_file = .*|# credentials come from the environment in the demo|" \
    -e "s|^path = .*|path = \"$RUN/personad.db\"|" \
    -e "s|^directory = .*|directory = \"$RUN/batches.d\"|" \
    -e "s|^media_root = .*|media_root = \"$RUN/media\"|" \
    -e "s|^socket = .*|socket = \"$RUN/control.sock\"|" \
    -e "s|^first_after = .*|first_after = \"1s\"|" \
    -e "s|^initial_interval = .*|initial_interval = \"1s\"|" \
    -e "s|^max_interval = .*|max_interval = \"2s\"|" \
    -e "s|^multiplier = .*|multiplier = 1.5|" \
    -e "s|^give_up_after = .*|give_up_after = \"2m\"|" \
    -e "s|^expected_after = .*|expected_after = \"4s\"|" \
    -e "s|^sparse_interval = .*|sparse_interval = \"3s\"|" \
    -e "s|^retry_initial = .*|retry_initial = \"200ms\"|" \
    -e "s|^retry_max = .*|retry_max = \"2s\"|" \
    -e "s|^reconcile_after = .*|reconcile_after = \"2s\"|" \
    config/personad.toml >"$RUN/personad.toml"

export CREATIFY_API_ID=demo-id CREATIFY_API_KEY=demo-key
"$BIN/personad" --config "$RUN/personad.toml" --check-config
"$BIN/personad" --config "$RUN/personad.toml" 2>"$RUN/personad.log" &
daemon=$!
pids+=("$daemon")
echo "== personad started (log: demo-run/personad.log); transitions as they happen:"
# tail ends with the daemon (--pid), so nothing outlives the demo.
tail -n +1 -F --pid="$daemon" "$RUN/personad.log" 2>/dev/null |
  grep --line-buffered -E "transition|error|warn" &
pids+=($!)

for _ in $(seq 100); do [[ -S "$RUN/control.sock" ]] && break; sleep 0.05; done
sleep 1
echo "== personactl submit scripts/demo-batch.toml"
"$BIN/personactl" --config "$RUN/personad.toml" submit scripts/demo-batch.toml

# Wait until every job is final (or 90 s pass).
for _ in $(seq 180); do
  active=$("$BIN/personactl" --config "$RUN/personad.toml" stats --json |
    python3 -c 'import json,sys; c=json.load(sys.stdin)["counts"]; print(c["queued"]+c["submitting"]+c["pending"])')
  [[ "$active" == 0 ]] && break
  sleep 0.5
done
sleep 0.3
echo
echo "== personactl list"
"$BIN/personactl" --config "$RUN/personad.toml" list
echo
echo "== personactl stats"
"$BIN/personactl" --config "$RUN/personad.toml" stats
kill -TERM "$daemon"
wait "$daemon" || true
