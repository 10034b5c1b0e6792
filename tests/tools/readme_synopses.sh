#!/usr/bin/env bash
# The README's CLI synopses match the binary: the usage line of every command's help (the
# first line of `fedtrain help CMD`, less "usage: ") appears verbatim in README.md, and
# `fedtrain help CMD` prints the same text as `fedtrain CMD --help`.
#   tests/tools/readme_synopses.sh FEDTRAIN_BIN README.md
set -euo pipefail
bin=$1 readme=$2 fail=0
for cmd in simulate plot ef-validate aggregate privacy server worker mpi; do
  help=$("$bin" help "$cmd")
  [ "$help" = "$("$bin" "$cmd" --help)" ] || { echo "help $cmd differs from $cmd --help"; fail=1; }
  line=$(printf '%s\n' "$help" | head -n 1 | sed 's/^usage: //')
  case "$line" in *"$cmd"*) ;; *) echo "help $cmd: first line '$line' is not its usage"; fail=1 ;; esac
  grep -qxF "$line" "$readme" || { echo "README.md lacks the synopsis: $line"; fail=1; }
done
# An unknown command name after help is a usage error.
if "$bin" help no-such-command > /dev/null 2>&1; then echo "help no-such-command exited 0"; fail=1; fi
exit $fail
