// Thread cancellation (pthread_cancel) for fibers, with glibc's semantics.
//
// Responsible for: the cancellation request of a fiber (kept where glibc
// keeps it, the `cancelhandling` word of the fiber's own TCB, so glibc's
// pthread_setcancelstate/-type, pthread_testcancel and its internal
// cancellation points read and write the very same state); waking a fiber
// parked in a cancellation point; acting on a request by glibc's own forced
// unwind (cleanup handlers, C++ destructors, then the fiber entry's unwind
// buffer, as start_thread's); asynchronous cancellation of a fiber running
// the program's code (through the signal marker, runtime/signals.cpp); and
// main's unwind buffer, which glibc would use to end the carrier's OS thread.
//
// Must not: unwind from inside the runtime (between sched::enter/leave), from
// a park whose I/O is still in flight, or with a parking-lot node queued:
// every caller of point() has finished its wait (the API's engine wait, runtime/api.cpp, waits for the
// cancelled operation's completion) before calling it.
//
// How a request reaches a parked fiber: every interruptible park (the EINTR
// contract, runtime/signals.h) is also cancellable, and condition waits and
// joins park cancellably too. A cancellable park returns kInterrupted when
// the owner's request is due (enabled, requested, not exiting); the scheduler
// re-checks that after the fiber's context is saved, and request() wakes the
// fiber after setting the bit, so a request racing with the park is never
// lost (the same pairing as a permit). The hook then cancels its io_uring
// operation and waits for its completion, runs pending signal handlers
// (run_pending), and calls point(), which unwinds.
//
// What glibc's layout this needs (2.36; checked at start-up by tls.cpp and
// here): cancelhandling bits 0 disabled, 1 asynchronous, 2 canceling,
// 3 canceled, 4 exiting, 5 terminated (nptl/descr.h); the x86-64 jmp_buf
// slots (RSP 6, PC 7, mangled with the pointer guard).
#pragma once

#include <pthread.h>

#include "runtime/tls.h"

namespace unblock {
class Fiber;
namespace cancel {

// True when f (a fiber) or the thread whose TCB is tp must act on a
// cancellation request at its next cancellation point. Any thread; one load;
// async-signal-safe.
bool due(const Fiber* f);
bool due_tp(void* tp);
// True when f must act now, wherever it runs: due and of the asynchronous type.
bool async_due(const Fiber* f);

// A cancellation point of the calling fiber or plain thread: if a request is
// due, unwinds the caller (cleanup handlers, destructors) and ends it with
// PTHREAD_CANCELED; otherwise returns. Outside the runtime; may not return;
// does not allocate (the unwinder was loaded by the requester).
// Inline for the common case (nothing due: one load of the TCB word, as
// due_tp); the rest, and an unknown layout, in point_slow.
void point_slow();
// cancelhandling bits (see the top): disabled 0, canceled 3, exiting 4,
// terminated 5; due = canceled alone among them.
constexpr int kDueMask = (1 << 0) | (1 << 3) | (1 << 4) | (1 << 5);
constexpr int kDueValue = 1 << 3;
inline void point() {
  int* w = tls::cancelhandling_of(tls::current_tp());
  if (__builtin_expect(w != nullptr, 1) && (__atomic_load_n(w, __ATOMIC_SEQ_CST) & kDueMask) != kDueValue) return;
  point_slow();
}

// pthread_cancel(3) of a fiber, from any fiber or plain thread. Returns 0 (an
// ended, unjoined fiber is not an error, as in glibc 2.36). When the target
// is the caller and cancellation is asynchronous, it does not return.
int request(Fiber* target);

// Loads the unwinder glibc's forced unwind uses (libgcc_s.so.1), as glibc's
// pthread_cancel does before it sends anything, so the target never has to
// dlopen it itself (maybe inside a signal handler), and readies this
// library's own static copy of libgcc's personality support for that unwind
// (see cancel.cpp). Before any forced unwind may cross the library's frames:
// pthread_cancel and pthread_exit call it. Any thread, not a signal handler;
// may allocate (once). False if libgcc_s cannot be loaded.
bool prepare_unwinder();

// Readies this library's private copy of libgcc's personality support for
// an unwind by another unwinder (see cancel.cpp): before the program's code
// may unwind through one of our frames that has a destructor (a forced
// unwind, or a C++ exception thrown by a pthread_once routine). Any thread,
// not a signal handler; does not allocate after the first call.
void prime_personality();

// Acts on an asynchronous request of f from the signal marker's handler,
// which interrupted f at a safe point (the program's own code). May not
// return. Signal handler on f's carrier only.
void act_in_handler(Fiber* f);

// The adopted main fiber: redirects the innermost glibc unwind buffer on
// main's stack (__libc_start_call_main's) to the runtime, so that an unwind
// of main (cancellation, pthread_exit) ends main's fiber instead of the
// carrier's OS thread. True if done (then f->unwind_limit is set).
// Main fiber, at adoption; before any other fiber runs.
bool adopt_main(Fiber* f);

}  // namespace cancel
}  // namespace unblock
