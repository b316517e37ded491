// What runtime/api.cpp and runtime/api_wait.cpp share: the epilogue of an
// interrupted wait and the result conventions. Runtime only (hooks see
// runtime/api.h alone).
#pragma once

#include <time.h>

#include <cerrno>

#include "runtime/api.h"

namespace unblock::rt::detail {

// A timespec the kernel refuses with EINVAL (null is none: no timeout).
inline bool bad_timespec(const timespec* ts) {
  return ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000);
}

// The result of a libc call (-1 and errno) as -errno.
inline long sys(long r) { return r < 0 ? -errno : r; }

// The last step of every blocking call: the handlers due for the caller run
// before it returns, as the kernel runs them on the way out of a system
// call (the operation is complete by then), and after any temporary mask
// is restored.
inline long out(long r) {
  deliver_due();
  return r;
}

// The epilogue of an interrupted wait, the only copy: runs the handlers
// queued for f, then acts on its cancellation request (the interrupted
// operation has completed, so unwinding is safe). True if the call may be
// restarted (every handler that ran had SA_RESTART); the caller decides
// whether it is restartable at all. Fiber only; may suspend; may not
// return (cancellation).
bool after_interrupt(Fiber* f);

}  // namespace unblock::rt::detail
