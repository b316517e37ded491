#!/usr/bin/env bash
# ctl_stall.sh LIB PROGRAM
# UNBLOCK_STALL_MS: a thread spinning 300 ms twice at one site on its worker
# is reported once, by name, with its stack (read through the marker); then
# sleeping 300 ms twice in syscall(SYS_nanosleep) at one site is reported
# once, with the call and its stack (read from /proc: never signalled; the
# program's output shows that the sleep was not cut short by EINTR).
# UNBLOCK_TRACE writes its line every period. Without either variable the
# log stays empty.
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
[ "$n" = 1 ] || fail "expected one stall report of the spin, got $n"
grep -A4 'over 100 ms: running' "$dir/err" | grep -q '    #[0-9] spinner+0x[0-9a-f]* (ctl_stall) .*ctl_stall.c:[0-9]*$' ||
  fail "the spin's report has no stack naming spinner()"
n=$(grep -c 'stall: thread [0-9]* "spinner" kept worker 0 over 100 ms: in system call nanosleep' "$dir/err")
[ "$n" = 1 ] || fail "expected one stall report of the raw nanosleep, got $n"
grep -A4 'in system call nanosleep' "$dir/err" | grep -q '    #[0-9] raw_sleep_caller+0x[0-9a-f]* (ctl_stall) .*ctl_stall.c:[0-9]*$' ||
  fail "the system call's report has no stack naming raw_sleep_caller()"
[ "$(grep -c '^unblock.*stall:' "$dir/err")" = 2 ] || fail "expected two stall reports"
grep -q '^nanosleep:' "$dir/err" && fail "the raw nanosleep failed (a signal cut it short?)"
t=$(grep -c 'trace [0-9]*ms: workers=1 ' "$dir/err")
[ "$t" -ge 3 ] || fail "expected trace lines every 200 ms, got $t"
LD_PRELOAD=$lib "$prog" > "$dir/out" 2> "$dir/err" || fail "program failed"
[ ! -s "$dir/err" ] || fail "log not empty without the variables"
echo "ok: 2 stall reports with stacks, $t trace lines"
