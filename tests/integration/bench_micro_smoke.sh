#!/usr/bin/env bash
# bench_micro_smoke.sh LIB MICRO_DIR STARTUP
# Every micro-benchmark runs (a very short minimum time) and reports sane
# numbers: each result positive and finite, no benchmark failed. No timing
# thresholds: this checks the benchmarks work, not what they measure.
# runtime_bench runs plain and under the preload (two workers), hook_bench
# under the preload (it must see the hooks), tls_switch_bench plain.
set -u
lib=$1 micro=$2 startup=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

# check NAME JSON [REQUIRE_PRELOADED]: every benchmark ran and gave a positive, finite time.
check() {
  python3 - "$@" <<'PY'
import json, math, sys
name, path = sys.argv[1], sys.argv[2]
want_preloaded = len(sys.argv) > 3
data = json.load(open(path))
bad, n = [], 0
# Placement that this machine cannot give, or an instruction it lacks
# (FSGSBASE), is a skip, printed, not a failure.
skippable = ("one CPU", "UNBLOCK_WORKERS=1", "needs FSGSBASE")
skipped = []
for b in data.get("benchmarks", []):
    if b.get("error_occurred"):
        msg = b.get("error_message", "")
        if any(s in msg for s in skippable):
            skipped.append(f"{b['name']}: {msg}")
        else:
            bad.append(f"{b['name']}: {msg}")
        continue
    n += 1
    # CPU time is per OS thread: a fiber moved to another carrier mid-run
    # (hand-off) can read 0 there, so only real time must be positive.
    for k, low in (("real_time", 0), ("cpu_time", -1)):
        v = b.get(k)
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= low:
            bad.append(f"{b['name']}: {k} = {v}")
    for k in ("hooked_ns", "libc_ns", "overhead_ns"):  # hook_bench's results are counters
        if k in b and (not math.isfinite(b[k]) or (k != "overhead_ns" and b[k] <= 0)):
            bad.append(f"{b['name']}: {k} = {b[k]}")
    if b.get("iterations", 0) <= 0:
        bad.append(f"{b['name']}: no iterations")
if want_preloaded:
    if data.get("context", {}).get("preloaded") != "yes":
        bad.append("the hooks were not in the path (context preloaded != yes)")
    if not any("hooked_ns" in b for b in data.get("benchmarks", [])):
        bad.append("no hooked_ns counters")
if n == 0:
    bad.append("no benchmark ran")
print(f"{name}: {n} benchmarks ran, {len(skipped)} skipped" + "".join(f"\n  SKIPPED {x}" for x in skipped)
      + "".join(f"\n  BAD {x}" for x in bad))
sys.exit(1 if bad else 0)
PY
}

run() {  # run NAME [ENV...] -- BINARY ARGS...
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  if ! env -u LD_PRELOAD "${envs[@]}" timeout 120 "$@" --benchmark_min_time=0.01 \
      --benchmark_out="$dir/$name.json" --benchmark_out_format=json >"$dir/$name.out" 2>&1; then
    echo "$name: exit status $?"; cat "$dir/$name.out"; fail=1; return
  fi
}

run runtime_os -- "$micro/runtime_bench"
check runtime_os "$dir/runtime_os.json" || fail=1
run runtime_fibers UNBLOCK_WORKERS=2 LD_PRELOAD="$lib" -- "$micro/runtime_bench"
check runtime_fibers "$dir/runtime_fibers.json" || fail=1
grep -q '"threads": "unblock fibers"' "$dir/runtime_fibers.json" || { echo "runtime_bench did not run as fibers"; fail=1; }
run hook LD_PRELOAD="$lib" -- "$micro/hook_bench"
check hook "$dir/hook.json" preloaded || fail=1
run tls -- "$micro/tls_switch_bench"
check tls "$dir/tls.json" || fail=1

out=$(timeout 60 "$startup" "$lib" 5) || { echo "startup failed"; fail=1; }
echo "$out"
echo "$out" | grep -Eq 'plain median [0-9]+ us, with libunblock.so median [0-9]+ us' || { echo "startup: no numbers"; fail=1; }
exit $fail
