#!/usr/bin/env bash
# launcher_test.sh LAUNCHER LIB: the launcher's options, environment and errors.
set -u
l=$1 lib=$2
fail=0
t() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fail=1; fi; }
t "--help lists the variables" "$l --help | grep -q UNBLOCK_WORKERS"
t "--version prints the version" "$l --version | grep -qE '^unblock [0-9]+\.[0-9]+'"
t "--workers sets UNBLOCK_WORKERS" "$l --workers 3 -- /usr/bin/env | grep -qx UNBLOCK_WORKERS=3"
t "LD_PRELOAD gets the library first" "$l /usr/bin/env | grep -qx 'LD_PRELOAD=$lib'"
t "an existing LD_PRELOAD is kept after it" "LD_PRELOAD=/x/other.so $l /usr/bin/env 2>/dev/null | grep -qx 'LD_PRELOAD=$lib /x/other.so'"
t "no duplicate when already preloaded" "LD_PRELOAD=$lib $l /usr/bin/env | grep -qx 'LD_PRELOAD=$lib'"
t "--fault specs joined into UNBLOCK_FAULTS" "$l --fault 'enable name=a' --fault 'enable name=b' /usr/bin/env | grep -qx 'UNBLOCK_FAULTS=enable name=a;enable name=b'"
t "--stack-size and --log" "$l --stack-size 256k --log warn /usr/bin/env | grep -c -e '^UNBLOCK_STACK_SIZE=256k$' -e '^UNBLOCK_LOG=warn$' | grep -qx 2"
out=$($l --workers lots /bin/true 2>&1); rc=$?
t "bad --workers: exit 2 and one message" "[ $rc = 2 ] && [ \$(echo \"\$out\" | grep -c 'unblock: --workers') = 1 ]"
$l /nonexistent/program 2>/dev/null; rc=$?
t "missing program: exit 127" "[ $rc = 127 ]"
$l 2>/dev/null; rc=$?
t "no program: exit 2" "[ $rc = 2 ]"
t "the program's exit status is kept" "$l /bin/sh -c 'exit 7'; [ \$? = 7 ]"
exit $fail
