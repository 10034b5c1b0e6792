#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for trying and testing deploy/slurm/ without a
# real cluster: munged, slurmctld and slurmd started by hand (no systemd), every file (config,
# munge key and socket, state, logs, pid files) under one state folder, nothing in /etc or
# /run. The node advertises more CPUs than the machine has (SlurmdParameters=config_overrides)
# so that a server plus a few workers fit in one allocation on a 2-core machine.
#
# usage: deploy/slurm/local_slurm.sh start|stop|status|env [STATE_DIR]
#   start   write the config and start the daemons; returns once the node is idle
#   stop    stop the daemons started from STATE_DIR (by the pids in their pid files)
#   status  exit 0 when the node answers and is up, 1 otherwise
#   env     print `export SLURM_CONF=...` for eval, to use sbatch/squeue/scontrol
# STATE_DIR defaults to $FEDTRAIN_SLURM_DIR or /tmp/fedtrain-slurm.
# Settings (environment): FEDTRAIN_SLURM_CPUS (CPUs the node advertises, default 8),
# FEDTRAIN_SLURM_PORT (slurmctld port; slurmd uses the next one; default 16817).
# Needs root and Debian's slurm-wlm and munge packages (scripts/install_deps.sh).
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|status|env [STATE_DIR]" >&2
  exit 2
}
[[ $# -ge 1 && $# -le 2 ]] || usage
cmd=$1
state=${2:-${FEDTRAIN_SLURM_DIR:-/tmp/fedtrain-slurm}}
case "$state" in /*) ;; *) state="$PWD/$state" ;; esac
conf="$state/slurm.conf"
cpus=${FEDTRAIN_SLURM_CPUS:-8}
port=${FEDTRAIN_SLURM_PORT:-16817}
node=$(hostname)

die() { echo "local_slurm: $*" >&2; exit 1; }

# pid_alive FILE: the pid in FILE names a running process.
pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { SLURM_CONF="$conf" sinfo -h -n "$node" -o %T 2>/dev/null | head -n 1; }

# stop_pid NAME FILE: SIGTERM the daemon in FILE, then wait up to 10 s for it to go.
stop_pid() {
  local name=$1 file=$2 pid i
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; ++i)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
    sleep 0.1
  done
  echo "local_slurm: $name (pid $pid) did not stop after 10 s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$file"
}

write_config() {
  cat > "$conf" <<EOF
# Written by deploy/slurm/local_slurm.sh: a single-node test cluster, daemons run as root.
ClusterName=fedtrain-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
# No cgroups: track processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule a submitted batch job at once (the default may hold it back up to 3 s).
SchedulerParameters=batch_sched_delay=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
# Keep finished jobs visible to scontrol for 10 minutes (there is no accounting database).
MinJobAge=600
# Trust the CPU count below rather than the hardware's.
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  [[ $(id -u) -eq 0 ]] || die "start needs root (the daemons run as root, munged as munge)"
  local tool
  for tool in munged slurmctld slurmd sinfo runuser; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install slurm-wlm munge"
  done
  id munge >/dev/null 2>&1 || die "no munge user: apt-get install munge"
  if pid_alive "$state/slurmctld.pid" || pid_alive "$state/slurmd.pid"; then
    die "already running from $state (run: $0 stop $state)"
  fi
  mkdir -p "$state/ctld" "$state/slurmd" "$state/munge" "$state/munge-key"
  # munged refuses keys in folders others can read or write, and wants its socket's folder
  # searchable by all (every user's slurm commands talk to it).
  chmod 0755 "$state"
  chown munge:munge "$state/munge" "$state/munge-key"
  chmod 0755 "$state/munge"
  chmod 0700 "$state/munge-key"
  if [[ ! -s $state/munge-key/munge.key ]]; then
    (umask 077 && head -c 1024 /dev/urandom > "$state/munge-key/munge.key")
  fi
  chown munge:munge "$state/munge-key/munge.key"
  chmod 0400 "$state/munge-key/munge.key"
  write_config

  if ! pid_alive "$state/munge/munged.pid"; then
    runuser -u munge -- munged --socket="$state/munge/munge.socket" \
      --key-file="$state/munge-key/munge.key" --pid-file="$state/munge/munged.pid" \
      --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed" \
      || die "munged did not start; see $state/munge/munged.log"
  fi
  # -i: start from an empty job state (this is a throwaway cluster).
  SLURM_CONF="$conf" slurmctld -i -f "$conf" \
    || die "slurmctld did not start; see $state/slurmctld.log"
  SLURM_CONF="$conf" slurmd -f "$conf" -N "$node" \
    || die "slurmd did not start; see $state/slurmd.log"

  local i s=""
  for ((i = 0; i < 300; ++i)); do  # up to 30 s
    s=$(node_state || true)
    case "$s" in
      idle*|mixed*|allocated*)
        echo "local_slurm: node $node up ($cpus CPUs, partition local); export SLURM_CONF=$conf"
        return 0 ;;
    esac
    pid_alive "$state/slurmctld.pid" || die "slurmctld exited; see $state/slurmctld.log"
    sleep 0.1
  done
  die "node $node not idle after 30 s (state: ${s:-no answer}); see $state/slurmctld.log and $state/slurmd.log"
}

stop() {
  stop_pid slurmd "$state/slurmd.pid"
  stop_pid slurmctld "$state/slurmctld.pid"
  stop_pid munged "$state/munge/munged.pid"
  echo "local_slurm: stopped ($state)"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status)
    [[ -f $conf ]] || die "no cluster configured in $state"
    s=$(node_state || true)
    case "$s" in
      idle*|mixed*|allocated*|completing*) echo "local_slurm: node $node $s"; exit 0 ;;
      *) echo "local_slurm: node $node ${s:-not answering}" >&2; exit 1 ;;
    esac ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) usage ;;
esac
