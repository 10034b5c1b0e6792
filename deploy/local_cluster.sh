#!/usr/bin/env bash
# A deployed run on this machine: `fedtrain server` on a free loopback port and N
# `fedtrain worker` processes, for trying the cluster path without a cluster.
# usage: deploy/local_cluster.sh CONFIG N_WORKERS [server options, e.g. --set rounds=5 --out runs]
# FEDTRAIN_BIN (default: fedtrain on PATH, then build/cli/fedtrain) and FEDTRAIN_TOKEN
# (default: a random one) may be set. Exits with the server's status.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG N_WORKERS [server options...]" >&2
  exit 2
fi
config=$1 workers=$2
shift 2
bin=${FEDTRAIN_BIN:-$(command -v fedtrain || echo "$(dirname "$0")/../build/cli/fedtrain")}
export FEDTRAIN_TOKEN=${FEDTRAIN_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
fifo=$(mktemp -u)
mkfifo "$fifo"
trap 'rm -f "$fifo"' EXIT
"$bin" server --config "$config" --workers "$workers" --listen 127.0.0.1:0 "$@" > "$fifo" &
server=$!
exec 3< "$fifo"
read -r first <&3 || { wait "$server"; exit $?; }
addr=${first#listening on }
echo "$first" >&2
pids=()
for ((i = 0; i < workers; ++i)); do
  "$bin" worker --server "$addr" --name "local-$i" &
  pids+=($!)
done
cat <&3 &  # the rest of the server's stdout (run folder, final accuracy)
reader=$!
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
wait "$server" || rc=$?
wait "$reader" || true
exit $rc
