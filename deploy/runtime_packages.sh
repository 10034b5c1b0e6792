#!/usr/bin/env bash
# Prints the Debian packages holding the shared libraries that a binary loads, one per line,
# sorted. deploy/Dockerfile runs it in its build stage so that the runtime stage installs
# exactly what the fedtrain binary needs.
# usage: deploy/runtime_packages.sh BINARY
# Fails (status 1) when a library is not found or no installed package holds it.
set -euo pipefail
if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
  echo "usage: $0 BINARY" >&2
  exit 2
fi
bin=$1
[[ -f $bin ]] || { echo "runtime_packages: $bin: no such file" >&2; exit 2; }
command -v ldd >/dev/null && command -v dpkg-query >/dev/null \
  || { echo "runtime_packages: needs ldd and dpkg-query (a Debian system)" >&2; exit 1; }

deps=$(ldd "$bin") || { echo "runtime_packages: ldd $bin failed" >&2; exit 1; }
if grep -q 'not found' <<< "$deps"; then
  echo "runtime_packages: $bin needs libraries that are not installed:" >&2
  grep 'not found' <<< "$deps" >&2
  exit 1
fi

# With merged /usr, dpkg knows a library under the path its package shipped it at (/lib/...
# or /usr/lib/...), which may not be the path ldd printed: ask for both forms of the path
# and of its resolved symlink, all in one dpkg-query call (each call reads every file list).
mapfile -t libs < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<< "$deps")
declare -A cands_of=()
all=()
for lib in "${libs[@]}"; do
  real=$(readlink -f "$lib")
  c=()
  for cand in "$lib" "/usr$lib" "${lib#/usr}" "$real" "/usr$real" "${real#/usr}"; do
    [[ $cand == /* ]] && c+=("$cand")
  done
  cands_of[$lib]="${c[*]}"
  all+=("${c[@]}")
done
declare -A owners=()
# Lines are "pkg1:amd64, pkg2: /path"; missing paths go to stderr.
while IFS= read -r line; do
  path=${line##*: }
  owners[$path]=$(sed 's/: [^:]*$//; s/, /\n/g' <<< "$line" | cut -d: -f1)
done < <(dpkg-query -S "${all[@]}" 2>/dev/null || true)

pkgs=()
for lib in "${libs[@]}"; do
  found=""
  for cand in ${cands_of[$lib]}; do
    if [[ -n ${owners[$cand]:-} ]]; then found=${owners[$cand]}; break; fi
  done
  if [[ -z $found ]]; then
    echo "runtime_packages: no installed package holds $lib" >&2
    exit 1
  fi
  pkgs+=($found)
done
# Libraries of the base image (libc6, libstdc++6, ...) are listed too: installing them there
# changes nothing.
printf '%s\n' "${pkgs[@]}" | sort -u
