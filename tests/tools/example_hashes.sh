#!/usr/bin/env bash
# Prints, for every example config, the hash of the final weights a run of it gives
# (summary.json's weights_fnv1a64, printed in decimal: summary.json format_version 2 holds it
# as 16 hex digits, earlier summaries as a decimal string), and for examples/ef/*.json the sha256 of ef-validate's
# results less their wall-clock times. Used to show that a refactoring changes no numerics:
# run it with the old and the new binary and diff the outputs.
#   tests/tools/example_hashes.sh FEDTRAIN_BIN [ROUNDS]
# ROUNDS (default: each config's own) caps `rounds` so the check fits in minutes; the
# first ROUNDS rounds exercise the same code as the full run.
set -euo pipefail
bin=$(realpath "$1")
rounds=${2:-}
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for cfg in examples/*.json examples/algorithms/*.json; do
  args=(simulate --config "$cfg" --set "output.dir=$out" --set output.progress=none)
  [ -n "$rounds" ] && args+=(--set "rounds=$rounds")
  if ! "$bin" "${args[@]}" > "$out/log" 2>&1; then
    echo "$cfg FAILED"; tail -n 5 "$out/log"; continue
  fi
  run=$(sed -n 's/^run folder: //p' "$out/log" | tail -n 1)
  if grep -q '"format_version"' "$run/summary.json"; then
    hex=$(grep -o '"weights_fnv1a64": *"[0-9a-f]*"' "$run/summary.json" | grep -o '[0-9a-f]\{16\}')
    hash=$(printf '%u' "0x$hex")
  else
    hash=$(grep -o '"weights_fnv1a64": *"[0-9]*"' "$run/summary.json" | grep -o '[0-9]\{6,\}')
  fi
  echo "$cfg $hash"
done
for cfg in examples/ef/*.json; do
  "$bin" ef-validate --config "$cfg" --out "$out/ef" > /dev/null 2>&1 || { echo "$cfg FAILED"; continue; }
  # results.json without its wall-clock fields (they change from run to run).
  echo "$cfg $(sed 's/"wall_s": *[0-9.e+-]*,\?//g' "$out/ef/results.json" | sha256sum | cut -c1-16)"
  rm -rf "$out/ef"
done
