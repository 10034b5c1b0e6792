#!/usr/bin/env bash
# Quick start 1: set up, build, and run the main job (Fashion-MNIST, MLP 784-200-10, 100
# clients, Dirichlet 0.3, 10 per round, FedAvg), then plot it.
# Extra arguments go to `fedtrain simulate` (e.g. --set rounds=50).
# Installs only the runtime packages (scripts/install_deps.sh without --dev; none of them
# starts a service) and builds fedtrain without the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh app
./build/cli/fedtrain simulate --config examples/fmnist_mlp_fedavg.json "$@" | tee build/main_job.out
run_dir=$(sed -n 's/^run folder: //p' build/main_job.out | tail -n 1)
./build/cli/fedtrain plot "$run_dir" -o "$run_dir/plot.png" --title "$(basename "$run_dir")"
