#!/usr/bin/env bash
# http_10k.sh LIB HTTP_SERVER [CONNS]
# The demo thread-per-connection HTTP/1.1 server, unchanged, under the
# preload, driven by wrk with CONNS (default 10,000) concurrent keep-alive
# connections: no socket errors, no non-2xx answers, and no more OS threads
# than the workers plus a small constant; curl then fetches files (one of
# 1 MiB) and they must match byte for byte. Loopback only; bounded.
set -u
lib=$1 server=$2 conns=${3:-10000}
workers=${UNBLOCK_WORKERS:-$(nproc)}
limit=$((workers + 16))
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/setup installs it)"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
mkdir -p "$dir/www/sub"
head -c 4096 /dev/urandom >"$dir/www/small.bin"
head -c 1048576 /dev/urandom >"$dir/www/big.bin"
echo "index" >"$dir/www/sub/index.html"
LD_PRELOAD=$lib UNBLOCK_STATS=$dir/stats "$server" -a 127.0.0.1 -p 0 -b 4096 -r "$dir/www" -l "$dir/access.log" \
  >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q listening "$dir/out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/out")
[ -n "$port" ] || { echo "server did not start"; cat "$dir/err"; exit 1; }
timeout 120 wrk -t2 -c"$conns" -d15s --timeout 30s "http://127.0.0.1:$port/small.bin" >"$dir/wrk" 2>&1 &
w=$!
max_threads=0
while kill -0 "$w" 2>/dev/null; do
  t=$(awk '/^Threads:/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  [ "${t:-0}" -gt "$max_threads" ] && max_threads=$t
  sleep 0.2
done
wait "$w"
cat "$dir/wrk"
fail=0
grep -q "Socket errors" "$dir/wrk" && { echo "wrk saw socket errors"; fail=1; }
grep -q "Non-2xx" "$dir/wrk" && { echo "wrk saw non-2xx answers"; fail=1; }
reqs=$(awk '/requests in/{print $1}' "$dir/wrk")
[ "${reqs:-0}" -gt 0 ] || { echo "no requests completed"; fail=1; }
echo "server: max OS threads $max_threads (limit $limit)"
[ "$max_threads" -le "$limit" ] || { echo "too many OS threads"; fail=1; }
for f in small.bin big.bin sub/index.html; do
  want=$f; [ "$f" = sub/index.html ] && f=sub/
  curl -s "http://127.0.0.1:$port/$f" | cmp -s - "$dir/www/$want" || { echo "curl $f: content differs"; fail=1; }
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/missing")
[ "$code" = 404 ] || { echo "missing file gave $code"; fail=1; }
kill -TERM "$pid"; wait "$pid"; src=$?; pid=
echo "server exit status $src: $(tail -1 "$dir/out"); access log lines $(wc -l <"$dir/access.log")"
[ "$src" = 0 ] || { echo "server did not shut down cleanly"; fail=1; }
spawned=$(awk '$1=="fibers_spawned"{print $2}' "$dir/stats" 2>/dev/null)
[ "${spawned:-0}" -ge "$conns" ] || { echo "fibers spawned ${spawned:-0}: the server's threads were not fibers"; fail=1; }
exit $fail
