#!/usr/bin/env bash
# ctl_stress.sh LIB CTL PROGRAM RUNS
# A program whose 2,000 threads hand mutexes, conditions, semaphores and a
# barrier to each other (tests/preload/sync/stress.c), dumped back to back
# for its whole run, RUNS times: every run's output must equal the plain
# run's (a wake lost while a dump held a thread would hang it or change it).
set -u
lib=$1 ctl=$2 prog=$3 runs=${4:-20}
dir=$(mktemp -d)
# Not root (no /run/unblock) and no XDG_RUNTIME_DIR: a private directory of
# our own (mktemp makes it 0700); unblock-ctl finds it in the environment.
if [ "$(id -u)" != 0 ] && [ -z "${XDG_RUNTIME_DIR:-}" ]; then export UNBLOCK_CONTROL_DIR=$dir; fi
trap 'rm -rf "$dir"' EXIT
"$prog" > "$dir/plain" 2>&1 || { echo "plain run failed"; exit 1; }
dumps=0
for i in $(seq 1 "$runs"); do
  LD_PRELOAD=$lib "$prog" > "$dir/out" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    "$ctl" dump "$pid" > /dev/null 2>&1 && dumps=$((dumps + 1))
  done
  wait "$pid" || { echo "run $i failed"; cat "$dir/out"; exit 1; }
  diff "$dir/plain" "$dir/out" > /dev/null || { echo "run $i: output differs"; diff "$dir/plain" "$dir/out" | head; exit 1; }
done
echo "$runs runs, $dumps dumps answered during them, output always as plain"
[ "$dumps" -gt 0 ]
