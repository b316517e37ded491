#!/usr/bin/env bash
# check_symbols.sh EXPORTS_MAP LIBUNBLOCK [ARCHIVE...]
# 1. Every name the version script exports is defined in libunblock.so: a
#    name the script lists but nothing defines is silently dropped by the
#    linker, and that hook would stop hooking without anyone noticing
#    (a deleted hooks source, a renamed function).
# 2. With archives: none of the library's own objects calls one of those
#    names (an undefined reference to it). Inside libunblock.so such a call
#    would bind to the library's own hook, so the runtime's descriptors and
#    signals would pass through fault injection and the emulation; internal
#    calls go through raw_syscall or unblock::real instead.
# 3. With archives: every hook renamed for the fault layer (unblock_hook_X,
#    hooks/fault.h) is exported as X by the version script (its wrapper,
#    fault/wrappers.def, defines X; check 1 sees that it is defined): a
#    faultable hook without a table row would otherwise be hidden for good.
# Run after every link of the library (a build error) and as a test.
set -u
map=$1 lib=$2; shift 2
names=$(perl -0pe 's|/\*.*?\*/||gs' "$map" | sed -n '/global:/,/local:/p' | tr ';' '\n' |
        tr -d ' \t' | grep -v -e '^global:$' -e '^local:' -e '^$' | sort -u)
[ -n "$names" ] || { echo "check_symbols: no names read from $map"; exit 1; }
fail=0
defined=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u)
missing=$(comm -23 <(echo "$names") <(echo "$defined"))
if [ -n "$missing" ]; then
  echo "check_symbols: exported in $(basename "$map") but not defined in $(basename "$lib"):"
  echo "$missing" | sed 's/^/  /'
  fail=1
fi
for a in "$@"; do
  calls=$(nm -u -A "$a" 2>/dev/null | awk '{print $NF" "$1}' | sed 's/@[^ ]*//' |
          awk 'NR==FNR {want[$1]=1; next} ($1 in want) {sub(/:$/, "", $2); print "  " $2 " calls " $1}' \
              <(echo "$names") -)
  if [ -n "$calls" ]; then
    echo "check_symbols: the library's own code calls its exported hooks (use raw_syscall or unblock::real):"
    echo "$calls"
    fail=1
  fi
done
renamed=$(for a in "$@"; do nm --defined-only "$a" 2>/dev/null; done | awk '{print $NF}' |
          sed -n 's/^unblock_hook_//p' | sort -u)
if [ -n "$renamed" ]; then
  unwrapped=$(comm -23 <(echo "$renamed") <(echo "$names"))
  if [ -n "$unwrapped" ]; then
    echo "check_symbols: faultable hooks (fault/wrappers.def rows) whose name $(basename "$map") does not export:"
    echo "$unwrapped" | sed 's/^/  unblock_hook_/'
    fail=1
  fi
fi
[ $fail = 0 ] && echo "check_symbols: $(echo "$names" | wc -l) exported names defined; no internal calls to them"
exit $fail
