#!/usr/bin/env bash
# idle_cpu.sh LIB PROGRAM
# A program whose threads all wait (sleep, condition wait, blocking read)
# must cost no CPU under the preload: the workers and the monitor sleep in
# the kernel. Counts the process's CPU ticks over 2 seconds of idleness;
# more than 2 ticks (20 ms at USER_HZ=100) means something is spinning.
set -u
lib=$1 prog=$2
LD_PRELOAD=$lib "$prog" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
sleep 1  # let it reach its waits
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
a=$(ticks); sleep 2; b=$(ticks)
threads=$(awk '/^Threads:/{print $2}' "/proc/$pid/status")
echo "CPU ticks while idle: $((b - a)) (threads: $threads)"
[ $((b - a)) -le 2 ]
