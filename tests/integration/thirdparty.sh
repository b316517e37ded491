#!/usr/bin/env bash
# thirdparty.sh LIB
# Unmodified programs from Debian packages, run plain and under the preload,
# must give identical results:
#  - python3's ThreadingHTTPServer (a thread per request, blocking sockets,
#    the GIL's mutexes and conditions) serving files to curl, with 50
#    concurrent requests; curl itself runs under the preload too;
#  - git (init, add, commit, log, gc) on a small repository;
#  - make -j2 driving gcc to build a small program, whose output is compared;
#  - a Java program (tests/integration/java/ThreadsEcho.java): thread per
#    connection, a client pool, GC safepoints, monitors, interrupts;
#  - xz -T2 and zstd -T2 round trips of a file (compression threads).
# Loopback only; every server is stopped by its PID.
set -u
lib=$1
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
fail=0
check() { if [ "$2" = "$3" ]; then echo "PASS $1"; else echo "FAIL $1: plain '$2' vs preload '$3'"; fail=1; fi; }
need() { command -v "$1" >/dev/null || { echo "SKIP: $1 not installed"; return 1; }; }

# --- python3 http.server + curl -------------------------------------------------
if need python3 && need curl; then
  mkdir -p "$dir/www"
  head -c 300000 /dev/urandom >"$dir/www/blob.bin"
  for i in $(seq 50); do echo "page $i" >"$dir/www/p$i.txt"; done
  serve() { # mode -> prints a digest of every response fetched
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ "$1" = preload ]; then
      (cd "$dir/www" && LD_PRELOAD=$lib UNBLOCK_STATS=$dir/py.stats exec python3 -m http.server "$port" --bind 127.0.0.1) >/dev/null 2>&1 &
    else
      (cd "$dir/www" && exec python3 -m http.server "$port" --bind 127.0.0.1) >/dev/null 2>&1 &
    fi
    local spid=$!
    pids+=("$spid")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/p1.txt" && break; sleep 0.1; done
    local pre=()
    [ "$1" = preload ] && pre=(env "LD_PRELOAD=$lib")
    for i in $(seq 50); do "${pre[@]}" curl -s "http://127.0.0.1:$port/p$i.txt" >"$dir/$1.p$i" & done
    "${pre[@]}" curl -s "http://127.0.0.1:$port/blob.bin" | md5sum >"$dir/$1.blob"
    "${pre[@]}" curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$port/missing" >"$dir/$1.404"
    wait $(jobs -p | grep -v "^$spid$") 2>/dev/null
    # Python handles SIGINT (KeyboardInterrupt) and exits 0 on it: a clean shutdown.
    kill -INT "$spid"; wait "$spid"; echo "exit $?" >"$dir/$1.exit"
    cat "$dir"/"$1".p* "$dir/$1.blob" "$dir/$1.404" "$dir/$1.exit" | md5sum
  }
  a=$(serve plain); b=$(serve preload)
  check "python3 http.server + curl (50 concurrent requests, 300 KB file, 404, SIGINT exit)" "$a" "$b"
  spawned=$(awk '$1=="fibers_spawned"{print $2}' "$dir/py.stats" 2>/dev/null)
  if [ "${spawned:-0}" -ge 50 ]; then echo "PASS python3 ran its request threads as fibers ($spawned)";
  else echo "FAIL python3 request threads were not fibers (${spawned:-none})"; fail=1; fi
fi

# --- git ---------------------------------------------------------------------------
if need git; then
  gitrun() {
    local d="$dir/git-$1"; mkdir -p "$d"; cd "$d" || return
    local pre=(); [ "$1" = preload ] && pre=(env "LD_PRELOAD=$lib")
    export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
    export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.invalid
    {
      "${pre[@]}" git init -q -b main .
      for i in $(seq 30); do seq "$i" 200 >"f$i"; done
      "${pre[@]}" git add . && "${pre[@]}" git commit -q -m first
      for i in $(seq 10); do echo change >>"f$i"; done
      "${pre[@]}" git -c pack.threads=2 commit -qam second
      "${pre[@]}" git -c pack.threads=2 gc -q --aggressive
      "${pre[@]}" git log --stat --format='%H %s'
      "${pre[@]}" git fsck --full 2>&1 | sort
      "${pre[@]}" git status --short
    } 2>&1 | md5sum
    cd - >/dev/null || true
  }
  check "git init/add/commit/gc (2 pack threads)/log/fsck" "$(gitrun plain)" "$(gitrun preload)"
fi

# --- make -j2 + gcc ------------------------------------------------------------------
if need make && need gcc; then
  build() {
    local d="$dir/make-$1"; mkdir -p "$d"
    for i in 1 2 3 4; do printf 'int f%d(int x) { return x * %d; }\n' "$i" "$i" >"$d/f$i.c"; done
    printf '#include <stdio.h>\nint f1(int),f2(int),f3(int),f4(int);\nint main(void){printf("%%d\\n", f1(1)+f2(2)+f3(3)+f4(4));return 0;}\n' >"$d/main.c"
    printf 'prog: main.o f1.o f2.o f3.o f4.o\n\tgcc -o $@ $^\n%%.o: %%.c\n\tgcc -O2 -c $<\n' >"$d/Makefile"
    if [ "$1" = preload ]; then (cd "$d" && LD_PRELOAD=$lib make -s -j2 && LD_PRELOAD=$lib ./prog); else (cd "$d" && make -s -j2 && ./prog); fi
  }
  check "make -j2 with gcc, program output" "$(build plain)" "$(build preload)"
fi

# --- the JVM -----------------------------------------------------------------------
if need javac && need java; then
  src=$(dirname "$0")/java/ThreadsEcho.java
  mkdir -p "$dir/java" && javac -d "$dir/java" "$src"
  jrun() {
    if [ "$1" = preload ]; then
      LD_PRELOAD=$lib UNBLOCK_STATS=$dir/java.stats timeout 120 java -cp "$dir/java" ThreadsEcho 2>&1
    else
      timeout 120 java -cp "$dir/java" ThreadsEcho 2>&1
    fi
    echo "exit $?"
  }
  check "java ThreadsEcho output and status" "$(jrun plain)" "$(jrun preload)"
  spawned=$(awk '$1=="fibers_spawned"{print $2}' "$dir/java.stats" 2>/dev/null)
  check "java threads ran as fibers" yes "$([ "${spawned:-0}" -ge 50 ] && echo yes || echo "no (${spawned:-none})")"
fi

# --- multi-threaded compressors ----------------------------------------------------------
seq 1 400000 >"$dir/numbers.txt"
for tool in xz zstd; do
  need "$tool" || continue
  squeeze() {
    local pre=()
    [ "$1" = preload ] && pre=(env "LD_PRELOAD=$lib")
    "${pre[@]}" "$tool" -T2 -c "$dir/numbers.txt" >"$dir/$1.$tool" && "${pre[@]}" "$tool" -d -c "$dir/$1.$tool" | md5sum
  }
  check "$tool -T2 round trip" "$(squeeze plain)" "$(squeeze preload)"
done

exit $fail
