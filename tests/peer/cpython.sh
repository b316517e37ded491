#!/usr/bin/env bash
# tests/peer/cpython.sh: CPython's own regression tests, run plain and under
# the preload, must end the same way.
#
#   tests/peer/cpython.sh [options] [test ...]
#     --lib PATH        libunblock.so (default: build/libunblock.so)
#     --python PATH     the interpreter (default: /usr/bin/python3, Debian's,
#                       which is what libpython3.X-testsuite belongs to)
#     --timeout SECS    bound on each run (default 600); a run killed by it
#                       counts as TIMEOUT
#     --out DIR         logs (default: build/peer/cpython)
#     --ignore PAT      skip test cases/methods matching PAT (regrtest -i),
#                       in both runs; repeatable
#     --jobs N          regrtest's parallel mode: all the tests in one
#                       `python -m test -jN` per mode (N worker processes),
#                       one row for the whole run; under a DIFF, the tests
#                       whose own result differs
#     -- ARGS           passed to `python -m test` for every test instead of
#                       the default -v (verbose: the logs name each test
#                       method's result)
#   With no test named, runs the default list below. A test may be a
#   submodule (test_asyncio.test_events).
#
# Each test runs as `python3 -m test NAME` (one process, the tests in order),
# first plain, then with LD_PRELOAD; the outcome is regrtest's "Tests
# result:" word (SUCCESS, FAILURE, ENV_CHANGED, NO TESTS RAN, ...), or
# TIMEOUT, or the exit status when there is none (a crash). Always skipped:
# test_socket's ThreadedVSOCKSocketStreamTest, which waits in accept()
# forever without the library on a VM with a vsock device but no loopback
# transport (seen here: the plain run sat in vsock_accept for 7 minutes). Prints a table
# (plain, preload, same/DIFF, times), under a DIFF row the test methods that
# failed in one run only, and exits 1 if any pair differs, 77 if the test
# suite is not installed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib=$root/build/libunblock.so
python=/usr/bin/python3
timeout_s=600
out=$root/build/peer/cpython
extra=(-v)
ignores=('*ThreadedVSOCKSocketStreamTest*')
tests=()
jobs=
while [ $# -gt 0 ]; do
  case $1 in
    --lib) lib=$2; shift 2 ;;
    --python) python=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ignore) ignores+=("$2"); shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) tests+=("$1"); shift ;;
  esac
done
if [ ${#tests[@]} -eq 0 ]; then
  tests=(test_asyncio test_threading test_threadsignals test_thread test_signal test_socket test_select
         test_selectors test_epoll test_poll test_subprocess test_eintr test_socketserver test_queue test_time)
fi
lib=$(readlink -f "$lib")
[ -f "$lib" ] || { echo "cpython.sh: no library at $lib" >&2; exit 2; }
if ! "$python" -c 'import test.libregrtest' 2>/dev/null; then
  echo "cpython.sh: $python has no regression test suite (apt-get install libpython3.11-testsuite); skipped" >&2
  exit 77
fi
mkdir -p "$out"
ignore_args=()
for pat in "${ignores[@]}"; do ignore_args+=(-i "$pat"); done

# run MODE LABEL ARGS... -> prints "OUTCOME SECONDS", log in $out/LABEL.MODE.log
run() {
  local mode=$1 label=$2 log=$out/$2.$1.log start end rc outcome
  shift 2
  rm -f "$out/$label.stats"
  local env_args=(env -u LD_PRELOAD)
  # UNBLOCK_STATS: the preloaded run must show that threads ran as fibers
  # (checked at the end), so a library that silently passed everything
  # through cannot agree with plain by accident.
  [ "$mode" = preload ] && env_args=(env "LD_PRELOAD=$lib" "UNBLOCK_STATS=$out/$label.stats")
  start=$(date +%s.%N)
  # --kill-after: a run that ignores SIGTERM still ends. Own temp dir, so the
  # two runs never share files.
  (cd "$out" && TMPDIR=$(mktemp -d "$out/tmp.XXXX") timeout --kill-after=10 "$timeout_s" \
      "${env_args[@]}" "$python" -m test "${extra[@]}" "${ignore_args[@]}" "$@") >"$log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  if [ $rc = 124 ] || [ $rc = 137 ]; then
    outcome=TIMEOUT
  else
    outcome=$(sed -n 's/^Tests result: //p' "$log" | tail -1)
    [ -n "$outcome" ] || outcome="EXIT_$rc"
  fi
  outcome=${outcome// /_}
  awk -v o="$outcome" -v s="$start" -v e="$end" 'BEGIN { printf "%s %.1f\n", o, e - s }'
}

# regrtest's progress lines ("[ 3/10] test_x passed (1.2 sec)"): "test_x passed".
per_test() { sed -n 's/.*\] \(test[^ ]*\) \([a-z][a-z ]*[a-z]\).*/\1 \2/p' "$1" | sort -u; }

printf '%-22s %-14s %-14s %-5s %9s %9s\n' test plain preload same plain_s preload_s
status=0
if [ -n "$jobs" ]; then
  label=j$jobs
  read -r p_out p_time < <(run plain "$label" "-j$jobs" "${tests[@]}")
  read -r l_out l_time < <(run preload "$label" "-j$jobs" "${tests[@]}")
  same=same
  if [ "$p_out" != "$l_out" ]; then same=DIFF; status=1; fi
  printf '%-22s %-14s %-14s %-5s %9s %9s\n' "-j$jobs (${#tests[@]} tests)" "$p_out" "$l_out" "$same" "$p_time" "$l_time"
  if [ "$same" = DIFF ]; then
    diff <(per_test "$out/$label.plain.log") <(per_test "$out/$label.preload.log") |
      sed -n 's/^< /    plain:   /p; s/^> /    preload: /p' | head -24
  fi
  tests=()
fi
for t in "${tests[@]}"; do
  read -r p_out p_time < <(run plain "$t" "$t")
  read -r l_out l_time < <(run preload "$t" "$t")
  same=same
  if [ "$p_out" != "$l_out" ]; then same=DIFF; status=1; fi
  printf '%-22s %-14s %-14s %-5s %9s %9s\n' "$t" "$p_out" "$l_out" "$same" "$p_time" "$l_time"
  if [ "$same" = DIFF ]; then
    # unittest's verbose summary: "FAIL: test_x (module.Class.test_x)".
    diff <(grep -E '^(FAIL|ERROR):' "$out/$t.plain.log" | sort -u) \
         <(grep -E '^(FAIL|ERROR):' "$out/$t.preload.log" | sort -u) |
      sed -n 's/^< /    plain only:   /p; s/^> /    preload only: /p' | head -12
  fi
done
rm -rf "$out"/tmp.* 2>/dev/null
# Every statistics file is the last process's to end with a started runtime:
# together they must count fibers.
fibers=$(cat "$out"/*.stats 2>/dev/null | awk '$1=="fibers_spawned"{s+=$2} END{print s+0}')
echo "threads run as fibers in the preloaded runs: $fibers"
if [ "$fibers" -lt 1 ]; then echo "the preloaded runs ran no thread as a fiber: the library did not act"; status=1; fi
echo "logs: $out"
exit $status
