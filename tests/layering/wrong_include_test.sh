#!/usr/bin/env bash
# The layering check must fail on a wrong-way include: copy two layers, make comm/ (below
# server/) include a server header, and expect exit 1 naming the file and the header.
set -euo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/core" "$src/comm" "$tmp/"
python3 "$src/tests/layering/check_layering.py" "$tmp" > /dev/null  # the copy is clean
echo '#include "server/coordinator.h"' >> "$tmp/comm/transport.h"
rc=0
out=$(python3 "$src/tests/layering/check_layering.py" "$tmp") || rc=$?
echo "$out"
[ "$rc" -eq 1 ] || { echo "expected exit 1, got $rc"; exit 1; }
grep -q 'comm/transport.h:[0-9]*: comm/ may not include "server/coordinator.h"' <<< "$out" ||
  { echo "the violation was not reported as expected"; exit 1; }
echo "wrong-way include caught"
