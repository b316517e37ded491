#!/usr/bin/env bash
# bench_seccomp_engine.sh BUILD_DIR
# scripts/bench --seccomp checks the engine its unblock servers ran
# (UNBLOCK_STATS): under the real Docker-like filter (docker_seccomp) the
# short run passes and its JSON names only the epoll engine; with a stand-in
# "filter" that filters nothing (the library then picks io_uring), the script
# stops with an error naming the engine, whether the first unblock run is an
# echo run or an HTTP run. Skips (77) where io_uring is unavailable anyway
# (the stand-in cannot make the engine differ) or wrk is missing.
set -u
build=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v wrk >/dev/null || { echo "wrk is not installed: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# A build directory whose docker_seccomp runs the server without a filter.
fake=$dir/build
mkdir -p "$fake/demo" "$fake/bench" "$fake/tests/preload/core"
for f in demo/echo_server demo/http_server bench/loadgen bench/epoll_echo bench/epoll_http libunblock.so; do
  ln -s "$build/$f" "$fake/$f"
done
printf '#!/bin/sh\nunset UNBLOCK_ENGINE\nexec "$@"\n' >"$fake/tests/preload/core/docker_seccomp"
chmod +x "$fake/tests/preload/core/docker_seccomp"

bench() {  # bench BUILD OUT ARGS...: a short --seccomp run
  local b=$1 out=$2; shift 2
  timeout 240 "$root/scripts/bench" --no-setup --quick --seccomp --build "$b" --out "$out" --conns 20 \
    --http-conns 20 --hold-seconds 1 "$@" >"$out.log" 2>&1
}
engines() { python3 -c 'import json,sys; print(",".join(json.load(open(sys.argv[1]))["unblock_engines"]))' "$1"; }

# expect_wrong_engine WHAT LOG RC: the run stopped naming the engine.
expect_wrong_engine() {
  if [ "$3" = 0 ] || ! grep -q "the unblock server ran the io_uring engine, expected epoll" "$2"; then
    echo "FAIL: $1 run without the filter: exit $3 and no wrong-engine error"
    tail -20 "$2"
    fail=1
  else
    echo "$1 run without the filter: stopped: $(tail -1 "$2")"
  fi
}

fail=0
bench "$build" "$dir/real" --servers unblock
rc=$?
if [ $rc != 0 ] || [ "$(engines "$dir/real/results-quick.json")" != epoll ]; then
  echo "FAIL: under the filter: exit $rc, engines '$(engines "$dir/real/results-quick.json" 2>/dev/null)'"
  tail -20 "$dir/real.log"
  fail=1
else
  echo "under the filter: passed, engine epoll"
fi

bench "$fake" "$dir/echo" --servers unblock --no-http
rc=$?
if [ $rc = 0 ] && grep -q "engine epoll" "$dir/echo.log"; then
  echo "io_uring is unavailable here even without the filter: the wrong-engine check cannot be shown; skipped"
  exit 77
fi
expect_wrong_engine echo "$dir/echo.log" $rc

bench "$fake" "$dir/http" --servers plain
expect_wrong_engine HTTP "$dir/http.log" $?
exit $fail
