#!/usr/bin/env bash
# echo_10k.sh LIB ECHO_SERVER LOADGEN [CONNS]
# The demo thread-per-connection echo server, unchanged, under the preload
# holds CONNS (default 10,000) concurrent connections: every connection
# echoes a message when it opens and again after the hold, each checked byte
# for byte by the load generator, while /proc/PID/status shows no more OS
# threads than the workers plus a small constant. Loopback only; bounded.
set -u
lib=$1 server=$2 loadgen=$3 conns=${4:-10000}
workers=${UNBLOCK_WORKERS:-$(nproc)}
limit=$((workers + 16))
ulimit -n "$(ulimit -Hn)" 2>/dev/null
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
LD_PRELOAD=$lib UNBLOCK_STATS=$dir/stats "$server" -a 127.0.0.1 -p 0 -b 4096 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/out")
[ -n "$port" ] || { echo "server did not start"; cat "$dir/err"; exit 1; }
timeout 300 "$loadgen" --port "$port" --conns "$conns" --size 64 --hold --duration 4 --json >"$dir/load" &
lg=$!
# Sample the server while the connections are held.
max_threads=0 max_rss=0
while kill -0 "$lg" 2>/dev/null; do
  t=$(awk '/^Threads:/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  r=$(awk '/^VmRSS:/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  [ "${t:-0}" -gt "$max_threads" ] && max_threads=$t
  [ "${r:-0}" -gt "$max_rss" ] && max_rss=$r
  sleep 0.2
done
wait "$lg"; lrc=$?
cat "$dir/load"
json=$(tail -1 "$dir/load")
get() { echo "$json" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
connected=$(get connected) ok=$(get conns_ok) verify=$(get verify_failed) errors=$(get errors)
echo "server: max OS threads $max_threads (limit $limit), max RSS ${max_rss} KiB"
fail=0
[ "$lrc" = 0 ] || { echo "load generator failed ($lrc)"; fail=1; }
[ "$connected" = "$conns" ] || { echo "connected $connected of $conns"; fail=1; }
[ "$ok" = "$conns" ] || { echo "verified connections $ok of $conns"; fail=1; }
[ "$verify" = 0 ] && [ "$errors" = 0 ] || { echo "verify_failed $verify errors $errors"; fail=1; }
[ "$max_threads" -le "$limit" ] || { echo "too many OS threads: $max_threads"; fail=1; }
kill -TERM "$pid"; wait "$pid"; src=$?; pid=
echo "server exit status $src: $(tail -1 "$dir/out")"
[ "$src" = 0 ] || { echo "server did not shut down cleanly on SIGTERM"; fail=1; }
spawned=$(awk '$1=="fibers_spawned"{print $2}' "$dir/stats" 2>/dev/null)
[ "${spawned:-0}" -ge "$conns" ] || { echo "fibers spawned ${spawned:-0}: the server's threads were not fibers"; fail=1; }
exit $fail
