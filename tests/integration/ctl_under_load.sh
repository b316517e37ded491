#!/usr/bin/env bash
# ctl_under_load.sh LIB CTL SERVER LOADGEN [CONNS] [SAVE_DIR]
# The demo echo server under load, dumped and asked for stats every 0.1 s:
# every connection must stay correct (dumps hold parked threads while their
# stacks are read; a wake lost there would stall a connection), and every
# dump must see the connections' threads parked in recv or send.
# SAVE_DIR: keep one dump, stats and top output there (README material).
set -u
lib=$1 ctl=$2 server=$3 loadgen=$4 conns=${5:-1000} save=${6:-}
ulimit -n "$(ulimit -Hn)" 2>/dev/null
dir=$(mktemp -d)
# Not root (no /run/unblock) and no XDG_RUNTIME_DIR: a private directory of
# our own (mktemp makes it 0700); unblock-ctl finds it in the environment.
if [ "$(id -u)" != 0 ] && [ -z "${XDG_RUNTIME_DIR:-}" ]; then export UNBLOCK_CONTROL_DIR=$dir; fi
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
LD_PRELOAD=$lib "$server" -a 127.0.0.1 -p 0 -b 4096 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/out")
[ -n "$port" ] || fail "server did not start: $(cat "$dir/err")"
timeout 120 "$loadgen" --port "$port" --conns "$conns" --size 64 --duration 4 --json >"$dir/load" &
lg=$!
dumps=0 seen=0
sleep 1
while kill -0 "$lg" 2>/dev/null; do
  timeout 20 "$ctl" dump "$pid" > "$dir/dump" || fail "dump failed"
  timeout 20 "$ctl" stats "$pid" > "$dir/stats" || fail "stats failed"
  dumps=$((dumps + 1))
  n=$(grep -cE '": (recv|send|read|write) fd=' "$dir/dump")
  [ "$n" -gt 0 ] && seen=$((seen + 1))
  if [ -n "$save" ] && [ "$dumps" = 5 ]; then
    cp "$dir/dump" "$save/dump.txt"
    cp "$dir/stats" "$save/stats.txt"
    timeout 20 "$ctl" top "$pid" -n 1 -d 1 > "$save/top.txt"
  fi
  sleep 0.1
done
wait "$lg"; lrc=$?
json=$(tail -1 "$dir/load")
get() { echo "$json" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
echo "$json"
echo "dumps: $dumps, with connection threads parked in I/O: $seen"
[ "$lrc" = 0 ] || fail "load generator failed ($lrc)"
[ "$(get conns_ok)" = "$(get connected)" ] && [ "$(get connected)" = "$conns" ] || fail "connections lost"
[ "$(get verify_failed)" = 0 ] || fail "echoed bytes differ"
[ "$(get errors)" = 0 ] || fail "errors"
[ "$dumps" -ge 1 ] && [ "$seen" -ge 1 ] || fail "no dump answered during the load ($dumps) or none saw the connections ($seen)"
echo "ok"
