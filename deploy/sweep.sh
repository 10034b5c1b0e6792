#!/usr/bin/env bash
# Runs one config over a grid of overrides on this machine and plots the runs together.
#
#   deploy/sweep.sh CONFIG OUT_DIR 'path=v1,v2,...' ['path2=w1,w2' ...] [-- extra simulate args]
#
# Every combination of the listed values becomes one run named after its settings, e.g.
#   deploy/sweep.sh examples/synthetic_logreg.json runs/sweep 'local.lr=0.01,0.03' 'seed=1,2'
# gives four run folders and runs/sweep/sweep.png. The runs go one after another (each run
# uses every core itself). Exits non-zero on the first failed run.
# Cluster launchers (mpirun, Slurm, Kubernetes) join this folder with the gRPC runtime.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FEDTRAIN_BIN:-$here/build/cli/fedtrain}
config=$1 out=$2
shift 2
axes=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  case "$1" in
    *=*) axes+=("$1") ;;
    *) echo "sweep: '$1' is not path=v1,v2,..." >&2; exit 2 ;;
  esac
  shift
done
# Expand the grid: each combo is a list of path=value separated by spaces.
combos=("")
for axis in "${axes[@]}"; do
  path=${axis%%=*} values=${axis#*=}
  next=()
  IFS=',' read -r -a vals <<< "$values"
  for c in "${combos[@]}"; do
    for v in "${vals[@]}"; do next+=("${c:+$c }$path=$v"); done
  done
  combos=("${next[@]}")
done
mkdir -p "$out"
runs=()
for c in "${combos[@]}"; do
  name=$(echo "$c" | tr ' =/' '_-_')
  args=()
  for kv in $c; do args+=(--set "$kv"); done
  echo "sweep: $c"
  "$bin" simulate --config "$config" --out "$out" --set "output.run_name=$name" \
    --set output.progress=none "${args[@]}" "${extra[@]}" | tee "$out/.last"
  runs+=("$(sed -n 's/^run folder: //p' "$out/.last")")
done
rm -f "$out/.last"
"$bin" plot "${runs[@]}" -o "$out/sweep.png" --title "$(basename "$config") sweep"
