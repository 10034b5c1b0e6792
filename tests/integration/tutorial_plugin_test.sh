#!/usr/bin/env bash
# docs/tutorial.md §3 compiles as written: every code block marked
# "<!-- tutorial-file: NAME -->" is written to NAME, built out of tree against an installed
# fedtrain, and run by name for two rounds (with its parameter set, and with a typo in it,
# which must be refused naming the key).
# Args: BUILD_DIR SOURCE_DIR WORK_DIR
set -eu
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work/my_algo"
awk -v dir="$work/my_algo" '
  /^<!-- tutorial-file: / { name = $3; want = 1; next }
  want && /^```/ && !inside { inside = 1; next }
  inside && /^```/ { inside = 0; want = 0; close(dir "/" name); n++; next }
  inside { print > (dir "/" name) }
  END { if (n != 2) { print "tutorial: expected 2 marked files, found " n > "/dev/stderr"; exit 1 } }
' "$src/docs/tutorial.md"
cmake --install "$build" --prefix "$work/install" > "$work/install.log"
cmake -S "$work/my_algo" -B "$work/my_algo/build" -DCMAKE_PREFIX_PATH="$work/install" \
  > "$work/configure.log"
cmake --build "$work/my_algo/build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
run() {
  "$work/install/bin/fedtrain" simulate --config "$src/examples/synthetic_logreg.json" \
    --out "$work/runs" --set rounds=2 --set output.progress=none \
    --plugin "$work/my_algo/build/my_algo.so" --set algorithm.name=my_algo "$@"
}
run --set algorithm.params.server_lr=0.5 > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
test -f "$work/runs/synthetic_1_1_logreg/model.ftw"
grep -q '"server_lr":0.5' "$work/runs/synthetic_1_1_logreg/config.json" \
  || { echo "config.json lacks the parameter"; exit 1; }
if run --set algorithm.params.server_rl=0.5 > "$work/typo.log" 2>&1; then
  echo "a misspelt parameter was accepted"; exit 1
fi
grep -q "server_rl" "$work/typo.log" || { cat "$work/typo.log"; exit 1; }
echo "tutorial plug-in: ok"
