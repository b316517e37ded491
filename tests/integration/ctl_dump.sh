#!/usr/bin/env bash
# ctl_dump.sh LIB CTL PROGRAM PER_KIND [spin|10k]
# unblock-ctl dump of a program (ctl_waits) whose threads wait in every
# kind of wait: every thread's line must name what that thread is known to
# wait for (the program writes the expectations), --json must parse and
# agree, stats must count the threads, another uid must be refused, and the
# program's output after the dumps must equal its output without the
# library. "spin": one worker, no hand-off possible, a thread spinning on
# it: the dump must still answer. "10k": prints the dump's time and how
# long the registry lock was held.
set -u
lib=$1 ctl=$2 prog=$3 per_kind=$4 mode=${5:-}
dir=$(mktemp -d)
# Not root (no /run/unblock) and no XDG_RUNTIME_DIR: a private directory of
# our own (mktemp makes it 0700); unblock-ctl finds it in the environment.
if [ "$(id -u)" != 0 ] && [ -z "${XDG_RUNTIME_DIR:-}" ]; then export UNBLOCK_CONTROL_DIR=$dir; fi
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "${holder:-}" ] && kill "$holder" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

spin_arg=
env_extra=()
if [ "$mode" = spin ]; then
  spin_arg=spin
  env_extra=(UNBLOCK_WORKERS=1 UNBLOCK_MAX_THREADS=0)
fi

# The reference: the program without the library.
printf 'go\n' | "$prog" "$per_kind" "$dir/expect.plain" $spin_arg > "$dir/out.plain" 2>&1 || fail "plain run failed"

mkfifo "$dir/in"
sleep 600 > "$dir/in" &  # holds the FIFO open until we write "go"
holder=$!
env "${env_extra[@]}" UNBLOCK_DUMP_SIGNAL=USR2 UNBLOCK_LOG_FILE="$dir/log" LD_PRELOAD="$lib" "$prog" "$per_kind" "$dir/expect" $spin_arg < "$dir/in" > "$dir/out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q ready "$dir/out" 2>/dev/null && break
  sleep 0.1
done
grep -q ready "$dir/out" || fail "program not ready: $(cat "$dir/out")"

t0=$(date +%s%N)
timeout 30 "$ctl" dump "$pid" > "$dir/dump" || fail "dump failed"
t1=$(date +%s%N)
timeout 30 "$ctl" dump "$pid" --json > "$dir/dump.json" || fail "dump --json failed"
timeout 30 "$ctl" stats "$pid" > "$dir/stats" || fail "stats failed"
timeout 30 "$ctl" stats "$pid" --json > "$dir/stats.json" || fail "stats --json failed"
head -3 "$dir/dump"
echo "dump: $(( (t1 - t0) / 1000000 )) ms, $(wc -l < "$dir/dump") lines"

