#!/usr/bin/env bash
# Quick start 2: set up, build, and run every test. CTest's summary is the last output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 600
