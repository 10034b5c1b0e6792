#!/usr/bin/env bash
# Runs one config with several algorithms (each with its own settings), then writes a table
# and a plot of test accuracy against rounds into OUT_DIR.
#
#   deploy/compare.sh CONFIG OUT_DIR 'LABEL:path=v;path=v;...' ['LABEL2:...' ...]
#
# Example:
#   deploy/compare.sh examples/algorithms/fmnist_softmax_dir01.json runs/cmp \
#     'fedavg:algorithm.name=fedavg' 'fedprox:algorithm.name=fedprox;algorithm.params.mu=0.01'
# Each LABEL becomes the run OUT_DIR/LABEL. OUT_DIR/table.md and table.csv list, per run: final
# and best test accuracy, the first evaluated round reaching 95% of the best final accuracy
# among all runs (the spec's "rounds to target", docs/federated.md §8 V2), uplink bytes and wall
# time; OUT_DIR/accuracy.png plots them together. The runs go one after another. Exits
# non-zero on the first failed run.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FEDTRAIN_BIN:-$here/build/cli/fedtrain}
config=$1 out=$2
shift 2
mkdir -p "$out"
labels=() runs=()
for spec in "$@"; do
  case "$spec" in
    *:*) ;;
    *) echo "compare: '$spec' is not LABEL:path=v;..." >&2; exit 2 ;;
  esac
  label=${spec%%:*} sets=${spec#*:}
  if [ -e "$out/$label" ]; then echo "compare: $out/$label exists" >&2; exit 2; fi
  args=()
  IFS=';' read -r -a kvs <<< "$sets"
  for kv in "${kvs[@]}"; do [ -n "$kv" ] && args+=(--set "$kv"); done
  echo "compare: $label (${sets})"
  "$bin" simulate --config "$config" --out "$out" --set "output.run_name=$label" \
    --set output.progress=none "${args[@]}" | tee "$out/.last"
  labels+=("$label")
  runs+=("$out/$label")
done
rm -f "$out/.last"

# Per run from metrics.csv (header names the columns): final/best accuracy, then the
# rounds-to-target once the best final accuracy over all runs is known.
stats() {  # run_dir -> "final best best_round up_bytes wall_s"
  awk -F, 'NR==1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { a = $(col["test_accuracy"]) }
    a != "nan" && a != "" { final = a; if (a + 0 > best + 0) { best = a; br = $(col["round"]) } }
    { up = $(col["cum_bytes_up"]); wall = $(col["wall_s"]) }
    END { printf "%s %s %s %s %s\n", final, best, br, up, wall }' "$1/metrics.csv"
}
target=0
for r in "${runs[@]}"; do
  f=$(stats "$r" | cut -d' ' -f1)
  target=$(awk -v a="$target" -v b="$f" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
done
target=$(awk -v t="$target" 'BEGIN { printf "%.6f", 0.95 * t }')
{
  echo "label,final_accuracy,best_accuracy,best_round,rounds_to_target,uplink_bytes,wall_s"
  for i in "${!runs[@]}"; do
    r=${runs[$i]}
    read -r final best br up wall <<< "$(stats "$r")"
    hit=$(awk -F, -v t="$target" 'NR==1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      { a = $(col["test_accuracy"]) } a != "nan" && a + 0 >= t + 0 { print $(col["round"]); found = 1; exit }
      END { if (!found) print "-" }' "$r/metrics.csv")
    echo "${labels[$i]},$final,$best,$br,$hit,$up,$wall"
  done
} > "$out/table.csv"
{
  echo "Config: \`$config\`; target = 95% of the best final accuracy = $target"
  echo
  echo "| run | final accuracy | best | best after round | rounds to target | uplink bytes | wall s |"
  echo "|---|---|---|---|---|---|---|"
  tail -n +2 "$out/table.csv" | awk -F, '{ printf "| %s | %.2f%% | %.2f%% | %s | %s | %s | %.1f |\n", $1, 100*$2, 100*$3, $4, $5, $6, $7 }'
} > "$out/table.md"
cat "$out/table.md"
"$bin" plot "${runs[@]}" -o "$out/accuracy.png" --title "$(basename "$config")"
echo "compare: wrote $out/table.md, $out/table.csv, $out/accuracy.png"
