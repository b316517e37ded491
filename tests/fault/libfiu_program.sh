#!/usr/bin/env bash
# libfiu_program.sh LIB PROG
# The program's own libfiu calls keep libfiu's semantics under unblock
# (failnum/failinfo, wildcards, onetime, external callbacks, disable,
# enable_random at its probability); enable_random draws from
# UNBLOCK_FAULT_SEED (same seed, same count); and a POSIX point the program
# enables reaches unblock's read hook.
set -u
lib=$1 prog=$2
plain=$(timeout -k 2 20 "$prog") || { echo "plain run failed"; exit 1; }
u1=$(timeout -k 2 20 env UNBLOCK_FAULT_SEED=5 LD_PRELOAD="$lib" "$prog") || { echo "preloaded run failed"; exit 1; }
u2=$(timeout -k 2 20 env UNBLOCK_FAULT_SEED=5 LD_PRELOAD="$lib" "$prog") || { echo "preloaded run failed"; exit 1; }
echo "$u1"
strip() { grep -v -e '^random count' -e '^read with'; }
[ "$(echo "$plain" | strip)" = "$(echo "$u1" | strip)" ] || { echo "FAIL: libfiu semantics differ:"; diff <(echo "$plain") <(echo "$u1"); exit 1; }
echo "$plain" | grep -q '^read with posix/io/rw/read enabled: ok' || { echo "FAIL: plain libfiu faulted read()?"; exit 1; }
echo "$u1" | grep -q '^read with posix/io/rw/read enabled: EIO' || { echo "FAIL: unblock's read hook missed the program's rule"; exit 1; }
[ "$(echo "$u1" | grep '^random count')" = "$(echo "$u2" | grep '^random count')" ] || { echo "FAIL: random count differs under one seed"; exit 1; }
echo "same libfiu semantics as plain; the program's own posix rule reached unblock's hook; seeded random count stable"
