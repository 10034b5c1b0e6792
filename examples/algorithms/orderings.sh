#!/usr/bin/env bash
# The drift-correcting algorithms on a non-convex model (docs/benchmarks.md, "Orderings on the
# MLP"): FedAvg, SCAFFOLD, SCAFFOLD-M, FedSpeed and FedDyn on one config, at each Dirichlet
# alpha and seed given, with the same small tuning grid (the local lr values in LRS) for
# every algorithm. Writes OUT_DIR/runs.csv (one row per run) and OUT_DIR/summary.csv: per
# algorithm and alpha, the lr with the best mean final accuracy over the seeds, that mean and
# its 95% confidence interval (Student t over the seeds).
#
#   examples/algorithms/orderings.sh CONFIG OUT_DIR [extra path=value ...]
#
# e.g. examples/algorithms/orderings.sh examples/algorithms/fmnist_mlp64_dir01.json \
#        runs/orderings rounds=100
# Environment: ALPHAS (default "0.1 0.3"), SEEDS ("1 2 3"), LRS ("0.05 0.1"), ALGOS (labels
# below). Runs already in OUT_DIR are reused.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FEDTRAIN_BIN:-$here/build/cli/fedtrain}
config=$1 out=$2
shift 2
extra=()
for kv in "$@"; do extra+=(--set "$kv"); done
alphas=${ALPHAS:-0.1 0.3}
seeds=${SEEDS:-1 2 3}
lrs=${LRS:-0.05 0.1}
algos=${ALGOS:-fedavg scaffold scaffold_m fedspeed feddyn}
settings() {  # label -> the algorithm's --set arguments (federated.md §8 values)
  case "$1" in
    fedavg) echo "algorithm.name=fedavg" ;;
    scaffold) echo "algorithm.name=scaffold algorithm.weighting=uniform" ;;
    scaffold_m) echo "algorithm.name=scaffold_m algorithm.weighting=uniform algorithm.params.beta=0.1" ;;
    fedspeed) echo "algorithm.name=fedspeed algorithm.weighting=uniform algorithm.params.prox_coef=0.1 algorithm.params.rho=0.05 algorithm.params.alpha=1" ;;
    feddyn) echo "algorithm.name=feddyn algorithm.weighting=uniform algorithm.params.alpha=0.1" ;;
    *) echo "orderings: unknown algorithm $1" >&2; exit 2 ;;
  esac
}
mkdir -p "$out"
echo "algorithm,alpha,lr,seed,final_accuracy,best_accuracy" > "$out/runs.csv"
for alpha in $alphas; do
  for algo in $algos; do
    for lr in $lrs; do
      for seed in $seeds; do
        label="${algo}_a${alpha}_lr${lr}_s${seed}"
        if [ ! -e "$out/$label/metrics.csv" ]; then
          rm -rf "$out/$label.partial"
          sets=()
          for kv in $(settings "$algo"); do sets+=(--set "$kv"); done
          "$bin" simulate --config "$config" --out "$out" --set "output.run_name=$label" \
            --set output.progress=none --set "partition.alpha=$alpha" --set "local.lr=$lr" \
            --set "seed=$seed" "${sets[@]}" "${extra[@]}" > /dev/null
        fi
        awk -F, -v p="$algo,$alpha,$lr,$seed" 'NR==1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
          { a = $(col["test_accuracy"]) } a != "nan" && a != "" { f = a; if (a > b) b = a }
          END { printf "%s,%s,%s\n", p, f, b }' "$out/$label/metrics.csv" | tee -a "$out/runs.csv"
      done
    done
  done
done
# Per (algorithm, alpha, lr): mean and 95% CI half-width of the final accuracy over the seeds;
# then per (algorithm, alpha) the lr with the best mean.
awk -F, 'NR > 1 { k = $1 "," $2 "," $3; n[k]++; s[k] += $5; q[k] += $5 * $5 }
  END {
    t[2] = 12.706; t[3] = 4.303; t[4] = 3.182; t[5] = 2.776; t[6] = 2.571
    for (k in n) {
      m = s[k] / n[k]; v = n[k] > 1 ? (q[k] - n[k] * m * m) / (n[k] - 1) : 0; if (v < 0) v = 0
      h = n[k] > 1 ? (n[k] in t ? t[n[k]] : 2) * sqrt(v / n[k]) : 0
      split(k, p, ","); g = p[1] "," p[2]
      if (!(g in bm) || m > bm[g]) { bm[g] = m; bh[g] = h; bl[g] = p[3]; bn[g] = n[k] }
    }
    for (g in bm) printf "%s,%s,%d,%.4f,%.4f\n", g, bl[g], bn[g], bm[g], bh[g]
  }' "$out/runs.csv" | sort -t, -k2,2 -k5,5r > "$out/summary.body"
{ echo "algorithm,alpha,lr,seeds,mean_final_accuracy,ci95_half_width"; cat "$out/summary.body"; } \
  > "$out/summary.csv"
rm -f "$out/summary.body"
cat "$out/summary.csv"
