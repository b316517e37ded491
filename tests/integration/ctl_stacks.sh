#!/usr/bin/env bash
# ctl_stacks.sh LIB CTL PROGRAM
# Stacks of threads that are not parked (unblock-ctl dump, issue 14):
#   spin: one worker, no hand-off; three threads wait to run (yield_loop)
#         behind one that spins without a system call (spin_loop). The dump
#         shows the three as runnable with yield_loop in their stacks (held
#         while read) and the spinner as running with spin_loop (read
#         through the marker).
#   raw:  a thread blocked in syscall(SYS_read) on a pipe, a call the
#         library does not intercept: its stack (from /proc's sp and pc; the
#         thread is never signalled) names raw_read_caller; and a plain OS
#         thread (its stack the program's own) in read(): plain_read_caller.
#   yield: one worker, four threads yielding to each other, dumped 30 times
#         while they run: a thread due to run while a dump holds it is put
#         back in the run queue (dump_held_back counts it), and every dump
#         shows each of them at yield_loop.
# Each program's output after the dumps must equal its plain run.
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

# start MODE OUT ENV...: the program with its stdin on a FIFO, until "ready".
start() {
  local mode=$1 out=$2
  shift 2
  rm -f "$dir/in"
  mkfifo "$dir/in"
  sleep 600 > "$dir/in" &
  holder=$!
  printf 0 > "$dir/flag"
  local args=("$mode")
  [ "$mode" = spin ] && args+=("$dir/flag")
  env "$@" "$prog" "${args[@]}" < "$dir/in" > "$out" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q ready "$out" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$mode: not ready: $(cat "$out")"
}

# finish OUT: release the program and wait for it.
finish() {
  printf 1 | dd of="$dir/flag" bs=1 count=1 conv=notrunc status=none
  echo go > "$dir/in"
  kill "$holder" 2>/dev/null
  holder=
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  wait "$pid" || fail "program failed: $(cat "$1")"
  pid=
}

for mode in spin raw yield; do
  start "$mode" "$dir/plain.$mode" X=1
  finish "$dir/plain.$mode"

  if [ "$mode" = spin ]; then
    start spin "$dir/out.spin" UNBLOCK_WORKERS=1 UNBLOCK_MAX_THREADS=0 LD_PRELOAD="$lib"
  else
    start "$mode" "$dir/out.$mode" UNBLOCK_WORKERS=1 LD_PRELOAD="$lib"
  fi
  sleep 0.5  # the spinner takes the worker; the raw reader sits in read()
  for i in 1 2 3; do
    timeout 30 "$ctl" dump "$pid" > "$dir/dump.$mode.$i" || fail "$mode: dump failed"
  done
  if [ "$mode" = yield ]; then
    cat > "$dir/check_yield.py" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ys = [f for f in d["fibers"] if f["name"] == "s-yield"]
assert len(ys) == 4, ys
for f in ys:
    # A thread between two runs may show no stack (it began running before
    # the barrier, or ran on before the marker came), never a wrong one.
    st = f.get("stack", [])
    assert not st or any(x.startswith("yield_loop") for x in st), f
print(1 if any(f.get("stack") for f in ys) else 0)
EOF
    with_stack=0
    for i in $(seq 1 30); do
      timeout 30 "$ctl" dump "$pid" --json > "$dir/dump.yield.json.$i" || fail "yield: dump $i failed"
      got=$(python3 "$dir/check_yield.py" "$dir/dump.yield.json.$i") ||
        fail "yield: dump $i: a wrong stack: $(cat "$dir/dump.yield.json.$i")"
      with_stack=$((with_stack + got))
    done
    # The four are read one after the other, and each may be seen running
    # and be gone before its marker: a dump may show none of their stacks.
    echo "yield: $with_stack of 30 dumps show a stack at yield_loop"
    [ "$with_stack" -ge 15 ] || fail "yield: too few dumps with a stack ($with_stack of 30)"
    timeout 30 "$ctl" stats "$pid" > "$dir/stats.yield" || fail "yield: stats failed"
    held=$(awk '$1 == "dump_held_back" { print $2 }' "$dir/stats.yield")
    echo "yield: 33 dumps while 4 threads yield; threads held back when due to run: $held"
    [ "${held:-0}" -gt 0 ] || fail "yield: no thread was ever held back (the hold is not exercised)"
  fi
  timeout 30 "$ctl" dump "$pid" --json > "$dir/dump.$mode.json" || fail "$mode: dump --json failed"
  sed -n '1,2p' "$dir/dump.$mode.1"
  grep -B1 -A6 's-\(spin\|yield\|raw\)\|threads\? \(runnable\|running\|handed\)' "$dir/dump.$mode.1" | head -40
  python3 - "$mode" "$dir/dump.$mode.json" <<'EOF' || fail "$mode: stacks missing or wrong"
import json, sys
mode, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
assert d["stacks"], "no stacks: libunwind missing?"
def named(n): return [f for f in d["fibers"] if f["name"] == n]
# (gcc may name a clone yield_loop.isra.0)
def has(f, fn): return any(fr.startswith(fn + "+") or fr.startswith(fn + ".") for fr in f.get("stack", []))
if mode == "spin":
    ys = named("s-yield")
    assert len(ys) == 3, ys
    for f in ys:
        assert f["state"] == "runnable", f
        assert has(f, "yield_loop") and f["stack_from"] == "saved context", f
    (s,) = named("s-spin")
    assert s["state"] == "running", s
    assert has(s, "spin_loop") and s["stack_from"] == "marker", s
    print("spin: 3 runnable threads at yield_loop, the spinner running at spin_loop")
elif mode == "yield":
    print("yield: %d threads" % len(named("s-yield")))
else:
    (r,) = named("s-raw")
    assert r["state"] in ("handed off", "running"), r
    assert has(r, "raw_read_caller") and r["stack_from"] == "system call", r
    print("raw: the blocked thread (%s) at %s" % (r["state"], r["stack"][:3]))
    (p,) = [t for t in d["os_threads"] if t["name"] == "s-plain"]
    assert p["role"] == "plain OS thread", p
    assert has(p, "plain_read_caller") and p["stack_from"] == "system call", p
    print("raw: the plain OS thread at %s" % p["stack"][:3])
EOF
  finish "$dir/out.$mode"
  grep -v '^ready$' "$dir/plain.$mode" > "$dir/a"
  grep -v '^ready$' "$dir/out.$mode" > "$dir/b"
  diff "$dir/a" "$dir/b" || fail "$mode: output differs from the plain run"
  echo "$mode: output after the dumps equals the plain run: $(cat "$dir/b")"
done
