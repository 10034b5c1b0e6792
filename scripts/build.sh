#!/usr/bin/env bash
# Configures and builds fedtrain.
#   scripts/build.sh                 Release build with the default compiler into ./build,
#                                    with the tests and bench programs
#   scripts/build.sh app             the same Release build of fedtrain alone (tests and bench
#                                    off: what the main job needs), into ./build
#   scripts/build.sh sanitize        clang, Debug, AddressSanitizer + UndefinedBehaviorSanitizer,
#                                    -Werror and -Wthread-safety on fedtrain's code, into ./build-sanitize
# Extra arguments after the mode go to CMake. The log is <build dir>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
mode=${1:-release}
[ $# -gt 0 ] && shift
case "$mode" in
  release)
    dir=build
    args=(-DCMAKE_BUILD_TYPE=Release -DFEDTRAIN_BUILD_TESTS=ON -DFEDTRAIN_BUILD_BENCH=ON) ;;
  app)
    dir=build
    args=(-DCMAKE_BUILD_TYPE=Release -DFEDTRAIN_BUILD_TESTS=OFF -DFEDTRAIN_BUILD_BENCH=OFF) ;;
  sanitize)
    dir=build-sanitize
    args=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
          -DFEDTRAIN_WERROR=ON -DFEDTRAIN_BUILD_TESTS=ON -DFEDTRAIN_BUILD_BENCH=ON
          "-DCMAKE_CXX_FLAGS=-Wthread-safety -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
          "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined"
          "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=address,undefined") ;;
  *) echo "usage: scripts/build.sh [release|app|sanitize] [cmake args...]" >&2; exit 2 ;;
esac
log="$dir.log"
cmake -S . -B "$dir" "${args[@]}" "$@" > "$log" 2>&1 || { cat "$log"; exit 1; }
cmake --build "$dir" -j"$(nproc)" >> "$log" 2>&1 || { tail -n 80 "$log"; exit 1; }
echo "build ($mode): ok (log in $log)"
