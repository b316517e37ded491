#!/usr/bin/env bash
# launcher.sh LAUNCHER PROG
# The launcher's --fault options (collected into UNBLOCK_FAULTS, ';'-separated)
# reach unblock's points: every read entry point fails with EIO. A launcher
# that is missing or lost --fault fails the test (never a skip: that
# regression must not pass unseen).
set -u
launcher=$1 prog=$2
[ -x "$launcher" ] || { echo "no launcher at $launcher"; exit 1; }
"$launcher" --help 2>&1 | grep -q -- '--fault' || { echo "$launcher has no --fault option"; exit 1; }
out=$(timeout -k 2 30 "$launcher" --fault 'enable name=posix/io/rw/read,errno=EIO' \
  --fault 'enable name=posix/io/rw/pread,errno=EIO' --fault 'enable name=posix/io/rw/readv,errno=EIO' \
  --fault 'enable_random name=posix/io/rw/preadv,probability=1,errno=EIO' "$prog" read thread 2>&1)
echo "$out"
bad=$(echo "$out" | grep -v ' -1 EIO$')
[ -z "$bad" ] && [ -n "$out" ] || { echo "FAIL: entry points the launcher's faults missed"; exit 1; }
echo "unblock --fault ... : every read entry point failed with EIO"
