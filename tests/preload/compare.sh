#!/usr/bin/env bash
# compare.sh LIB PROGRAM [ARGS...]
# Runs PROGRAM plain, then under LD_PRELOAD=LIB, and requires the same stdout
# and exit status (and stderr with COMPARE_STDERR=1). Each run is bounded by
# COMPARE_TIMEOUT seconds (default 60); a hang is a failure.
# Unless COMPARE_EXPECT_FIBERS=0, the preloaded run must report through
# UNBLOCK_STATS that it ran threads as fibers, so that a library that silently
# passed everything through cannot pass.
set -u
lib=$1; shift
prog=$1
timeout_s=${COMPARE_TIMEOUT:-60}
expect_fibers=${COMPARE_EXPECT_FIBERS:-1}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

run() { # label, then env assignments for the program (not for timeout)
  local label=$1; shift
  ( cd "$dir" && timeout -k 5 "$timeout_s" env "$@" "${cmd[@]}" \
      >"$dir/$label.out" 2>"$dir/$label.err" </dev/null )
  echo $? >"$dir/$label.rc"
}
cmd=("$@")
run plain UNBLOCK_COMPARE_MODE=plain
run preload UNBLOCK_COMPARE_MODE=preload LD_PRELOAD="$lib${LD_PRELOAD:+ $LD_PRELOAD}" UNBLOCK_STATS="$dir/stats"

fail=0
prc=$(cat "$dir/plain.rc"); lrc=$(cat "$dir/preload.rc")
if [ "$prc" = 124 ] || [ "$prc" = 137 ]; then echo "plain run timed out"; fail=1; fi
if [ "$lrc" = 124 ] || [ "$lrc" = 137 ]; then echo "preloaded run timed out (hang)"; fail=1; fi
if [ "$prc" != "$lrc" ]; then echo "exit status differs: plain $prc, preload $lrc"; fail=1; fi
if ! cmp -s "$dir/plain.out" "$dir/preload.out"; then
  echo "stdout differs (plain vs preload):"; diff "$dir/plain.out" "$dir/preload.out" | head -40; fail=1
fi
if [ "${COMPARE_STDERR:-0}" = 1 ] && ! cmp -s "$dir/plain.err" "$dir/preload.err"; then
  echo "stderr differs (plain vs preload):"; diff "$dir/plain.err" "$dir/preload.err" | head -40; fail=1
fi
if [ "$expect_fibers" = 1 ]; then
  spawned=$(awk '$1=="fibers_spawned"{print $2}' "$dir/stats" 2>/dev/null)
  if [ -z "$spawned" ] || [ "$spawned" -lt 1 ]; then
    echo "the preloaded run did not run threads as fibers (stats: $(tr '\n' ' ' <"$dir/stats" 2>/dev/null))"; fail=1
  fi
fi
# COMPARE_EXPECT_ENGINE=epoll|io_uring: the engine the preloaded run reported.
if [ -n "${COMPARE_EXPECT_ENGINE:-}" ]; then
  engine=$(awk '$1=="engine"{print $2}' "$dir/stats" 2>/dev/null)
  if [ "$engine" != "$COMPARE_EXPECT_ENGINE" ]; then
    echo "the preloaded run used engine '${engine}', expected '$COMPARE_EXPECT_ENGINE'"; fail=1
  fi
fi
# COMPARE_EXPECT_STATS="name>=N name==N ...": checks on the preloaded run's counters.
for want in ${COMPARE_EXPECT_STATS:-}; do
  name=${want%%[<>=]*}; rest=${want#"$name"}; op=${rest%%[0-9]*}; num=${rest#"$op"}
  got=$(awk -v n="$name" '$1==n{print $2}' "$dir/stats" 2>/dev/null)
  case "$op" in
    '>=') [ -n "$got" ] && [ "$got" -ge "$num" ] ;;
    '==') [ -n "$got" ] && [ "$got" -eq "$num" ] ;;
    '<=') [ -n "$got" ] && [ "$got" -le "$num" ] ;;
    *) false ;;
  esac || { echo "counter check failed: $want (got '${got}')"; fail=1; }
done
echo "--- plain: exit $prc, $(wc -l <"$dir/plain.out") lines; preload: exit $lrc"
if [ $fail != 0 ]; then
  echo "--- preload stderr (tail):"; tail -20 "$dir/preload.err"
  exit 1
fi
exit 0
