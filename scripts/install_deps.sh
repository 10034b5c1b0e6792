#!/usr/bin/env bash
# Installs fedtrain's dependencies from Debian 12 (bookworm) packages.
#   scripts/install_deps.sh          the runtime set: what building and running fedtrain needs
#                                    (the main job, scripts/main_job.sh)
#   scripts/install_deps.sh --dev    the runtime set plus what the tests and development need
#                                    (scripts/test.sh, CI)
#   scripts/install_deps.sh --list [--dev]   print the package names and exit
# Idempotent: when every package is already installed it changes nothing and needs no
# network. Needs root (or sudo) for apt-get. No package of the runtime set ships a service;
# while installing, a policy-rc.d that refuses every service start is put in place (when none
# exists), so even a dependency with a service cannot start one.
set -euo pipefail

RUNTIME_PACKAGES=(
  build-essential cmake pkg-config           # compiler and build tools
  libgrpc++-dev protobuf-compiler-grpc       # gRPC (the cluster transport) and its codegen
  libprotobuf-dev protobuf-compiler          # wire messages and the config schema
  libabsl-dev                                # Status, strings, Mutex, time
  libcli11-dev                               # CLI11: the command-line flag parser (header-only)
  libeigen3-dev                              # model maths
  librandom123-dev                           # counter-based RNG (Threefry)
  zlib1g-dev                                 # gzip-compressed IDX data files
  libcairo2-dev fonts-dejavu-core            # `fedtrain plot` (PNG/SVG) and its font
  libopenmpi-dev openmpi-bin                 # `fedtrain mpi`: MPI process launch (mpirun)
  dataset-fashion-mnist                      # Fashion-MNIST IDX files
)

DEV_PACKAGES=(
  ccache                                     # fast rebuilds
  clang                                      # the sanitizer / thread-safety test build, libFuzzer
  libgtest-dev libgmock-dev                  # unit and integration tests
  openssl                                    # deploy/make_certs.sh (TLS test certificates)
  iproute2 nftables                          # tests/integration/netns_test.sh: namespaces, veth, tc tbf, packet loss
  slurm-wlm                                  # deploy/slurm: slurmctld/slurmd/sbatch for the local Slurm test
  munge                                      # deploy/slurm: Slurm's authentication daemon (local_slurm.sh)
  python3                                    # tests/layering/check_layering.py (the include-order test)
  python3-yaml                               # deploy/k8s/validate.py: reads the manifests
  python3-kubernetes                         # deploy/k8s/validate.py: the Kubernetes API model classes
)

dev=0 list=0
for a in "$@"; do
  case "$a" in
    --dev) dev=1 ;;
    --list) list=1 ;;
    *) echo "usage: scripts/install_deps.sh [--dev] [--list]" >&2; exit 2 ;;
  esac
done
PACKAGES=("${RUNTIME_PACKAGES[@]}")
if [ "$dev" = 1 ]; then PACKAGES+=("${DEV_PACKAGES[@]}"); fi
if [ "$list" = 1 ]; then printf '%s\n' "${PACKAGES[@]}"; exit 0; fi

# breast_cancer.csv (docs/compression.md §4.3/§4.4, `fedtrain ef-validate`). Debian ships it
# only inside python3-sklearn, which pulls ~70 packages: download that one .deb and extract
# just the CSV. Skipped when the file is already there.
BREAST_CANCER_CSV=/usr/local/share/fedtrain/datasets/breast_cancer.csv
install_breast_cancer_csv() {
  if [ -s "$BREAST_CANCER_CSV" ]; then
    echo "install_deps: $BREAST_CANCER_CSV present"
    return 0
  fi
  local sudo="" tmp member="./usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv"
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  tmp=$(mktemp -d)
  # apt-get download runs as the calling user and writes into the current directory.
  if ! (cd "$tmp" && apt-get download -q python3-sklearn >/dev/null 2>&1); then
    $sudo apt-get update -q
    (cd "$tmp" && apt-get download -q python3-sklearn)
  fi
  dpkg-deb --fsys-tarfile "$tmp"/python3-sklearn_*.deb | tar -x -C "$tmp" "$member"
  $sudo install -D -m 0644 "$tmp/$member" "$BREAST_CANCER_CSV"
  rm -rf "$tmp"
  echo "install_deps: installed $BREAST_CANCER_CSV"
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  install_breast_cancer_csv
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# invoke-rc.d consults /usr/sbin/policy-rc.d; exit status 101 means "action forbidden", so no
# package's maintainer script starts a service during this install. Ours only if none exists.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# fedtrain install_deps.sh: no service starts while installing\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
install_breast_cancer_csv
