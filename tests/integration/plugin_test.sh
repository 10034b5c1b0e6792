#!/usr/bin/env bash
# Algorithm plug-ins through the real binary: the example plug-in runs (and is the algorithm
# the run used), a plug-in loaded twice is refused, and bad libraries give clear errors.
# Args: FEDTRAIN_BIN SOURCE_DIR PLUGIN BAD_ABI_PLUGIN NOT_A_PLUGIN WORK_DIR
set -u
bin=$1 src=$2 plugin=$3 bad_abi=$4 not_plugin=$5 work=$6
rm -rf "$work" && mkdir -p "$work"
fails=0
check() {  # check NAME EXPECTED_RC PATTERN -- command...
  local name=$1 want=$2 pattern=$3; shift 4
  "$@" > "$work/out" 2> "$work/err"; local rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -q -- "$pattern" "$work/out" "$work/err"; then
    echo "FAIL $name: rc=$rc (want $want), no '$pattern' in output:"; cat "$work/out" "$work/err"
    fails=$((fails + 1))
  else
    echo "ok   $name"
  fi
}
run=("$bin" simulate --config "$src/examples/synthetic_logreg.json" --out "$work/runs"
     --set rounds=3 --set output.progress=none)
check plugin_runs 0 "run folder:" -- "${run[@]}" --plugin "$plugin" \
  --set algorithm.name=normclip_fedavg --set algorithm.params.max_norm=0.5
grep -q '"normclip_fedavg"' "$work/runs/synthetic_1_1_logreg/config.json" || {
  echo "FAIL config.json does not record the plug-in algorithm"; fails=$((fails + 1)); }
grep -q "normclip_fedavg.so" "$work/runs/synthetic_1_1_logreg/config.json" || {
  echo "FAIL config.json does not record the plug-in path"; fails=$((fails + 1)); }
check plugin_param_validated 1 "algorithm.params.max_norm" -- "${run[@]}" --plugin "$plugin" \
  --set algorithm.name=normclip_fedavg
check unknown_algorithm_lists_plugin 1 "normclip_fedavg" -- "${run[@]}" --plugin "$plugin" \
  --set algorithm.name=nope
check missing_plugin 1 "plugin $work/missing.so: cannot load" -- "${run[@]}" --plugin "$work/missing.so"
check not_a_plugin 1 "not a fedtrain plugin" -- "${run[@]}" --plugin "$not_plugin"
check wrong_abi 1 "built for plugin ABI 999" -- "${run[@]}" --plugin "$bad_abi"
check loaded_twice 1 "already registered" -- "${run[@]}" --plugin "$plugin" --plugin "$plugin"
[ ! -e "$work/runs/synthetic_1_1_logreg-2" ] || { echo "FAIL a failed run left a folder"; fails=$((fails + 1)); }
echo "$((7 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
