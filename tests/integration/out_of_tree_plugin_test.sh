#!/usr/bin/env bash
# The README's custom-aggregator path end to end: install fedtrain, build
# examples/custom_aggregator/ out of tree against the installed package, run it by name.
# Args: BUILD_DIR SOURCE_DIR WORK_DIR
set -eu
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/install" > "$work/install.log"
cmake -S "$src/examples/custom_aggregator" -B "$work/build" \
  -DCMAKE_PREFIX_PATH="$work/install" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
"$work/install/bin/fedtrain" simulate --config "$src/examples/synthetic_logreg.json" \
  --out "$work/runs" --set rounds=2 --set output.progress=none \
  --plugin "$work/build/normclip_fedavg.so" --set algorithm.name=normclip_fedavg \
  --set algorithm.params.max_norm=1
test -f "$work/runs/synthetic_1_1_logreg/model.ftw"
echo "out-of-tree plug-in: ok"
