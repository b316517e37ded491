#!/usr/bin/env bash
# fiu_ctrl.sh LIB TICKER
# Live control with libfiu's own fiu-ctrl on a running program:
#   - UNBLOCK_FAULT_FIFO serves BASE-PID.in/.out, mode 0600, from an OS
#     thread of its own ("unblock-faults"), and sweeps stale FIFOs of dead
#     processes (only FIFOs, only dead pids) when it starts;
#   - enable/disable take effect at once; a hung call resumes on disable;
#     unblock's extensions (errno=, every=) work through fiu-ctrl; a bad
#     command gets -1;
#   - the FIFOs are removed when the program exits.
set -u
lib=$1 prog=$2
command -v fiu-ctrl >/dev/null || { echo "fiu-ctrl not installed: skipped"; exit 77; }
dir=$(mktemp -d); pid= guard=
cleanup() { [ -n "$guard" ] && kill "$guard" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- program output (tail):"; tail -5 "$dir/out"; exit 1; }
wait_for() { # seconds, then a condition
  local t=$(( $1 * 10 )); shift
  for _ in $(seq "$t"); do eval "$@" && return 0; sleep 0.1; done
  return 1
}
lines() { wc -l <"$dir/out"; }
ctl() { timeout 10 fiu-ctrl -f "$dir/ctl" -c "$1" "$pid"; }

# Stale: a FIFO of a dead process (removed), a regular file with the same
# kind of name and a FIFO of a live process (both kept).
dead=4194303; while kill -0 "$dead" 2>/dev/null; do dead=$((dead - 1)); done
mkfifo "$dir/ctl-$dead.in" "$dir/ctl-$dead.out"
touch "$dir/ctl-$((dead - 1)).in"
mkfifo "$dir/ctl-$$.in"

timeout -k 2 60 env STOP_FILE="$dir/stop" UNBLOCK_FAULT_FIFO="$dir/ctl" LD_PRELOAD="$lib" "$prog" \
  >"$dir/out" 2>"$dir/err" &
guard=$!
wait_for 5 'pid=$(pgrep -P "$guard" | head -1); [ -n "$pid" ] && [ -p "$dir/ctl-$pid.in" ] && [ -p "$dir/ctl-$pid.out" ]' ||
  fail "no FIFO for the program"
[ "$(stat -c %a "$dir/ctl-$pid.in")" = 600 ] && [ "$(stat -c %a "$dir/ctl-$pid.out")" = 600 ] || fail "FIFO mode is not 0600"
wait_for 5 '[ ! -e "$dir/ctl-$dead.in" ]' || fail "stale FIFO of dead pid $dead not removed"
[ -e "$dir/ctl-$((dead - 1)).in" ] || fail "a regular file was removed"
[ -p "$dir/ctl-$$.in" ] || fail "a live process's FIFO was removed"
servers=$(grep -l '^unblock-faults$' /proc/"$pid"/task/*/comm 2>/dev/null | wc -l)
[ "$servers" = 1 ] || fail "$servers FIFO server threads"
echo "FIFO $dir/ctl-$pid.in: 0600, served by one 'unblock-faults' thread; stale FIFO swept"

wait_for 5 '[ "$(lines)" -ge 5 ]' || fail "the program does not tick"
ctl 'enable name=posix/io/rw/read,failinfo=5' || fail "fiu-ctrl enable"
n=$(lines); wait_for 5 '[ "$(tail -n +$((n + 1)) "$dir/out" | grep -c "EIO")" -ge 3 ]' || fail "no EIO after enable"
ctl 'disable name=posix/io/rw/read'
n=$(lines); wait_for 5 '[ "$(tail -n +$((n + 2)) "$dir/out" | grep -c " ok$")" -ge 3 ]' || fail "still failing after disable"
echo "enable/disable through fiu-ctrl: EIO, then ok"

ctl 'enable name=posix/io/rw/read,errno=ENOMEM,every=2'
n=$(lines); wait_for 5 '[ "$(tail -n +$((n + 2)) "$dir/out" | grep -c "ENOMEM")" -ge 3 ]' || fail "no ENOMEM"
ctl 'disable name=posix/io/rw/read'
echo "unblock's extensions through fiu-ctrl: errno=ENOMEM on every 2nd read"

ctl 'enable name=unblock/hang/posix/io/rw/read'
sleep 0.3; n=$(lines); sleep 0.5
[ "$(lines)" -le $((n + 1)) ] || fail "the program kept reading while hung"
ctl 'disable name=unblock/hang/posix/io/rw/read'
wait_for 5 '[ "$(lines)" -ge $((n + 5)) ]' || fail "the hung read did not resume on disable"
echo "hang until disabled: no progress for 0.5 s, resumed on disable"

out=$(ctl 'enable name=x,colour=red' 2>&1)
echo "$out" | grep -q 'returned error' || fail "a bad command was not refused ($out)"
echo "a bad command is answered -1"

touch "$dir/stop"
wait "$guard" 2>/dev/null; guard=
wait_for 5 '! ls "$dir"/ctl-*.out 2>/dev/null | grep -v "ctl-$$" | grep -q .' || fail "FIFOs left after exit: $(ls "$dir")"
echo "FIFOs removed at exit"
