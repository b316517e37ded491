#!/usr/bin/env bash
# layer_off.sh SOURCE_DIR BUILD_DIR ENTRY_POINTS_PROG TICKER_PROG
# The fault layer compiled out (-DUNBLOCK_FAULTS=OFF) in a build of its own
# (BUILD_DIR, kept between runs so that only the first run compiles
# everything; the library and the launcher only):
#  - the library builds and links (check_symbols runs after the link): the
#    hooks are the exports, nothing is renamed, libfiu's calls are not
#    exported;
#  - a program asking for faults through UNBLOCK_FAULTS runs unharmed and is
#    told once that fault injection is compiled out;
#  - the launcher refuses --fault, saying why;
#  - unblock-ctl faults list/add on a running program say so too.
set -u
src=$1 build=$2 prog=$3 ticker=$4
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNBLOCK_FAULTS=OFF -DUNBLOCK_BUILD_TESTS=OFF \
  -DUNBLOCK_BUILD_DEMO=OFF >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j2 --target unblock unblock-launcher unblock-ctl >"$build.build.log" 2>&1 ||
  { tail -40 "$build.build.log"; exit 1; }
lib=$build/libunblock.so
"$src/tests/build/check_symbols.sh" "$build/exports.map" "$lib" "$build"/runtime/libunblock_runtime.a \
  "$build"/shim/libunblock_shim.a "$build"/hooks/libunblock_hooks.a "$build"/fault/libunblock_fault.a || exit 1
syms=$(nm -D --defined-only "$lib" | awk '{print $NF}')
echo "$syms" | grep -qx read || { echo "FAIL: read is not exported"; exit 1; }
if echo "$syms" | grep -q '^fiu_'; then echo "FAIL: libfiu's calls exported without the fault layer"; exit 1; fi
if nm "$lib" | grep -q 'unblock_hook_\|armed_read'; then echo "FAIL: fault layer symbols in the library"; exit 1; fi

out=$(UNBLOCK_FAULTS='enable name=posix/io/rw/read,errno=EIO' LD_PRELOAD=$lib timeout -k 2 20 "$prog" read thread 2>&1)
rc=$?
echo "$out"
[ $rc = 0 ] || { echo "FAIL: the program exited $rc"; exit 1; }
echo "$out" | grep -q 'UNBLOCK_FAULTS ignored: fault injection is compiled out' ||
  { echo "FAIL: no message that faults are compiled out"; exit 1; }
if echo "$out" | grep -q ' -1 E'; then echo "FAIL: a call failed"; exit 1; fi
echo "$out" | grep -q ' ok$' || { echo "FAIL: no entry point ran"; exit 1; }

msg=$("$build/unblock" --fault 'enable name=posix/io/rw/read' /bin/true 2>&1)
rc=$?
echo "$msg"
[ $rc = 2 ] && echo "$msg" | grep -q 'compiled out' || { echo "FAIL: the launcher accepted --fault (rc $rc)"; exit 1; }
dir=$(mktemp -d)
[ "$(id -u)" != 0 ] && [ -z "${XDG_RUNTIME_DIR:-}" ] && export UNBLOCK_CONTROL_DIR=$dir
LD_PRELOAD=$lib "$ticker" >/dev/null 2>&1 &  # ends by itself within 60 s
tpid=$!
trap 'kill $tpid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
list= add=
for _ in $(seq 50); do
  list=$("$build/unblock-ctl" faults $tpid list 2>&1) && break
  sleep 0.1
done
add=$("$build/unblock-ctl" faults $tpid add 'enable name=posix/io/rw/read' 2>&1)
echo "unblock-ctl faults list: $list"
echo "unblock-ctl faults add: $add"
echo "$list" | grep -q 'compiled out' || { echo "FAIL: faults list does not say faults are compiled out"; exit 1; }
echo "$add" | grep -q 'compiled out' || { echo "FAIL: faults add does not say faults are compiled out"; exit 1; }
echo "UNBLOCK_FAULTS=OFF: builds, passes calls through, and says faults are compiled out"
