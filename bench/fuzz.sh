#!/usr/bin/env bash
# Runs the libFuzzer targets (fuzz/) long: each for RUNS executions from the checked-in seed
# corpus (fuzz/corpus/<target>), and prints per target the executions, exec/s, the corpus it
# grew and the crashes. Exit status 1 when any target crashed (or failed an invariant, leaked,
# timed out or ran out of memory): the file that does it is kept as <work>/<target>/crash-*.
#   bench/fuzz.sh [RUNS] [TARGET...]   RUNS per target (default 10000000); TARGET among
#                                       push_decoder membership checkpoint (default: all three)
# Environment: FUZZ_BUILD, the build folder with the fuzzers (default build-sanitize, made by
# `scripts/build.sh sanitize` when missing: clang, ASan + UBSan); FUZZ_SEED (default 1);
# FUZZ_MAX_SECONDS, a time cap per target (default none: the count is then exact); FUZZ_WORK,
# where corpora, logs and crash files go (default <build>/fuzz/bench).
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(push_decoder membership checkpoint)
build=${FUZZ_BUILD:-build-sanitize}
if [ ! -x "$build/fuzz/push_decoder_fuzzer" ]; then
  if [ "$build" = build-sanitize ]; then
    bash scripts/build.sh sanitize || exit 1
  else
    echo "fuzz.sh: no fuzzers in $build (configure it with -DFEDTRAIN_FUZZ=ON)" >&2
    exit 1
  fi
fi
work=${FUZZ_WORK:-$build/fuzz/bench}
max_time=()
[ -n "${FUZZ_MAX_SECONDS:-}" ] && max_time=(-max_total_time="$FUZZ_MAX_SECONDS")
status=0
printf '%-14s %12s %10s %9s %8s %s\n' target executions exec/s seconds crashes corpus
for t in "${targets[@]}"; do
  bin="$build/fuzz/${t}_fuzzer"
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: no fuzzer $bin" >&2
    exit 2
  fi
  dir="$work/$t"
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  start=$(date +%s)
  "$bin" -runs="$runs" -seed="${FUZZ_SEED:-1}" -max_len=4096 -timeout=10 -print_final_stats=1 \
    "${max_time[@]}" -artifact_prefix="$dir/" "$dir/corpus" "fuzz/corpus/$t" > "$dir/log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -n 1)
  crashes=$(find "$dir" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
              -o -name 'oom-*' \) | wc -l)
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi  # died without a file
  [ "$crashes" -ne 0 ] && status=1
  printf '%-14s %12s %10s %9s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$secs" "$crashes" \
    "$(ls "$dir/corpus" | wc -l) inputs"
  if [ "$crashes" -ne 0 ]; then
    echo "  $t failed (exit $rc); the end of $dir/log:" >&2
    tail -n 30 "$dir/log" >&2
  fi
done
exit "$status"
