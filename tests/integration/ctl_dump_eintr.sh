#!/usr/bin/env bash
# ctl_dump_eintr.sh LIB CTL PROGRAM
# A dump reads a running thread's stack through a signal to its OS thread.
# If the thread entered a system call the kernel does not restart (ppoll)
# between the dump's look at /proc and the signal, that call fails with
# EINTR: a known limitation (README), which the library must detect and
# count (dump_spurious_eintr) rather than hide. 60 dumps of a thread that
# naps 10 us in a raw ppoll between short spins: every EINTR the program
# saw is counted, and its stdout equals the plain run's.
set -u
lib=$1 ctl=$2 prog=$3
dir=$(mktemp -d)
if [ "$(id -u)" != 0 ] && [ -z "${XDG_RUNTIME_DIR:-}" ]; then export UNBLOCK_CONTROL_DIR=$dir; fi
pid= holder=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$holder" ] && kill "$holder" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

run() {  # run OUT ERR DUMPS ENV...
  local out=$1 err=$2 dumps=$3
  shift 3
  rm -f "$dir/in"
  mkfifo "$dir/in"
  sleep 600 > "$dir/in" &
  holder=$!
  env "$@" "$prog" < "$dir/in" > "$out" 2> "$err" &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q ready "$out" 2>/dev/null && break
    sleep 0.1
  done
  grep -q ready "$out" || fail "not ready: $(cat "$out" "$err")"
  sleep 0.3
  for i in $(seq 1 "$dumps"); do
    timeout 30 "$ctl" dump "$pid" > /dev/null || fail "dump $i failed"
  done
  if [ "$dumps" -gt 0 ]; then
    timeout 30 "$ctl" stats "$pid" > "$dir/stats" || fail "stats failed"
  fi
  echo go > "$dir/in"
  kill "$holder" 2>/dev/null
  holder=
  wait "$pid" || fail "program failed: $(cat "$out" "$err")"
  pid=
}

run "$dir/plain.out" "$dir/plain.err" 0 X=1
# One worker, no hand-off of the napping thread (its ppoll is short).
run "$dir/out" "$dir/err" 60 UNBLOCK_WORKERS=1 UNBLOCK_HANDOFF_US=5000000 UNBLOCK_LOG=warn UNBLOCK_LOG_FILE="$dir/log" LD_PRELOAD="$lib"
seen=$(awk '$1 == "eintr" { print $2 }' "$dir/err")
counted=$(awk '$1 == "dump_spurious_eintr" { print $2 }' "$dir/stats")
[ -n "$counted" ] || fail "stats has no dump_spurious_eintr: $(cat "$dir/stats")"
echo "60 dumps: the program saw $seen EINTR from its ppoll; the library counted $counted"
[ "$seen" = "$counted" ] || fail "EINTRs seen ($seen) and counted ($counted) differ"
if [ "$seen" -gt 0 ]; then
  grep -q "interrupted a system call of the program" "$dir/log" || fail "no warning logged for $seen EINTRs"
fi
grep -v '^ready$' "$dir/plain.out" > "$dir/a"
grep -v '^ready$' "$dir/out" > "$dir/b"
diff "$dir/a" "$dir/b" || fail "output differs from the plain run"
echo "PASS"
