#!/usr/bin/env bash
# seed.sh LIB PROG
# Reproducibility: the same UNBLOCK_FAULT_SEED gives the same faults for the
# same calls, a different seed different ones; FIU_PRNG_SEED is the fallback;
# the fault log records each fault with its point and call number.
#   - one thread: identical output and identical fault log (any worker count);
#   - four threads on one worker (UNBLOCK_WORKERS=1): identical output;
#   - four threads on two workers: which thread meets the k-th call of a
#     point may change, but the faults of the k-th call do not: the fault
#     log's (point, k, what) lines are the same set.
set -u
lib=$1 prog=$2
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
faults="enable_random name=posix/io/rw/read,probability=0.2;enable_random name=unblock/short/posix/io/rw/read,probability=0.2"
run() { # name seed-env threads workers
  rm -f "$dir/$1.log"
  timeout -k 2 30 env $2 UNBLOCK_WORKERS=$4 UNBLOCK_FAULTS="$faults" UNBLOCK_FAULT_LOG="$dir/$1.log" \
    LD_PRELOAD="$lib" "$prog" "$3" 200 >"$dir/$1.out" 2>&1 || { echo "$1: exit $?"; cat "$dir/$1.out"; exit 1; }
  # Fields: time pid thread call fd point k what. Time, pid and thread id
  # vary from run to run; with several threads so does which fd a thread got.
  grep -v '^#' "$dir/$1.log" | cut -d' ' -f4- >"$dir/$1.faults"
  grep -v '^#' "$dir/$1.log" | cut -d' ' -f4,6- | sort >"$dir/$1.sorted"
}
same() { cmp -s "$dir/$1" "$dir/$2" || { echo "FAIL: $1 and $2 differ"; diff "$dir/$1" "$dir/$2" | head; exit 1; }; }
run a UNBLOCK_FAULT_SEED=42 1 2
run b UNBLOCK_FAULT_SEED=42 1 1
run c UNBLOCK_FAULT_SEED=43 1 2
run d FIU_PRNG_SEED=42 1 2
same a.out b.out; same a.faults b.faults; same a.out d.out
if cmp -s "$dir/a.out" "$dir/c.out"; then echo "FAIL: seeds 42 and 43 gave the same faults"; exit 1; fi
n=$(wc -l <"$dir/a.faults")
[ "$n" -gt 20 ] || { echo "FAIL: only $n faults in 200 reads"; exit 1; }
head -3 "$dir/a.log"
echo "one thread: seed 42 twice -> the same $n faults; seed 43 -> others; FIU_PRNG_SEED=42 -> the same"
# The order of the threads' calls on one worker is fixed unless the monitor
# hands the worker to another OS thread, which a loaded machine's preemption
# of the carrier for over UNBLOCK_HANDOFF_US causes: no hand-off here.
nohand=UNBLOCK_HANDOFF_US=10000000
run e "UNBLOCK_FAULT_SEED=7 $nohand" 4 1
run f "UNBLOCK_FAULT_SEED=7 $nohand" 4 1
run g "UNBLOCK_FAULT_SEED=7 $nohand" 4 1
same e.out f.out; same e.out g.out
echo "four threads, one worker: identical three times ($(wc -l <"$dir/e.faults") faults)"
run h UNBLOCK_FAULT_SEED=7 4 2
run i UNBLOCK_FAULT_SEED=7 4 2
same h.sorted i.sorted; same h.sorted e.sorted
echo "four threads, two workers: the same (point, k, fault) set; per-thread placement may differ"
