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

// Runs the handlers of signals queued for the calling fiber that it does not
// block, as the kernel does on the return from a system call. For hooks that
// often return without parking and may be called in a tight loop (the sync
// family): the SIGURG marker acts only while the fiber runs outside the
// library's code, so a thread that spends most of its time in these calls
// would otherwise see its handlers late (a storm of them, tens of
// milliseconds each). Call it after the work and before setting errno. Fiber
// or plain thread, outside the runtime; may suspend (a handler may block);
// one thread-local and two plain loads when nothing is due.
inline void deliver_due() {
  Fiber* f = Fiber::current();
  if (!f) return;
  uint64_t mask = __atomic_load_n(reinterpret_cast<const uint64_t*>(&f->sigmask), __ATOMIC_RELAXED);
  if (__builtin_expect((f->sig.queue.hint() & ~mask) != 0, 0) && f->runtime_depth == 0 && sched::active()) {
    signals::run_pending(f);
  }
}

// Sets errno to `err` and returns -1 (the libc convention).
inline int fail(int err) {
  errno = err;
  return -1;
}

}  // namespace unblock::hooks
