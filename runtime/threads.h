// Runtime-internal pieces of the thread family (runtime/threads.cpp,
// runtime/thread_ids.cpp): what the scheduler runs on a dying fiber, the
// delivery of due handlers on the way out of a call, and the lookup of the
// fiber a thread id names. Not for hooks (they use runtime/api.h).
#pragma once

#include <type_traits>

#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"

namespace unblock::threads {

// On the dying fiber f, after C++ thread_local destructors (the order
// glibc's start_thread uses): the program's key destructors, then what the
// kernel does for an exiting thread's robust mutexes (the kernel never sees
// a fiber exit). Called by sched::exit_fiber. Fiber f, outside the runtime;
// may suspend (a destructor may block).
void exit_duties(Fiber* f);

// Runs the handlers of signals queued for the calling fiber that it does
// not block, as the kernel does on the return from a system call: for calls
// that often return without parking and may be called in a tight loop (the
// sync family, joins, sched_yield). Fiber or plain thread, outside the
// runtime; may suspend; one thread-local and two plain loads when nothing
// is due. Inline: it runs after every sync call.
inline void deliver_due() {
  Fiber* f = Fiber::current();
  if (!f) return;
  uint64_t mask = __atomic_load_n(reinterpret_cast<const uint64_t*>(&f->sigmask), __ATOMIC_RELAXED);
  if (__builtin_expect((f->sig.queue.hint() & ~mask) != 0, 0) && f->runtime_depth == 0 && sched::active()) {
    signals::run_pending(f);
  }
}

// fn(f) for the fiber a call that takes a thread id means: the caller
// `self` (nullptr on a plain thread) for id 0 or its own id, else the live
// fiber with that id, under the registry lock (fn must not block). False:
// the id is no fiber's, and the kernel's call serves it.
template <typename Fn>
bool for_thread_id(Fiber* self, int id, Fn&& fn) {
  if (self && (id == 0 || id == self->tid)) {
    fn(self);
    return true;
  }
  if (!sched::active() || id <= 0) return false;
  using F = std::remove_reference_t<Fn>;
  return sched::with_fiber_by_tid(id, [](Fiber* f, void* a) { (*static_cast<F*>(a))(f); }, &fn);
}

// pthread_kill's rules for a signal to fiber `target` (a thread of the
// emulation): 0 for signal 0, EINVAL for glibc's own signals or an invalid
// number, SIGKILL/SIGSTOP to the process, else delivered through the
// emulation (before returning if target is the caller). Returns 0 or a
// positive errno. Any thread; may be called under the registry lock for
// another fiber (it never blocks then). (runtime/signal_calls.cpp)
int thread_signal(Fiber* target, const siginfo_t& si);

}  // namespace unblock::threads
