#!/usr/bin/env bash
# run_entry_points.sh LIB PROG GROUP [thread] [fiu_enable]
# Runs entry_points GROUP plain (every entry point must succeed), then under
# the preload with the group's libfiu points enabled with errno=EIO (every
# entry point must fail with exactly EIO). With "fiu_enable" the points come
# from FIU_ENABLE (newline-separated, libfiu's failinfo=5) instead of
# UNBLOCK_FAULTS. Bounded: 20 s per run.
set -u
lib=$1 prog=$2 group=$3 mode=${4:-main} source=${5:-unblock}
case $group in
  read)    points="posix/io/rw/read posix/io/rw/pread posix/io/rw/readv posix/io/rw/preadv" ;;
  write)   points="posix/io/rw/write posix/io/rw/pwrite posix/io/rw/writev posix/io/rw/pwritev" ;;
  recv)    points="posix/io/net/recv posix/io/net/recvfrom posix/io/net/recvmsg posix/io/rw/read" ;;
  send)    points="posix/io/net/send posix/io/net/sendto posix/io/net/sendmsg" ;;
  accept)  points="posix/io/net/accept" ;;
  connect) points="posix/io/net/connect" ;;
  open)    points="posix/io/oc/open" ;;
  sync)    points="posix/io/sync/* posix/io/oc/close" ;;
  poll)    points="posix/io/net/poll posix/io/net/select posix/io/net/pselect linux/io/epoll_wait" ;;
  splice)  points="linux/io/*" ;;
  socket)  points="posix/io/net/socket" ;;
  *) echo "unknown group $group"; exit 2 ;;
esac
threadarg=; [ "$mode" = thread ] && threadarg=thread
plain=$(timeout -k 2 20 "$prog" "$group" $threadarg 2>&1) || { echo "plain run failed:"; echo "$plain"; exit 1; }
if echo "$plain" | grep -v ' ok$' | grep -v '^closed-fd-gone yes$' | grep -q .; then
  echo "plain run: an entry point failed without faults:"; echo "$plain"; exit 1
fi
unblock_faults= fiu_enable=
for p in $points; do
  if [ "$source" = fiu_enable ]; then fiu_enable+="enable name=$p,failinfo=5"$'\n'
  else unblock_faults+="enable name=$p,errno=EIO;"; fi
done
faulty=$(UNBLOCK_FAULTS=$unblock_faults FIU_ENABLE=$fiu_enable LD_PRELOAD=$lib timeout -k 2 20 "$prog" "$group" $threadarg 2>&1)
rc=$?
echo "$faulty"
[ $rc = 0 ] || { echo "faulty run exited $rc"; exit 1; }
bad=$(echo "$faulty" | grep -v ' -1 EIO$' | grep -v '^closed-fd-gone yes$')
[ -z "$bad" ] || { echo "entry points that missed their point:"; echo "$bad"; exit 1; }
[ "$(echo "$plain" | wc -l)" = "$(echo "$faulty" | wc -l)" ] || { echo "line counts differ"; exit 1; }
echo "every $group entry point reached its point ($(echo "$faulty" | grep -c EIO) calls)"
