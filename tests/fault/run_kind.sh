#!/usr/bin/env bash
# run_kind.sh LIB PROG KIND
# Runs "kinds KIND" under the preload with KIND's points enabled (the rules
# below), bounded in time; passes when the program reports PASS.
set -u
lib=$1 prog=$2 kind=$3
env=()
case $kind in
  delay)     faults="enable name=unblock/delay/posix/io/net/recv,ms=300"
             env=(UNBLOCK_WORKERS=1 DELAY_CONNS=1000 DELAY_MS=300) ;;
  short)     faults="enable name=unblock/short/posix/io/rw/write" ;;
  slice)     faults="enable name=unblock/short/posix/io/rw/write,bytes=100"; env=(SHORT_BYTES=100); kind=short ;;
  reduce)    faults="enable name=posix/io/rw/read/reduce" ;;
  reset)     faults="enable name=unblock/reset/posix/io/net/send" ;;
  eof_after) faults="enable name=unblock/eof_after/posix/io/net/recv,bytes=10" ;;
  hang)      faults="enable name=unblock/hang/posix/io/net/recv" ;;
  corrupt)   faults="enable name=unblock/corrupt/posix/io/net/recv" ;;
  refused)   faults="enable name=unblock/connect/refused" ;;
  timeout)   faults="enable name=unblock/connect/timeout,ms=300" ;;
  eintr)     faults="enable name=unblock/eintr/posix/io/net/recv" ;;
  tiny)      # Everything that changes a transfer's length or bytes, at every
             # call: zero- and one-byte transfers must come through intact.
             faults="enable name=posix/io/rw/read/reduce;enable name=posix/io/rw/write/reduce;enable name=unblock/short/*"
             faults+=";enable name=unblock/corrupt/*;enable name=unblock/eof_after/*,bytes=1000" ;;
  errno)     faults="enable name=posix/io/net/recv" ;;
  *) echo "unknown kind $kind"; exit 2 ;;
esac
out=$(env "${env[@]}" UNBLOCK_FAULTS="$faults" LD_PRELOAD="$lib" timeout -k 5 60 "$prog" "$kind" 2>&1)
rc=$?
echo "$out"
[ $rc = 0 ] && echo "$out" | grep -q "^$kind: PASS"
