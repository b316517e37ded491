#!/usr/bin/env bash
# epoll_http_same.sh DEMO_HTTP_SERVER EPOLL_HTTP
# The reference epoll HTTP server (bench/epoll_http.cpp) answers exactly as
# the demo thread-per-connection server (demo/http_server.c) does, so that
# scripts/bench compares like with like: the same request sequences (wrk's
# keep-alive GET, HEAD, 404, 405 with a body to skip, HTTP/1.0 with and
# without keep-alive, pipelining, requests split across writes, 400 and 414
# cases and their lingering close, a directory's index.html, a 100 KiB file,
# a half-close mid-pipeline) get the same bytes back, the Date header
# aside; and the access logs and "requests N" lines agree (timestamps aside).
# Loopback only; every read bounded by a timeout.
set -u
demo=$1 epoll=$2
dir=$(mktemp -d)
# start runs in a command substitution (a subshell): the servers' PIDs are
# kept in files, which the cleanup reads.
cleanup() {
  for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  wait
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/www/sub" "$dir/www/empty"
head -c 4096 /dev/urandom >"$dir/www/small.bin"
head -c 102400 /dev/urandom >"$dir/www/big.bin"
echo "<p>index</p>" >"$dir/www/sub/index.html"
echo "hello" >"$dir/www/a.txt"
touch -d '2024-01-02 03:04:05 UTC' "$dir/www"/*.bin "$dir/www/a.txt" "$dir/www/sub/index.html"
start() {  # start NAME BINARY: prints the port
  "$2" -a 127.0.0.1 -p 0 -b 128 -r "$dir/www" -l "$dir/$1.log" >"$dir/$1.out" 2>"$dir/$1.err" &
  echo $! >"$dir/$1.pid"
  for _ in $(seq 100); do grep -qs listening "$dir/$1.out" && break; sleep 0.1; done
  sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$dir/$1.out"
}
pd=$(start demo "$demo")
pe=$(start epoll "$epoll")
[ -n "$pd" ] && [ -n "$pe" ] || { echo "a server did not start"; cat "$dir"/*.err; exit 1; }

python3 - "$pd" "$pe" <<'PY' || exit 1
import re, socket, sys, time
ports = {"demo": int(sys.argv[1]), "epoll": int(sys.argv[2])}

def exchange(port, parts, half_close=True):
    """Sends each part (a short pause between parts), half-closes, reads to EOF (5 s bound)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for i, p in enumerate(parts):
        if i:
            time.sleep(0.05)
        s.sendall(p)
    if half_close:
        s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            data += b"<TIMEOUT>"
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return re.sub(rb"\r\nDate: [^\r]*\r\n", b"\r\nDate: -\r\n", data)

get = lambda path, extra=b"", v=b"1.1": b"GET " + path + b" HTTP/" + v + b"\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"
cases = {
    "wrk keep-alive GET x3": [get(b"/small.bin") * 3],
    "HEAD": [b"HEAD /small.bin HTTP/1.1\r\nHost: x\r\n\r\n"],
    "404 then 200": [get(b"/missing") + get(b"/a.txt")],
    "405 with a body to skip, then GET": [b"POST /a.txt HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" + get(b"/a.txt")],
    "HTTP/1.0 without keep-alive": [get(b"/a.txt", v=b"1.0") + get(b"/a.txt")],
    "HTTP/1.0 keep-alive": [get(b"/a.txt", b"Connection: keep-alive\r\n", b"1.0") * 2],
    "Connection: close mid-pipeline": [get(b"/a.txt", b"Connection: close\r\n") + get(b"/small.bin")],
    "split across writes": [b"GET /small.bin HTT", b"P/1.1\r\nHost: x\r\n", b"\r\n"],
    "empty lines first": [b"\r\n\r\n" + get(b"/a.txt")],
    "dot-dot": [get(b"/../etc/passwd")],
    "encoded dot-dot": [get(b"/%2e%2e/x")],
    "bad percent": [get(b"/%zz")],
    "bad request line": [b"GARBAGE\r\n\r\n"],
    "bad version": [b"GET / HTTP/2.0\r\n\r\n"],
    "chunked body": [b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
    "folded header": [b"GET /a.txt HTTP/1.1\r\nX: a\r\n b\r\n\r\n"],
    "target too long": [get(b"/" + b"a" * 3000)],
    "full buffer, no line": [b"A" * 8192],
    "full buffer, no head end": [b"GET /a.txt HTTP/1.1\r\n" + b"X: " + b"y" * 8300],
    "directory index": [get(b"/sub") + get(b"/sub/")],
    "directory without index": [get(b"/empty")],
    "absolute form and query": [get(b"http://h:1/a.txt?x=1#f")],
    "100 KiB file twice": [get(b"/big.bin") * 2],
    "405 closing (HTTP/1.0)": [b"DELETE /a.txt HTTP/1.0\r\n\r\n" + get(b"/a.txt")],
    "404 closing": [get(b"/nope", b"Connection: close\r\n") + get(b"/a.txt")],
    "HEAD 404 and 405": [b"HEAD /nope HTTP/1.1\r\n\r\nPUT /a.txt HTTP/1.1\r\n\r\n"],
    "pipelined 20": [get(b"/small.bin") * 20],
}
fail = 0
for name, parts in cases.items():
    got = {k: exchange(p, parts) for k, p in ports.items()}
    if got["demo"] != got["epoll"]:
        fail = 1
        print(f"DIFFER {name}:\n  demo  {got['demo'][:300]!r}\n  epoll {got['epoll'][:300]!r}")
    elif not got["demo"].startswith(b"HTTP/1.1 "):
        fail = 1
        print(f"NO ANSWER {name}: {got['demo'][:200]!r}")
    else:
        print(f"same: {name} ({len(got['demo'])} bytes)")
# Not half-closed: the server's own close after a 400 ends the exchange.
got = {k: exchange(p, [b"BAD\r\n\r\n"], half_close=False) for k, p in ports.items()}
if got["demo"] != got["epoll"]:
    fail = 1
    print(f"DIFFER lingering close without half-close: {got}")
sys.exit(fail)
PY
status=0
for name in demo epoll; do
  pid=$(cat "$dir/$name.pid")
  rm "$dir/$name.pid"
  kill -TERM "$pid"
  # Not a child of this shell (started in a subshell): wait for its summary line.
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
if [ "$(grep requests "$dir/demo.out")" != "$(grep requests "$dir/epoll.out")" ]; then
  echo "requests lines differ: demo '$(grep requests "$dir/demo.out")', epoll '$(grep requests "$dir/epoll.out")'"
  status=1
fi
mask() { sed 's/\[[^]]*\]/[-]/' "$1"; }
if ! diff <(mask "$dir/demo.log") <(mask "$dir/epoll.log"); then
  echo "access logs differ"
  status=1
fi
[ "$status" = 0 ] && echo "epoll_http answers as http_server does ($(grep requests "$dir/demo.out"))"
exit $status
