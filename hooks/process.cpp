// Process hooks: fork and vfork (runtime/api.h, rt::fork: the child passes
// every later call through). vfork() is served by fork(): a vfork child
// shares the parent's memory, so hooks running in it could corrupt the
// parent's runtime state.
#include <unistd.h>

#include "hooks/hook.h"
#include "runtime/api.h"

using namespace unblock;

UNBLOCK_HOOK pid_t fork() {
  pid_t r = rt::fork();
  return r < 0 ? hooks::fail(-r) : r;
}

UNBLOCK_HOOK pid_t vfork() { return fork(); }
