#!/usr/bin/env bash
# Step-size sweep of the momentum family (docs/federated.md §3; results in
# docs/benchmarks.md): FedAvg-M, SCAFFOLD-M and their VR variants over a grid of local lr,
# beta and global step gamma, on one config. Writes OUT_DIR/sweep.csv with, per run, the
# final and best test accuracy and the lowest accuracy over the second half of the
# evaluations (a run that collapses now and then shows there even when it ends well).
#
#   examples/algorithms/vr_sweep.sh CONFIG OUT_DIR [extra path=value ...]
#
# e.g. examples/algorithms/vr_sweep.sh examples/algorithms/fmnist_softmax_dir01.json \
#        runs/vr_sweep rounds=100
# The grid can be narrowed with the environment: ALGOS, LRS, BETAS, GAMMAS (space-separated;
# gamma "default" leaves algorithm.params.gamma unset, i.e. gamma = eta K).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FEDTRAIN_BIN:-$here/build/cli/fedtrain}
config=$1 out=$2
shift 2
extra=()
for kv in "$@"; do extra+=(--set "$kv"); done
algos=${ALGOS:-fedavg_m_vr scaffold_m_vr fedavg_m scaffold_m}
lrs=${LRS:-0.05 0.01}
betas=${BETAS:-0.1 0.3 0.9}
gammas=${GAMMAS:-default 1 0.3 0.1}
mkdir -p "$out"
# final, best, and the minimum over the second half of the evaluated rounds of one run
stats() {
  awk -F, 'NR==1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { a = $(col["test_accuracy"]) } a != "nan" && a != "" { acc[n++] = a }
    END { best = 0; lo = 1; for (i = 0; i < n; i++) { if (acc[i] > best) best = acc[i];
            if (i >= int(n / 2) && acc[i] < lo) lo = acc[i] }
          printf "%s,%s,%s", acc[n - 1], best, lo }' "$1/metrics.csv"
}
csv="$out/sweep.csv"
echo "algorithm,lr,beta,gamma,final_accuracy,best_accuracy,min_second_half" > "$csv"
for algo in $algos; do
  for lr in $lrs; do
    for beta in $betas; do
      for gamma in $gammas; do
        label="${algo}_lr${lr}_b${beta}_g${gamma}"
        if [ ! -e "$out/$label/metrics.csv" ]; then  # runs already there are reused
          rm -rf "$out/$label.partial"
          sets=(--set "algorithm.name=$algo" --set algorithm.weighting=uniform
                --set "local.lr=$lr" --set "algorithm.params.beta=$beta")
          [ "$gamma" != default ] && sets+=(--set "algorithm.params.gamma=$gamma")
          "$bin" simulate --config "$config" --out "$out" --set "output.run_name=$label" \
            --set output.progress=none "${sets[@]}" "${extra[@]}" > /dev/null
        fi
        echo "$algo,$lr,$beta,$gamma,$(stats "$out/$label")" | tee -a "$csv"
      done
    done
  done
done
