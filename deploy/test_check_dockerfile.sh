#!/usr/bin/env bash
# Negative test of deploy/check_dockerfile.py: broken copies of deploy/Dockerfile (a COPY
# source that does not exist, an entry point that is not the binary, the binary copied from
# the wrong path, a context that would include the build tree) must each be refused.
# usage: deploy/test_check_dockerfile.sh FEDTRAIN_BIN CMAKE_BINARY_DIR WORK_DIR
set -euo pipefail
if [[ $# -ne 3 ]]; then
  echo "usage: $0 FEDTRAIN_BIN CMAKE_BINARY_DIR WORK_DIR" >&2
  exit 2
fi
bin=$1 bindir=$2 work=$3
deploy=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$deploy")
rm -rf "$work"
mkdir -p "$work"
failures=0 cases=0

# expect NAME WANT SCRIPT: SCRIPT edits a copy of Dockerfile (+ .dockerignore) in WORK_DIR/NAME;
# the check must exit 1 with WANT in its output.
expect() {
  local name=$1 want=$2 script=$3 dir="$work/$1" out rc
  cases=$((cases + 1))
  mkdir -p "$dir"
  cp "$deploy/Dockerfile" "$deploy/Dockerfile.dockerignore" "$dir/"
  (cd "$dir" && eval "$script")
  if cmp -s "$deploy/Dockerfile" "$dir/Dockerfile" && cmp -s "$deploy/Dockerfile.dockerignore" "$dir/Dockerfile.dockerignore"; then
    echo "test_check_dockerfile: $name: the edit changed nothing (Dockerfile changed?)" >&2
    failures=$((failures + 1))
    return
  fi
  set +e
  out=$(/usr/bin/python3 "$deploy/check_dockerfile.py" --skip-packages --binary "$bin" --binary-dir "$bindir" \
        --source-dir "$src" --dockerfile "$dir/Dockerfile" 2>&1)
  rc=$?
  set -e
  if [[ $rc -ne 1 || $out != *"$want"* ]]; then
    echo "test_check_dockerfile: $name: want status 1 and '$want'; got $rc:" >&2
    echo "$out" >&2
    failures=$((failures + 1))
  else
    echo "test_check_dockerfile: $name: ok"
  fi
}

expect copy_source "source 'scripts/install_dep.sh' does not exist" \
  "sed -i 's#^COPY scripts/install_deps.sh#COPY scripts/install_dep.sh#' Dockerfile"
expect entrypoint "runs '/usr/local/bin/fedtrian'; the CMake target builds 'fedtrain'" \
  "sed -i 's#/usr/local/bin/fedtrain\"\\]#/usr/local/bin/fedtrian\"]#' Dockerfile"
expect binary_path "the runtime stage copies no" \
  "sed -i 's#/src/build/cli/fedtrain#/src/build/fedtrain#' Dockerfile"
expect build_in_context "does not exclude 'build' from the context" \
  "sed -i '/^build\$/d' Dockerfile.dockerignore"
expect script_not_copied "runs scripts/build.sh (/src/scripts/build.sh) before any COPY" \
  "sed -i 's/^COPY \\. \\.\$//' Dockerfile"

echo "test_check_dockerfile: $((cases - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
