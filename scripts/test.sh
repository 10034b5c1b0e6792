#!/usr/bin/env bash
# Quick start 2: set up, build, and run every test, twice: the Release build users run, then
# a clang build with AddressSanitizer + UndefinedBehaviorSanitizer, -Werror and
# -Wthread-safety. CTest's summary of the second run is the last output. Installs the
# development set (scripts/install_deps.sh --dev: clang, GoogleTest, Slurm, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh --dev
bash scripts/build.sh release
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 600)
bash scripts/build.sh sanitize
cd build-sanitize
ctest --output-on-failure -j"$(nproc)" --timeout 900
