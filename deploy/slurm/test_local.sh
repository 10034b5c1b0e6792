#!/usr/bin/env bash
# End-to-end test of deploy/slurm/fedtrain.sbatch on a throwaway single-node Slurm cluster
# (deploy/slurm/local_slurm.sh) on this machine:
#   1. the script refuses bad input: no arguments (usage, status 2), run outside a job;
#   2. a job with 1 server + 2 workers on examples/synthetic_logreg.json (2 rounds) completes
#      with exit code 0:0, both workers join and model.ftw is in the run folder;
#   3. the same over mutual TLS (certificates from deploy/make_certs.sh);
#   4. a job with one task (no room for a worker) fails.
# usage: deploy/slurm/test_local.sh FEDTRAIN_BIN WORK_DIR
# WORK_DIR is emptied and holds the cluster's state, job outputs and run folders. Exits 0 on
# success, 1 on failure, 77 (skipped) when not run as root. Needs slurm-wlm, munge, openssl.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 FEDTRAIN_BIN WORK_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
bin=$(realpath "$1")
work=$2
[[ -x $bin ]] || { echo "test_local: $1 is not an executable" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
  echo "test_local: SKIPPED: needs root to start slurmctld/slurmd/munged" >&2
  exit 77
fi
for tool in munged slurmctld slurmd sbatch scontrol openssl; do
  command -v "$tool" >/dev/null \
    || { echo "test_local: $tool not found (scripts/install_deps.sh installs slurm-wlm, munge, openssl)" >&2; exit 1; }
done

fail() { echo "test_local: FAIL: $*" >&2; exit 1; }

# Daemons of an earlier run that was killed before its cleanup (e.g. a CTest timeout) still
# use the old state folder: stop them before removing it.
if [[ -f $work/slurm/slurm.conf ]]; then
  bash "$here/local_slurm.sh" stop "$work/slurm" >/dev/null 2>&1 || true
fi
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
state="$work/slurm"

# Two free loopback ports next to each other for slurmctld and slurmd (several clusters, e.g.
# a developer's and this test's, may run side by side).
port_free() { ! (exec 2>/dev/null; echo > "/dev/tcp/127.0.0.1/$1"); }
port=""
for ((i = 0; i < 50; ++i)); do
  p=$((20000 + RANDOM % 20000))
  if port_free "$p" && port_free "$((p + 1))"; then port=$p; break; fi
done
[[ -n $port ]] || fail "no two free ports found"

cleanup() { bash "$here/local_slurm.sh" stop "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
FEDTRAIN_SLURM_PORT=$port FEDTRAIN_SLURM_CPUS=8 bash "$here/local_slurm.sh" start "$state"
export SLURM_CONF="$state/slurm.conf"
export FEDTRAIN_BIN="$bin"
unset FEDTRAIN_TOKEN FEDTRAIN_WORKERS FEDTRAIN_PORT FEDTRAIN_TLS_DIR FEDTRAIN_WORKER_ARGS

# 1. Bad input, before any job.
set +e
msg=$(bash "$here/fedtrain.sbatch" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $msg == usage:* ]] || fail "no arguments: want usage and status 2, got $rc: $msg"
set +e
msg=$(env -u SLURM_JOB_ID bash "$here/fedtrain.sbatch" "$src/examples/synthetic_logreg.json" "$work/x" 2>&1); rc=$?
set -e
[[ $rc -eq 2 && $msg == *"not inside a Slurm job"* ]] || fail "outside a job: want status 2, got $rc: $msg"

# wait_job ID: poll until the job leaves the queue (at most 60 s); prints "STATE EXITCODE".
wait_job() {
  local id=$1 i line st ec
  for ((i = 0; i < 600; ++i)); do
    line=$(scontrol show job -o "$id" 2>/dev/null || true)
    st=$(grep -o 'JobState=[A-Z_]*' <<< "$line" | cut -d= -f2 || true)
    ec=$(grep -o ' ExitCode=[0-9:]*' <<< "$line" | cut -d= -f2 || true)
    case "$st" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        echo "$st $ec"; return 0 ;;
    esac
    sleep 0.1
  done
  scancel "$id" 2>/dev/null || true
  echo "TIMEOUT_WAITING ?"
}

# submit NAME NTASKS [env assignments...]: sbatch the script from $work/NAME; prints the job id.
submit() {
  local name=$1 ntasks=$2
  shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && env "$@" sbatch --parsable --ntasks="$ntasks" \
     --output="$work/$name/job.out" "$here/fedtrain.sbatch" \
     "$src/examples/synthetic_logreg.json" "$work/$name/out" \
     --set rounds=2 --set output.progress=none)
}

# check_run NAME ID: the job completed with 0:0, two workers joined, model.ftw written.
check_run() {
  local name=$1 id=$2 result
  result=$(wait_job "$id")
  [[ $result == "COMPLETED 0:0" ]] || { cat "$work/$name/job.out" >&2 || true; fail "$name: job $id ended $result, want COMPLETED 0:0"; }
  [[ -f $work/$name/out/synthetic_1_1_logreg/model.ftw ]] \
    || { cat "$work/$name/job.out" >&2; fail "$name: no model.ftw in $work/$name/out/synthetic_1_1_logreg"; }
  [[ $(grep -c 'fedtrain worker: joined' "$work/$name/job.out") -eq 2 ]] \
    || { cat "$work/$name/job.out" >&2; fail "$name: want 2 workers joined"; }
  echo "test_local: $name: job $id COMPLETED 0:0, run folder $work/$name/out/synthetic_1_1_logreg"
}

# 2. Plain gRPC, 1 server + 2 workers.
id=$(submit plain 3)
check_run plain "$id"

# 3. Mutual TLS: the server's certificate holds 127.0.0.1, the node's NodeAddr here.
bash "$src/deploy/make_certs.sh" "$work/certs" >/dev/null
id=$(submit tls 3 FEDTRAIN_TLS_DIR="$work/certs")
check_run tls "$id"
grep -q 'listening on' "$work/tls/job.out" || fail "tls: no 'listening on' line"

# 4. One task: no room for a worker; the job must fail without starting the server.
id=$(submit one_task 1)
result=$(wait_job "$id")
[[ $result == FAILED* ]] || fail "one_task: job $id ended $result, want FAILED"
grep -q 'need at least 1 worker' "$work/one_task/job.out" \
  || { cat "$work/one_task/job.out" >&2; fail "one_task: want the 'need at least 1 worker' error"; }
echo "test_local: one_task: job $id FAILED as it should"
echo "test_local: all passed"
