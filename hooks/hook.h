// Shared helpers for the extern "C" hooks.
//
// A hook forwards: the fault check, one call into the runtime's API
// (runtime/api.h, the only runtime header hooks may include), and the
// errno translation of its -errno result. Whether a call is the runtime's
// (a fiber of a running runtime, not in a forked child, not inside a signal
// handler the runtime is running) is the API's to decide; the hottest hooks
// test it inline first so that a call outside a fiber costs a few loads and
// a tail call to the real function. Hooks set errno only on failure and
// only to values the real call could return.
#pragma once

#include <cerrno>

#include "runtime/api.h"
#include "shim/real.h"

#define UNBLOCK_HOOK extern "C" __attribute__((visibility("default")))

namespace unblock::hooks {

// The calling fiber if the runtime may act for this call, else nullptr.
// Any context; async-signal-safe; no allocation.
inline Fiber* fiber_for_call() { return rt::fiber_for_call(); }

// Runs the handlers of signals queued for the calling fiber that it does not
// block, as the kernel does on the return from a system call. For hooks that
// often return without parking and may be called in a tight loop (the sync
// family): the SIGURG marker acts only while the fiber runs outside the
// library's code, so a thread that spends most of its time in these calls
// would otherwise see its handlers late (a storm of them, tens of
// milliseconds each). Call it after the work and before setting errno. Fiber
// or plain thread, outside the runtime; may suspend (a handler may block);
// a call and two plain loads when nothing is due. The API's blocking
// functions run it themselves.
inline void deliver_due() { rt::deliver_due(); }

// Sets errno to `err` and returns -1 (the libc convention).
inline int fail(int err) {
  errno = err;
  return -1;
}

// An API result (>= 0, or -errno) in the libc convention: errno set only on
// failure.
inline long ret(long r) {
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

}  // namespace unblock::hooks
