#!/usr/bin/env bash
# ctl_stall.sh LIB PROGRAM
# UNBLOCK_STALL_MS: a thread spinning 300 ms twice at one site on its worker
# is reported once, by name; UNBLOCK_TRACE writes its line every period.
# Without either variable the log stays empty.
set -u
lib=$1 prog=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/err"; exit 1; }
UNBLOCK_WORKERS=1 UNBLOCK_STALL_MS=100 UNBLOCK_TRACE=200ms UNBLOCK_STATS="$dir/stats" LD_PRELOAD=$lib \
  "$prog" > "$dir/out" 2> "$dir/err" || fail "program failed"
[ "$(cat "$dir/out")" = done ] || fail "output: $(cat "$dir/out")"
cat "$dir/err"
n=$(grep -c 'stall: thread [0-9]* "spinner" kept worker 0 over 100 ms: running' "$dir/err")
[ "$n" = 1 ] || fail "expected one stall report, got $n"
t=$(grep -c 'trace [0-9]*ms: workers=1 ' "$dir/err")
[ "$t" -ge 3 ] || fail "expected trace lines every 200 ms, got $t"
LD_PRELOAD=$lib "$prog" > "$dir/out" 2> "$dir/err" || fail "program failed"
[ ! -s "$dir/err" ] || fail "log not empty without the variables"
echo "ok: 1 stall report, $t trace lines"
