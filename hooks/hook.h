// Shared helpers for the extern "C" hooks.
//
// Every hook follows one shape: decide whether this call is ours (a fiber of
// a running runtime, not in a forked child, not inside a signal handler the
// runtime is running) and otherwise go straight to the real function. Hooks
// set errno only on failure and only to values the real call could return.
#pragma once

#include <cerrno>

#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "shim/real.h"

#define UNBLOCK_HOOK extern "C" __attribute__((visibility("default")))

namespace unblock::hooks {

// The calling fiber if the runtime may act for this call, else nullptr.
// Any context; async-signal-safe; no allocation.
inline Fiber* fiber_for_call() {
  Fiber* f = Fiber::current();
  if (!f || !sched::active()) return nullptr;
  return f;
}

// Sets errno to `err` and returns -1 (the libc convention).
inline int fail(int err) {
  errno = err;
  return -1;
}

}  // namespace unblock::hooks
