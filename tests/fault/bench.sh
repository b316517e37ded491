#!/usr/bin/env bash
# bench.sh BUILD_DIR [BUILD_DIR_WITHOUT_POINTS]
# The cost of fault injection, for docs/FAULTS.md:
#   1. in-process: a disabled point vs no point; an armed check through libfiu;
#   2. end to end: read(2) of one byte under the preload, faults configured
#      in several ways (median of 5 runs of fault_bench, ns per call);
#   3. start-up: /bin/true under the preload with and without fault
#      configuration, and with libfiu preloaded as a stand-in for linking it.
# The second build directory, if given, holds a libunblock.so built with
# -DUNBLOCK_FAULTS=OFF (the fault layer left out), for the end-to-end cost of
# the layer itself (the fault_layer_off test leaves one in BUILD/fault-off):
#   cmake -S . -B build-off -DUNBLOCK_FAULTS=OFF -DUNBLOCK_BUILD_TESTS=OFF
#   cmake --build build-off --target unblock
set -eu
build=$1
off=${2:-}
lib=$build/libunblock.so
echo "== 1. in-process (tests/fault/fault_cost)"
"$build/tests/fault/fault_cost"
echo
echo "== 2. read(fd, buf, 1) from /dev/zero, main thread (tests/fault/fault_bench), ns per call"
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
row() { # label, then env assignments
  local label=$1; shift
  local v
  v=$(for _ in 1 2 3 4 5; do env "$@" "$build/tests/fault/fault_bench" 2000000; done | median)
  printf '  %-62s %6s\n' "$label" "$v"
}
row "plain (no preload)"
[ -n "$off" ] && row "unblock built without the fault layer (UNBLOCK_FAULTS=OFF)" LD_PRELOAD="$off/libunblock.so"
row "unblock, no fault configured" LD_PRELOAD="$lib"
row "unblock, a rule on another op (connect)" LD_PRELOAD="$lib" UNBLOCK_FAULTS="enable name=posix/io/net/connect"
row "unblock, rule on read that never fires (probability=0)" LD_PRELOAD="$lib" \
  UNBLOCK_FAULTS="enable_random name=posix/io/rw/read,probability=0"
row "unblock, rule on read scoped to another fd (fd=999)" LD_PRELOAD="$lib" \
  UNBLOCK_FAULTS="enable name=posix/io/rw/read,fd=999"
echo
echo "== 3. start-up, /bin/true (bench/startup, medians of 400 runs)"
st=$build/bench/startup
"$st" "$lib" 400
UNBLOCK_FAULTS="enable name=posix/io/net/connect" "$st" "$lib" 400 | sed 's/^/UNBLOCK_FAULTS set: /'
UNBLOCK_FAULT_FIFO=$(mktemp -d)/ctl "$st" "$lib" 400 | sed 's/^/UNBLOCK_FAULT_FIFO set: /'
"$st" "$lib /usr/lib/libfiu.so.0" 400 | sed 's/^/libfiu.so.0 loaded with it (as if linked): /'
