#!/usr/bin/env bash
# A deployed run across four "hosts" on this machine, with network faults, gives the same
# model as `fedtrain simulate`, byte for byte.
#
# usage: netns_test.sh FEDTRAIN_BIN DELAY_PROXY_BIN SOURCE_DIR WORK_DIR
#
# Hosts are network namespaces (named fedtrain-<pid>-{srv,w0,w1,w2}): the server's and one
# per worker, each worker joined to the server by its own veth pair and /24 subnet
# (10.77.K.1 server side, 10.77.K.2 worker K), lo up in all. Faults (docs/maintainers.md §9,
# "Several hosts on one machine"; these kernels have no `tc netem`):
#   worker 0: random loss of LOSS_PERCENT % of the packets it sends, dropped by an nftables
#             rule on the server namespace's input hook (table inet chaos);
#   worker 1: a tbf bandwidth limit (TBF_RATE) on its veth's egress;
#   worker 2: reaches the server only through delay_proxy (tests/tools/delay_proxy.cc),
#             which runs in worker 2's namespace on 127.0.0.1 and delays each direction by
#             DELAY_MS ms.
# The run: examples/synthetic_logreg.json with rounds=ROUNDS, `fedtrain simulate` in the root
# namespace, and `fedtrain server` + 3 `fedtrain worker` in their namespaces.
#
# Checks: every process exits 0 within DEADLINE_S seconds (else all are killed and the test
# fails); the two model.ftw files are identical (cmp); and the faults were real: the drop
# rule's counter shows dropped packets > 0, worker 1's tbf qdisc held packets back
# (overlimits > 0), and delay_proxy forwarded bytes both ways. Prints a summary: elapsed
# time, packets dropped of those worker 0 sent, tbf and proxy traffic.
# Why these sizes (measured here): over 4 rounds worker 0 sends only ~85 packets, so 3 %
# loss drops nothing in ~1 run in 13; 30 rounds send ~550 (P(no drop) = 0.97^550 ~ 5e-8)
# and still take ~5 s. Worker 1's uploads come in bursts of a few kB a round: at 50mbit with
# a 4-32 kB bucket tbf never held a packet back, and at 5mbit with 4 kB it held some back
# only when the run was fast (none under the sanitizers). Each round's update (~2.5 kB)
# is larger than a 1600-byte bucket, so at 1mbit every round is shaped whatever the speed
# (600-800 packets held back a run): that is the default, and overlimits > 0 shows the limit
# really shaped the traffic. Local training is cut to 2 epochs (the traffic is the same).
# ROUNDS, LOSS_PERCENT, TBF_RATE, TBF_BURST, DELAY_MS and DEADLINE_S may be overridden from
# the environment.
#
# Exit status: 0 pass, 1 fail, 2 usage, 77 skipped (not root, or no ip/nft/tc, or network
# namespaces cannot be created here). A trap removes every namespace, veth, nft table and
# process this script made, on any exit it gets to run on (not SIGKILL).
# Needs root, iproute2 (ip, tc) and nftables. No fixed sleeps: it waits on the server's
# "listening on" line, on the proxy's port file and on process exits, polling every 50 ms
# up to the deadline.
set -euo pipefail

