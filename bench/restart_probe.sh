#!/bin/bash
# usage: bench/restart_probe.sh DIR — start personad (PERSONAD=, default build-perf/personad) on
# DIR/personad.toml: time to the control socket answering, RSS, N (10) GET /v1/stats via curl, SIGTERM.
D=$1  # a daemon directory: personad.toml, personad.db, an empty batches.d
rm -f $D/personad.log $D/control.sock
t0=$(date +%s%N)
CREATIFY_API_ID=bench-id CREATIFY_API_KEY=bench-key nice ${PERSONAD:-build-perf/personad} -c $D/personad.toml > $D/personad.log 2>&1 &
P=$!
until curl -s --unix-socket $D/control.sock http://x/v1/health > /dev/null 2>&1; do sleep 0.01; done
t1=$(date +%s%N)
echo "exec -> control socket answers: $(( (t1-t0)/1000000 )) ms; RSS $(grep VmRSS /proc/$P/status | awk '{print $2/1024}') MiB"
sleep 5
echo "5 s later: RSS $(grep VmRSS /proc/$P/status | awk '{print $2/1024}') MiB, VmHWM $(grep VmHWM /proc/$P/status | awk '{print $2/1024}') MiB"
for i in $(seq 1 ${N:-10}); do curl -s -o /dev/null -w "%{time_total}\n" --unix-socket $D/control.sock http://x/v1/stats; done | sort -n | awk '{a[NR]=$1} END {printf "GET /v1/stats x%d (curl, new connection each): min %.1f ms, median %.1f ms, max %.1f ms\n", NR, a[1]*1000, a[int((NR+1)/2)]*1000, a[NR]*1000}'
echo "after the stats requests: RSS $(grep VmRSS /proc/$P/status | awk '{print $2/1024}') MiB, VmHWM $(grep VmHWM /proc/$P/status | awk '{print $2/1024}') MiB"
grep -E " loaded | started " $D/personad.log | cut -c1-110
kill $P; wait $P
