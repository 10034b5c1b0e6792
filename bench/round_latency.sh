#!/usr/bin/env bash
# Round latency of a deployed run: `fedtrain server` and W `fedtrain worker` processes on
# this machine over loopback gRPC, a ~1M-parameter model (MLP 60-14085-10 = 1,000,045
# floats, 4 MB), W clients all taking part in every round (one client per worker), one local
# SGD step each, so the round time is the transport and the server's decode/aggregate, not
# training. Prints the median and max of the per-round wall times (from metrics.csv, rounds
# after the first, which includes connection set-up) and the same run's `fedtrain simulate`
# round time as the in-process baseline, measured in the same script.
# usage: bench/round_latency.sh [WORKERS=100] [ROUNDS=12]
# FEDTRAIN_BIN defaults to build/cli/fedtrain.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-100}
rounds=${2:-12}
bin=${FEDTRAIN_BIN:-build/cli/fedtrain}
[[ -x "$bin" ]] || { echo "round_latency: no fedtrain binary at $bin (build first)" >&2; exit 2; }
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT
sets=(--config examples/synthetic_logreg.json
      --set data.synthetic.num_devices="$workers" --set federation.num_clients="$workers"
      --set federation.clients_per_round="$workers" --set model.type=mlp --set model.hidden=14085
      --set local.epochs=0 --set local.steps=1 --set rounds="$rounds" --set eval_every="$rounds"
      --set output.progress=none --set federation.round_timeout_s=300)
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
round_times() {  # per-round wall time from a run folder's metrics.csv, rounds 2..R
  awk -F, 'NR==1 {for (i=1;i<=NF;i++) if ($i=="wall_s") c=i; next}
           {if (NR>2) print $c-prev; prev=$c}' "$1/metrics.csv"
}
"$bin" simulate "${sets[@]}" --out "$out/sim" > "$out/sim.log" 2>&1
sim_med=$(round_times "$out/sim/synthetic_1_1_logreg" | median)

export FEDTRAIN_TOKEN=bench
fifo="$out/fifo"; mkfifo "$fifo"
"$bin" server "${sets[@]}" --out "$out/grpc" --workers "$workers" --listen 127.0.0.1:0 \
  > "$fifo" 2> "$out/server.err" &
server=$!
exec 3< "$fifo"
read -r first <&3
addr=${first#listening on }
t0=$(date +%s.%N)
for ((i = 0; i < workers; ++i)); do
  "$bin" worker --server "$addr" --name "w$i" > /dev/null 2> "$out/worker$i.err" &
done
cat <&3 > "$out/server.out" &
wait "$server" || { echo "round_latency: server failed:" >&2; tail "$out/server.err" >&2; exit 1; }
t1=$(date +%s.%N)
wait
dir="$out/grpc/synthetic_1_1_logreg"
grpc_med=$(round_times "$dir" | median)
grpc_max=$(round_times "$dir" | sort -g | tail -1)
bytes_up=$(awk -F, 'NR==1 {for (i=1;i<=NF;i++) if ($i=="bytes_up") c=i; next} NR==3 {print $c}' "$dir/metrics.csv")
printf '# round_latency: %d worker processes, 1,000,045-parameter model, %d rounds, %d clients per round\n' \
  "$workers" "$rounds" "$workers"
printf 'simulate (in-process)      median round %8.3f s\n' "$sim_med"
printf 'server + %3d workers       median round %8.3f s   max %8.3f s   (%s bytes up per round)\n' \
  "$workers" "$grpc_med" "$grpc_max" "$bytes_up"
printf 'whole deployed run, workers started to server exit: %.1f s\n' "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"
cmp -s "$out/sim/synthetic_1_1_logreg/model.ftw" "$dir/model.ftw" \
  && echo "weights: identical to simulate" || { echo "weights: DIFFER from simulate" >&2; exit 1; }
