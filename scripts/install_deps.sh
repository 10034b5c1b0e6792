#!/usr/bin/env bash
# Installs fedtrain's build and run dependencies from Debian 12 (bookworm) packages.
# Idempotent: when every package is already installed it changes nothing and needs no
# network. Needs root (or sudo) for apt-get.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config ccache    # compiler and build tools
  clang                                      # the sanitizer / thread-safety test build
  libgrpc++-dev protobuf-compiler-grpc       # gRPC (the cluster transport) and its codegen
  libprotobuf-dev protobuf-compiler          # wire messages and the config schema
  libabsl-dev                                # Status, strings, Mutex, time
  libeigen3-dev                              # model maths
  librandom123-dev                           # counter-based RNG (Threefry)
  zlib1g-dev                                 # gzip-compressed IDX data files
  libcairo2-dev fonts-dejavu-core            # `fedtrain plot` (PNG/SVG) and its font
  libopenmpi-dev openmpi-bin                 # MPI launcher and collectives
  libgtest-dev libgmock-dev                  # unit tests
  libbenchmark-dev                           # micro-benchmarks
  dataset-fashion-mnist                      # Fashion-MNIST IDX files
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
