#!/usr/bin/env bash
# engine_select.sh LIB NO_IO_URING_PROG THREADS_PROG
# UNBLOCK_ENGINE selection (runtime/engine.cpp): what UNBLOCK_STATS and the
# log say for each value, with io_uring refused by a seccomp filter
# (NO_IO_URING_PROG 1) and allowed (THREADS_PROG).
set -u
lib=$1 deny=$2 threads=$3
fail=0
check() { # description, then the command; its output must match the pattern in $want
  local what=$1; shift
  local out
  out=$(timeout -k 5 30 env -u UNBLOCK_ENGINE LD_PRELOAD="$lib" "$@" 2>&1 >/dev/null)
  if ! printf '%s\n' "$out" | grep -qE "$want"; then
    echo "FAIL: $what: expected /$want/, got:"; printf '%s\n' "$out" | head -20; fail=1
  fi
}
# io_uring refused, auto: epoll, said in the stats and (info) in the log.
want='^engine epoll$' check "auto, io_uring refused: stats" env UNBLOCK_STATS=stderr "$deny" 1
want='engine: epoll \(io_uring: Operation not permitted\)' check "auto, io_uring refused: log" env UNBLOCK_LOG=info "$deny" 1
# Asked for explicitly.
want='^engine epoll$' check "UNBLOCK_ENGINE=epoll: stats" env UNBLOCK_ENGINE=epoll UNBLOCK_STATS=stderr "$threads"
want='engine: epoll \(UNBLOCK_ENGINE=epoll\)' check "UNBLOCK_ENGINE=epoll: log" env UNBLOCK_ENGINE=epoll UNBLOCK_LOG=info "$threads"
# off, and uring when io_uring is refused: the runtime does not start.
want='not starting the runtime \(engine: UNBLOCK_ENGINE=off\)' check "off: log" env UNBLOCK_ENGINE=off UNBLOCK_LOG=warn "$threads"
want='not starting the runtime \(engine: UNBLOCK_ENGINE=uring, io_uring: Operation not permitted\)' \
  check "uring, io_uring refused: log" env UNBLOCK_ENGINE=uring UNBLOCK_LOG=warn "$deny" 1
out=$(timeout -k 5 30 env -u UNBLOCK_ENGINE LD_PRELOAD="$lib" UNBLOCK_ENGINE=off UNBLOCK_STATS=stderr "$threads" 2>&1 >/dev/null)
if ! printf '%s\n' "$out" | grep -qx 'fibers_spawned 0' || ! printf '%s\n' "$out" | grep -qx 'engine none'; then
  echo "FAIL: off: the runtime started:"; printf '%s\n' "$out" | head -20; fail=1
fi
# A bad value: one message, then the default (auto).
out=$(timeout -k 5 30 env -u UNBLOCK_ENGINE LD_PRELOAD="$lib" UNBLOCK_ENGINE=bogus UNBLOCK_STATS=stderr "$deny" 1 2>&1 >/dev/null)
n=$(printf '%s\n' "$out" | grep -c 'UNBLOCK_ENGINE="bogus" ignored: expected auto|uring|epoll|off')
if [ "$n" != 1 ] || ! printf '%s\n' "$out" | grep -qx 'engine epoll'; then
  echo "FAIL: bad value: $n messages; output:"; printf '%s\n' "$out" | head; fail=1
fi
# io_uring allowed, auto: io_uring when this machine has it.
if out=$(timeout -k 5 30 env -u UNBLOCK_ENGINE LD_PRELOAD="$lib" UNBLOCK_ENGINE=uring UNBLOCK_STATS=stderr "$threads" 2>&1 >/dev/null) &&
   printf '%s\n' "$out" | grep -qx 'engine io_uring'; then
  want='^engine io_uring$' check "auto, io_uring allowed: stats" env UNBLOCK_STATS=stderr "$threads"
fi
exit $fail
