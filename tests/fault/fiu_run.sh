#!/usr/bin/env bash
# fiu_run.sh LIB TICKER
# unblock stacked under libfiu's fiu-run, the way FIELD_NOTES shows:
#   fiu-run [-x] -c CMD -f BASE sh -c 'LD_PRELOAD="$LD_PRELOAD LIB" exec PROG'
#   - fiu-run's -c commands (FIU_ENABLE, applied by fiu_run_preload through
#     libfiu's fiu_rc_string - unblock's) reach unblock's points;
#   - fiu-run's FIFO is served once, by unblock's thread (fiu_rc_fifo is
#     unblock's too), and fiu-ctrl drives it;
#   - with -x (fiu_posix_preload) unblock warns on stderr.
set -u
lib=$1 prog=$2
command -v fiu-run >/dev/null || { echo "fiu-run not installed: skipped"; exit 77; }
dir=$(mktemp -d); guard=
cleanup() { [ -n "$guard" ] && kill "$guard" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- program output (tail):"; tail -5 "$dir/out"; cat "$dir/err"; exit 1; }
wait_for() {
  local t=$(( $1 * 10 )); shift
  for _ in $(seq "$t"); do eval "$@" && return 0; sleep 0.1; done
  return 1
}
lines() { wc -l <"$dir/out"; }

timeout -k 2 60 env STOP_FILE="$dir/stop" \
  fiu-run -f "$dir/ctl" -c 'enable name=posix/io/rw/read,failinfo=5' \
  sh -c "LD_PRELOAD=\"\$LD_PRELOAD $lib\" exec $prog" >"$dir/out" 2>"$dir/err" &
guard=$!
wait_for 5 'pid=$(ls "$dir" | sed -n "s/^ctl-\([0-9]*\)\.in$/\1/p" | head -1); [ -n "$pid" ]' || fail "no FIFO"
wait_for 5 '[ "$(grep -c " -1 EIO$" "$dir/out")" -ge 3 ]' || fail "fiu-run's -c did not reach unblock's point"
echo "fiu-run -c 'enable name=posix/io/rw/read,failinfo=5': the program's reads fail with EIO"
servers=$(grep -l '^unblock-faults$' /proc/"$pid"/task/*/comm 2>/dev/null | wc -l)
[ "$servers" = 1 ] || fail "$servers unblock FIFO threads (want 1)"
[ "$(ls "$dir" | grep -c '\.in$')" = 1 ] || fail "more than one FIFO: $(ls "$dir")"
timeout 10 fiu-ctrl -f "$dir/ctl" -c 'disable name=posix/io/rw/read' "$pid"
n=$(lines); wait_for 5 '[ "$(tail -n +$((n + 2)) "$dir/out" | grep -c " ok$")" -ge 3 ]' || fail "fiu-ctrl disable"
echo "one FIFO, one server thread; fiu-ctrl disable works on it"
touch "$dir/stop"; wait "$guard" 2>/dev/null; guard=
grep -q 'fiu_posix_preload' "$dir/err" && fail "warned about fiu_posix_preload without -x"

rm -f "$dir/stop"
timeout -k 2 30 env STOP_FILE="$dir/stop" fiu-run -x -f "" -c 'enable name=posix/io/rw/read,failinfo=5' \
  sh -c "LD_PRELOAD=\"\$LD_PRELOAD $lib\" exec $prog" >"$dir/out" 2>"$dir/err" &
guard=$!
wait_for 5 'grep -q "fiu_posix_preload.so is loaded with unblock" "$dir/err"' || fail "no warning with fiu-run -x"
touch "$dir/stop"; wait "$guard" 2>/dev/null; guard=
echo "fiu-run -x: unblock warns: $(head -c 100 "$dir/err")..."
