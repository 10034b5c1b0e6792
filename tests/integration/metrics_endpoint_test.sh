#!/usr/bin/env bash
# `fedtrain server --metrics-listen 127.0.0.1:0`: the endpoint's address is logged, Python's
# HTTP client (urllib) reads Prometheus text from it while the server waits for its worker
# (rounds_completed 0), and the run then finishes normally with a worker.
# Args: FEDTRAIN_BIN SOURCE_DIR WORK_DIR
set -eu
bin=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export FEDTRAIN_TOKEN=metrics-test
"$bin" server --config "$src/examples/synthetic_logreg.json" --workers 1 \
  --listen 127.0.0.1:0 --metrics-listen=127.0.0.1:0 --out "$work/runs" \
  --set rounds=3 --set output.progress=none > "$work/server.out" 2> "$work/server.err" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
url=""
for _ in $(seq 1 300); do  # up to 30 s for the log line
  url=$(sed -n 's|.*fedtrain server: metrics on \(http://[^ ]*\).*|\1|p' "$work/server.err" | head -n 1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "no metrics address logged"; cat "$work/server.err"; exit 1; }
# The log line carries a timestamp and a level.
grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z INFO fedtrain server: metrics on' "$work/server.err" \
  || { echo "log line format"; cat "$work/server.err"; exit 1; }
python3 - "$url" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    assert r.status == 200, r.status
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
    body = r.read().decode()
samples = {l.split()[0]: l.split()[1] for l in body.splitlines() if l and not l.startswith("#")}
want = ["fedtrain_rounds_completed", "fedtrain_updates_received_total",
        "fedtrain_updates_rejected_total", "fedtrain_messages_refused_total",
        "fedtrain_bytes_up_total", "fedtrain_bytes_down_total", "fedtrain_test_accuracy",
        "fedtrain_round_seconds"]
missing = [m for m in want if m not in samples]
assert not missing, missing
assert samples["fedtrain_rounds_completed"] == "0", samples
assert "# TYPE fedtrain_updates_received_total counter" in body
try:
    urllib.request.urlopen(sys.argv[1].replace("/metrics", "/nope"), timeout=10)
    raise SystemExit("/nope answered 200")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code
print("metrics endpoint: ok before the run")
PY
addr=$(sed -n 's/^listening on //p' "$work/server.out" | head -n 1)
"$bin" worker --server "$addr" > "$work/worker.out" 2> "$work/worker.err"
wait $server
trap - EXIT
test -f "$work/runs/synthetic_1_1_logreg/model.ftw"
echo "metrics endpoint: ok"