# Every thread's line names its wait.
missing=$(awk '
  NR == FNR { if ($1 == "thread") { tid = $2; lines[tid] = $0 } next }
  {
    tid = $1; name = $2; what = $0; sub(/^[^ ]+ [^ ]+ /, "", what)
    want = "\"" name "\": " what
    if (!(tid in lines) || index(lines[tid], want) == 0) { print tid " " name ": want [" what "] got [" lines[tid] "]"; bad++ }
  }
  END { exit bad > 0 }' "$dir/dump" "$dir/expect") || fail "dump lines differ from the known waits:
$(echo "$missing" | head -20)"
echo "all $(wc -l < "$dir/expect") waiting threads dumped as expected"

# Stacks: the mutex waiters' group shows run() at its pthread_mutex_lock
# line (ctl_waits is built with debug information).
src=$(dirname "$0")/ctl_waits.c
line=$(grep -n 'pthread_mutex_lock(&g_mutex);' "$src" | head -1 | cut -d: -f1)
grep -A1 'threads\? parked: mutex$' "$dir/dump" | grep -q "#0 run+0x[0-9a-f]* (ctl_waits) .*ctl_waits.c:$line$" ||
  fail "no stack with run() at ctl_waits.c:$line for the mutex waiters: $(grep -A2 'parked: mutex$' "$dir/dump")"
echo "stacks: mutex waiters at ctl_waits.c:$line"

if [ "$mode" = spin ]; then
  grep -q '"w-spin": on OS thread' "$dir/dump" || fail "the spinning thread is not shown running"
fi

python3 - "$dir/dump.json" "$dir/expect" "$dir/stats.json" <<'EOF' || fail "JSON dump or stats disagree"
import json, sys
d = json.load(open(sys.argv[1]))
st = json.load(open(sys.argv[3]))
by_id = {f["id"]: f for f in d["fibers"]}
for line in open(sys.argv[2]):
    tid, name, what = line.rstrip("\n").split(" ", 2)
    f = by_id[int(tid)]
    assert f["name"] == name and f["state"] == "parked", f
    kind = what.split(" ")[0]
    assert f["wait"] == kind, (f, kind)
    assert f["waited_s"] >= 0
    if kind in ("recv", "accept", "read"):
        assert what.split(" ")[1] == "fd=%d" % f["fd"], (f, what)
assert st["threads_parked"] >= len(by_id) - 3, st
print("json: %d threads, registry held %.1f us" % (len(d["fibers"]), d["registry_held_us"]))
EOF

if [ "$mode" = 10k ]; then
  held=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["registry_held_us"])' "$dir/dump.json")
  echo "10k: $(wc -l < "$dir/expect") threads, dump in $(( (t1 - t0) / 1000000 )) ms, registry lock held ${held} us"
fi

# Another uid is refused (the directory is the owner's alone; the server
# also checks SO_PEERCRED).
if command -v setpriv > /dev/null && [ "$(id -u)" = 0 ]; then
  if setpriv --reuid=65534 --regid=65534 --clear-groups "$ctl" dump "$pid" > "$dir/other" 2>&1; then
    fail "another uid got a dump: $(head -3 "$dir/other")"
  fi
  grep -q "permission denied" "$dir/other" || fail "refusal does not say why: $(cat "$dir/other")"
  echo "uid 65534 refused: $(cat "$dir/other")"
fi

# UNBLOCK_DUMP_SIGNAL=USR2: the signal writes a dump to the log instead of
# reaching the program (whose default action would end it).
if [ -z "$mode" ]; then
  kill -USR2 "$pid"
  for _ in $(seq 1 100); do
    grep -q 'OS threads:' "$dir/log" 2>/dev/null && break
    sleep 0.1
  done
  first=$(head -1 "$dir/expect")
  want="thread ${first%% *} \"$(echo "$first" | cut -d' ' -f2)\": $(echo "$first" | cut -d' ' -f3-)"
  grep -qF "$want" "$dir/log" || fail "no dump in the log after SIGUSR2 (want [$want]): $(head -5 "$dir/log")"
  kill -0 "$pid" || fail "SIGUSR2 reached the program"
  echo "UNBLOCK_DUMP_SIGNAL: dump of $(grep -c '  thread [0-9]' "$dir/log") threads in the log"
fi

# Fault control on the same channel: a rule added, listed, removed.
if [ -z "$mode" ]; then
  "$ctl" faults "$pid" add 'enable name=posix/io/net/send,failinfo=104,port=1' > "$dir/f" 2>&1 || fail "faults add: $(cat "$dir/f")"
  "$ctl" faults "$pid" list > "$dir/f" 2>&1 || fail "faults list"
  grep -q '^posix/io/net/send fired=0 port=1$' "$dir/f" || fail "faults list: $(cat "$dir/f")"
  "$ctl" faults "$pid" remove posix/io/net/send > /dev/null 2>&1 || fail "faults remove"
  [ -z "$("$ctl" faults "$pid" list)" ] || fail "rule still listed after remove"
  echo "faults add/list/remove ok"
fi

echo go > "$dir/in"
kill "$holder" 2>/dev/null
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
wait "$pid" || fail "program failed after the dumps: $(cat "$dir/out")"
pid=
grep -v '^ready$' "$dir/out" > "$dir/out.rest"
grep -v '^ready$' "$dir/out.plain" > "$dir/out.plain.rest"
diff "$dir/out.plain.rest" "$dir/out.rest" || fail "output differs from the plain run"
echo "output after the dumps equals the plain run"