if [[ $# -ne 4 ]]; then
  echo "usage: $0 FEDTRAIN_BIN DELAY_PROXY_BIN SOURCE_DIR WORK_DIR" >&2
  exit 2
fi
fedtrain=$1 proxy_bin=$2 src=$3 work=$4

ROUNDS=${ROUNDS:-30}
LOSS_PERCENT=${LOSS_PERCENT:-3}
TBF_RATE=${TBF_RATE:-1mbit}
TBF_BURST=${TBF_BURST:-1600}
DELAY_MS=${DELAY_MS:-20}
DEADLINE_S=${DEADLINE_S:-150}

skip() {
  echo "netns_test: SKIPPED: $*" >&2
  exit 77
}
fail() {
  echo "netns_test: FAILED: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, nftables, tc)"
for tool in ip nft tc; do
  command -v "$tool" > /dev/null || skip "'$tool' not found (packages iproute2, nftables)"
done
[[ -x $fedtrain ]] || fail "no fedtrain binary at $fedtrain"
[[ -x $proxy_bin ]] || fail "no delay_proxy binary at $proxy_bin"
config=$src/examples/synthetic_logreg.json
[[ -f $config ]] || fail "no $config"

# gRPC honours these; nothing here may go through a proxy of the host.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY grpc_proxy no_proxy NO_PROXY \
  all_proxy ALL_PROXY

mkdir -p "$work"
rm -rf "$work/sim" "$work/deployed" "$work/logs"
mkdir -p "$work/logs"
logs=$work/logs

tag=fedtrain-$$
ns_srv=$tag-srv
ns_w=("$tag-w0" "$tag-w1" "$tag-w2")
made_ns=()   # namespaces created so far (the trap removes exactly these)
pids=()      # processes started so far (the trap stops exactly these)

stop_pids() {
  local p alive=()
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2> /dev/null; then
      kill -TERM "$p" 2> /dev/null || true
      alive+=("$p")
    fi
  done
  # Give them up to 2 s to leave, then SIGKILL what is left.
  local until=$((SECONDS + 2))
  for p in "${alive[@]}"; do
    while kill -0 "$p" 2> /dev/null && ((SECONDS < until)); do sleep 0.05; done
    kill -KILL "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
  done
}

cleanup() {
  local rc=$?
  set +e
  stop_pids
  if [[ " ${made_ns[*]} " == *" $ns_srv "* ]]; then
    ip netns exec "$ns_srv" nft delete table inet chaos 2> /dev/null
  fi
  local ns k
  for k in 0 1 2; do
    # Deleting one end of a veth pair deletes both.
    [[ " ${made_ns[*]} " == *" ${ns_w[k]} "* ]] && ip -n "${ns_w[k]}" link delete "w$k" 2> /dev/null
  done
  for ns in "${made_ns[@]}"; do ip netns delete "$ns" 2> /dev/null; done
  if ((rc != 0 && rc != 77)); then
    local f
    for f in "$logs"/*.log; do
      [[ -s $f ]] || continue
      echo "---- $(basename "$f") (last 30 lines)" >&2
      tail -n 30 "$f" >&2
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_us=${EPOCHREALTIME/./}
deadline=$((SECONDS + DEADLINE_S))
past_deadline() { ((SECONDS >= deadline)); }

# ---- The simulation (root namespace): the reference model.
"$fedtrain" simulate --config "$config" --set rounds="$ROUNDS" --set local.epochs=2 \
  --set output.progress=none --out "$work/sim" > "$logs/simulate.log" 2>&1 || fail "fedtrain simulate failed"

# ---- Hosts: namespaces, veth pairs, addresses.
ip netns add "$ns_srv" 2> "$logs/netns.log" ||
  skip "cannot create network namespaces here: $(cat "$logs/netns.log")"
made_ns+=("$ns_srv")
ip -n "$ns_srv" link set lo up
for k in 0 1 2; do
  ip netns add "${ns_w[k]}"
  made_ns+=("${ns_w[k]}")
  ip -n "${ns_w[k]}" link set lo up
  # Created directly inside the two namespaces: nothing appears in the root namespace.
  ip link add "s$k" netns "$ns_srv" type veth peer name "w$k" netns "${ns_w[k]}"
  ip -n "$ns_srv" addr add "10.77.$k.1/24" dev "s$k"
  ip -n "${ns_w[k]}" addr add "10.77.$k.2/24" dev "w$k"
  ip -n "$ns_srv" link set "s$k" up
  ip -n "${ns_w[k]}" link set "w$k" up
done

# ---- Faults.
# (a) worker 0 -> server: random loss on the receiver's input hook. The first rule counts
# every packet from worker 0, the second drops LOSS_PERCENT % of them.
ip netns exec "$ns_srv" nft -f - << EOF
table inet chaos {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 10.77.0.2 counter
    ip saddr 10.77.0.2 numgen random mod 100 < $LOSS_PERCENT counter drop
  }
}
EOF
# (b) worker 1 -> server: a bandwidth limit on worker 1's egress.
ip netns exec "${ns_w[1]}" tc qdisc add dev w1 root tbf rate "$TBF_RATE" burst "$TBF_BURST" \
  latency 50ms
# (c) worker 2: through delay_proxy in its own namespace (started once the server's port is
# known, below).

token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')

# ---- Server.
ip netns exec "$ns_srv" "$fedtrain" server --config "$config" --set rounds="$ROUNDS" \
  --set local.epochs=2 --set output.progress=none --set federation.round_timeout_s=60 --out "$work/deployed" \
  --listen 0.0.0.0:0 --token "$token" --workers 3 --join-timeout 60 \
  > "$logs/server.log" 2> "$logs/server.err.log" &
server_pid=$!
pids+=("$server_pid")

# Waits (polling every 50 ms, up to the deadline) until FILE has a line matching REGEX;
# fails early when PID has exited.
wait_for_line() {
  local file=$1 regex=$2 pid=$3 what=$4
  until [[ -f $file ]] && grep -qE "$regex" "$file"; do
    kill -0 "$pid" 2> /dev/null || fail "$what exited before it was ready"
    past_deadline && fail "$what not ready after ${DEADLINE_S} s"
    sleep 0.05
  done
}
wait_for_line "$logs/server.log" '^listening on ' "$server_pid" "fedtrain server"
listen_line=$(grep -m1 '^listening on ' "$logs/server.log")
port=${listen_line##*:}
[[ $port =~ ^[0-9]+$ ]] || fail "cannot read the port from '$listen_line'"

# ---- delay_proxy in worker 2's namespace.
port_file=$work/logs/proxy.port
rm -f "$port_file"
ip netns exec "${ns_w[2]}" "$proxy_bin" --listen 127.0.0.1:0 --to "10.77.2.1:$port" \
  --delay-ms "$DELAY_MS" --port-file "$port_file" > "$logs/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
wait_for_line "$port_file" '^[0-9]+$' "$proxy_pid" "delay_proxy"
proxy_port=$(< "$port_file")

# ---- Workers.
worker_addr=("10.77.0.1:$port" "10.77.1.1:$port" "127.0.0.1:$proxy_port")
worker_pids=()
for k in 0 1 2; do
  ip netns exec "${ns_w[k]}" "$fedtrain" worker --server "${worker_addr[k]}" --token "$token" \
    --name "netns-w$k" --connect-timeout 60 --reconnect-timeout 60 \
    > "$logs/worker$k.log" 2>&1 &
  worker_pids+=($!)
  pids+=($!)
done

# ---- Wait for the server and the workers to exit, up to the deadline.
remaining=("$server_pid" "${worker_pids[@]}")
while :; do
  still=()
  for p in "${remaining[@]}"; do
    if kill -0 "$p" 2> /dev/null; then still+=("$p"); fi
  done
  ((${#still[@]} == 0)) && break
  past_deadline && fail "the deployed run did not finish within ${DEADLINE_S} s"
  sleep 0.05
done
run_us=$((${EPOCHREALTIME/./} - start_us))
status=0
rc=0; wait "$server_pid" || rc=$?
((rc == 0)) || { echo "netns_test: fedtrain server exited $rc" >&2; status=1; }
for k in 0 1 2; do
  rc=0; wait "${worker_pids[k]}" || rc=$?
  ((rc == 0)) || { echo "netns_test: worker $k exited $rc" >&2; status=1; }
done
((status == 0)) || fail "a process of the deployed run failed"

# ---- Same model.
sim_model=$work/sim/synthetic_1_1_logreg/model.ftw
dep_model=$work/deployed/synthetic_1_1_logreg/model.ftw
[[ -f $sim_model ]] || fail "no $sim_model"
[[ -f $dep_model ]] || fail "no $dep_model"
cmp "$sim_model" "$dep_model" || fail "the deployed model differs from the simulation's"

# ---- The faults were real.
# nft prints "... counter packets N bytes B" for each rule; the first is all of worker 0's
# packets, the second the dropped ones.
ruleset=$(ip netns exec "$ns_srv" nft list table inet chaos)
mapfile -t counts < <(sed -n 's/.*counter packets \([0-9]*\) bytes.*/\1/p' <<< "$ruleset")
((${#counts[@]} == 2)) || fail "cannot read the nft counters from: $ruleset"
sent0=${counts[0]} dropped0=${counts[1]}
((dropped0 > 0)) || fail "the loss rule dropped nothing (of $sent0 packets from worker 0)"

tbf_stats=$(ip netns exec "${ns_w[1]}" tc -s qdisc show dev w1)
echo "$tbf_stats" > "$logs/tbf.stats"
tbf_pkts=$(sed -n 's/.*Sent [0-9]* bytes \([0-9]*\) pkt.*/\1/p' <<< "$tbf_stats" | head -n1)
tbf_over=$(sed -n 's/.*overlimits \([0-9]*\).*/\1/p' <<< "$tbf_stats" | head -n1)
[[ $tbf_stats == *"qdisc tbf"* ]] || fail "no tbf qdisc on worker 1's veth: $tbf_stats"
((${tbf_pkts:-0} > 0 && ${tbf_over:-0} > 0)) ||
  fail "worker 1's tbf qdisc never held a packet back (packets ${tbf_pkts:-?}," \
    "overlimits ${tbf_over:-?}): $tbf_stats"

# delay_proxy logs each connection when it closes; worker 2 is gone, so they close within
# DELAY_MS. Wait for at least one that carried bytes both ways.
proxy_bytes() {
  awk '/connection .* closed:/ { up += $(NF-5); down += $(NF-2) } END { print up+0, down+0 }' \
    "$logs/proxy.log"
}
while read -r up down < <(proxy_bytes) && ! ((up > 0 && down > 0)); do
  past_deadline && fail "delay_proxy forwarded no traffic (up $up, down $down bytes)"
  sleep 0.05
done
read -r proxy_up proxy_down < <(proxy_bytes)

total_us=$((${EPOCHREALTIME/./} - start_us))
secs() { printf '%d.%01d' $(($1 / 1000000)) $(($1 % 1000000 / 100000)); }
echo "netns_test: PASSED in $(secs "$total_us") s (setup, simulate and the deployed run of" \
  "$ROUNDS rounds: $(secs "$run_us") s); model.ftw identical to simulate's"
echo "netns_test: worker 0: $dropped0 of $sent0 packets dropped (${LOSS_PERCENT} % loss rule)"
echo "netns_test: worker 1: $tbf_pkts packets through tbf $TBF_RATE burst $TBF_BURST," \
  "$tbf_over held back (overlimits)"
echo "netns_test: worker 2: $proxy_up bytes up, $proxy_down bytes down through delay_proxy" \
  "(+$DELAY_MS ms each way)"
