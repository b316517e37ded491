#!/usr/bin/env bash
# lockrank_runtime.sh SOURCE_DIR LOCKRANK_BUILD MAIN_BUILD REGEX
# The runtime with its lock-order checker on (runtime/lockrank.h): builds
# libunblock.so with -DUNBLOCK_LOCKRANK=ON in LOCKRANK_BUILD (kept between
# runs, so only the first run compiles everything), then reruns the main
# build's tests whose names match REGEX with that library in place of the
# main one. Any lock taken out of order aborts the program with both locks'
# names, which fails the test it ran in.
set -u
src=$1 build=$2 main=$3 regex=$4
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNBLOCK_LOCKRANK=ON -DUNBLOCK_BUILD_TESTS=OFF \
  -DUNBLOCK_BUILD_DEMO=OFF >"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
cmake --build "$build" -j2 --target unblock >"$build.build.log" 2>&1 || { tail -40 "$build.build.log"; exit 1; }
lib=$build/libunblock.so
nm "$lib" | grep -q lockrank.*acquire || { echo "FAIL: $lib has no lock-rank checker"; exit 1; }
tests=$(ctest --test-dir "$main" --show-only=json-v1 2>/dev/null | python3 -c '
import json, re, shlex, sys
lib, main, regex = sys.argv[1], sys.argv[2], sys.argv[3]
for t in json.load(sys.stdin)["tests"]:
    if not re.search(regex, t["name"]) or "command" not in t:
        continue
    cmd = [c.replace(main + "/libunblock.so", lib) for c in t["command"]]
    wd = next((p["value"] for p in t.get("properties", []) if p["name"] == "WORKING_DIRECTORY"), main)
    print(t["name"] + "\t" + wd + "\t" + " ".join(shlex.quote(c) for c in cmd))
' "$lib" "$main" "$regex")
[ -n "$tests" ] || { echo "FAIL: no test matches $regex"; exit 1; }
fail=0 n=0
while IFS=$'\t' read -r name wd cmd; do
  n=$((n + 1))
  out=$(cd "$wd" && timeout -k 5 240 bash -c "$cmd" 2>&1)
  rc=$?
  if [ $rc = 77 ]; then echo "skip  $name"; continue; fi
  if [ $rc != 0 ] || echo "$out" | grep -q 'lock order violation'; then
    echo "FAIL  $name (exit $rc)"; echo "$out" | tail -20; fail=1
  else
    echo "ok    $name"
  fi
done <<<"$tests"
[ $fail = 0 ] && echo "$n tests passed with the lock-order checker on"
exit $fail
