#!/usr/bin/env bash
# check_hook_includes.sh FILE...
# Hooks forward to the runtime through one header, runtime/api.h: a hook
# that includes another runtime header can reach into fibers, engines and
# schedulers and grow a second copy of the blocking-call protocol
# (docs/DESIGN.md, "The blocking-call state machine"). Fails, naming file and
# line, if any FILE includes a runtime/ header other than runtime/api.h.
# Run before every build of the hooks (hooks/CMakeLists.txt: a build error)
# and as a test.
set -u
[ $# -gt 0 ] || { echo "check_hook_includes: no files given"; exit 1; }
bad=$(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]runtime/' "$@" /dev/null |
      grep -vE '[<"]runtime/api\.h[>"]')
if [ -n "$bad" ]; then
  echo "check_hook_includes: hooks may include runtime/api.h only:"
  echo "$bad" | sed 's/^/  /'
  exit 1
fi
echo "check_hook_includes: $# files include no runtime header but runtime/api.h"
