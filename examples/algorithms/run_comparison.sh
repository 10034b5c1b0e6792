#!/usr/bin/env bash
# The algorithm comparison of docs/federated.md §8 (V2/V3) on one config: FedAvg, FedAvgM,
# FedProx, FedAdam, FedDyn, SCAFFOLD, FedAvg-M, SCAFFOLD-M, their VR variants and FedSpeed,
# with the spec's hyperparameters (the VR variants with beta 0.9 and gamma 1, the setting
# that did not diverge in docs/benchmarks.md's sweep), then a table and a plot
# (deploy/compare.sh). FedAvg, FedAvgM and FedProx average with the config's weighting
# (sample counts, the reference code's rule); FedAdam, FedDyn, the SCAFFOLD family and
# FedSpeed use the uniform mean their papers write (docs/federated.md).
#
#   examples/algorithms/run_comparison.sh CONFIG OUT_DIR [extra path=value ...]
#
# e.g. examples/algorithms/run_comparison.sh examples/algorithms/fmnist_softmax_dir01.json \
#        runs/cmp_dir01 seed=2
# Extra path=value settings apply to every run (a seed, fewer rounds, ...).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
config=$1 out=$2
shift 2
common=""
for kv in "$@"; do common="$common;$kv"; done
exec bash "$here/deploy/compare.sh" "$config" "$out" \
  "fedavg:algorithm.name=fedavg$common" \
  "fedavgm:algorithm.name=fedavgm;algorithm.momentum=0.9;algorithm.server_lr=0.2$common" \
  "fedprox:algorithm.name=fedprox;algorithm.params.mu=0.01$common" \
  "fedadam:algorithm.name=fedadam;algorithm.weighting=uniform;algorithm.server_lr=0.01;algorithm.params.tau=0.001$common" \
  "feddyn:algorithm.name=feddyn;algorithm.weighting=uniform;algorithm.params.alpha=0.1$common" \
  "scaffold:algorithm.name=scaffold;algorithm.weighting=uniform$common" \
  "fedavg_m:algorithm.name=fedavg_m;algorithm.weighting=uniform;algorithm.params.beta=0.1$common" \
  "scaffold_m:algorithm.name=scaffold_m;algorithm.weighting=uniform;algorithm.params.beta=0.1$common" \
  "fedavg_m_vr:algorithm.name=fedavg_m_vr;algorithm.weighting=uniform;algorithm.params.beta=0.9;algorithm.params.gamma=1$common" \
  "scaffold_m_vr:algorithm.name=scaffold_m_vr;algorithm.weighting=uniform;algorithm.params.beta=0.9;algorithm.params.gamma=1$common" \
  "fedspeed:algorithm.name=fedspeed;algorithm.weighting=uniform;algorithm.params.prox_coef=0.1;algorithm.params.rho=0.05;algorithm.params.alpha=1$common"
