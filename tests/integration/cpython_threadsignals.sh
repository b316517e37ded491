#!/usr/bin/env bash
# cpython_threadsignals.sh LIB
# CPython's own test_threadsignals (Debian's libpython3.11-testsuite), run
# plain and under the preload: every test must end the same way. Among them,
# 40 process-directed SIGUSR1 interrupt a timed lock acquire in main, and
# the next tests count their handler's runs for one kill() each (a signal
# left queued in the library ran a later test's handler twice). Skipped (77)
# when Debian's python3 or its test suite is not installed.
set -u
lib=$1
py=/usr/bin/python3
[ -x "$py" ] && [ -f /usr/lib/python3.11/test/test_threadsignals.py ] || { echo "SKIP: libpython3.11-testsuite not installed"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # label, then env assignments; keeps "test_name (...) ... result" lines
  local label=$1; shift
  (cd "$dir" && timeout -k 5 120 env "$@" "$py" -m unittest -v test.test_threadsignals >"$dir/$label.log" 2>&1)
  echo $? >"$dir/$label.rc"
  grep -E '^test_.* \.\.\. ' "$dir/$label.log" | sort >"$dir/$label.res"
}
run plain PYTHONDONTWRITEBYTECODE=1
run preload PYTHONDONTWRITEBYTECODE=1 LD_PRELOAD="$lib" UNBLOCK_STATS="$dir/stats"
fail=0
[ "$(cat "$dir/plain.rc")" = "$(cat "$dir/preload.rc")" ] || { echo "exit status differs: plain $(cat "$dir/plain.rc"), preload $(cat "$dir/preload.rc")"; fail=1; }
[ -s "$dir/plain.res" ] || { echo "no test ran plain"; fail=1; }
cmp -s "$dir/plain.res" "$dir/preload.res" || { echo "results differ:"; diff "$dir/plain.res" "$dir/preload.res"; fail=1; }
spawned=$(awk '$1=="fibers_spawned"{print $2}' "$dir/stats" 2>/dev/null)
[ -n "$spawned" ] && [ "$spawned" -ge 1 ] || { echo "the preloaded run did not run threads as fibers"; fail=1; }
echo "--- plain: $(wc -l <"$dir/plain.res") tests, exit $(cat "$dir/plain.rc"); preload: exit $(cat "$dir/preload.rc")"
[ $fail = 0 ] || { tail -30 "$dir/preload.log"; exit 1; }
exit 0
