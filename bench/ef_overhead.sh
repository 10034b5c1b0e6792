#!/usr/bin/env bash
# The cost of compression with error feedback on the main job: Fashion-MNIST, MLP 784-200-10,
# 100 clients, 10 per round, FedAvg, dense (examples/fmnist_mlp_fedavg.json) against Top-K 1%
# + EControl (examples/fmnist_mlp_topk_econtrol.json), with 2 threads. The runs alternate
# (dense, compressed, dense, ...) so both see the same machine load; the time is each run's
# summary.json wall_s (the rounds, without loading the data set). Prints every pair's ratio
# and the median; exits 1 when a run fails or ends without a final accuracy.
#   bench/ef_overhead.sh FEDTRAIN_BIN [ROUNDS=150] [PAIRS=5]
set -euo pipefail
bin=$(realpath "$1")
rounds=${2:-150}
pairs=${3:-5}
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() {  # config -> wall_s
  local dir="$out/$(basename "$1" .json)-$2"
  "$bin" simulate --config "$1" --set "rounds=$rounds" --set threads=2 --set output.progress=none \
    --set output.save_model=false --out "$dir" > "$dir.log" 2>&1 || { cat "$dir.log" >&2; exit 1; }
  local summary
  summary=$(cat "$dir"/*/summary.json)
  grep -q '"test_accuracy":[0-9]' <<< "$summary" || { echo "no final accuracy: $summary" >&2; exit 1; }
  sed 's/.*"wall_s":\([0-9.e+-]*\).*/\1/' <<< "$summary"
}
ratios=()
echo "pair  dense_s  topk_econtrol_s  ratio"
for p in $(seq 1 "$pairs"); do
  d=$(run examples/fmnist_mlp_fedavg.json "$p")
  c=$(run examples/fmnist_mlp_topk_econtrol.json "$p")
  r=$(awk -v c="$c" -v d="$d" 'BEGIN { printf "%.3f", c / d }')
  ratios+=("$r")
  printf "%4d  %7.2f  %15.2f  %5s\n" "$p" "$d" "$c" "$r"
done
median=$(printf "%s\n" "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median ratio (Top-K 1% + EControl / dense): $median"
