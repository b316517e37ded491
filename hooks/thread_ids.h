// Thread ids for fibers (hooks/thread_ids.cpp): the system calls that name a
// thread by id, for the syscall() entry point (hooks/futex.cpp).
#pragma once

#include "runtime/fiber.h"
#include "runtime/scheduler.h"

#include <type_traits>

namespace unblock::hooks {

// Serves system call `nr` with arguments a[0..5] if it names a fiber's
// thread id (gettid, tgkill, tkill, rt_tgsigqueueinfo, sched_setaffinity,
// sched_getaffinity, setpriority/getpriority and ioprio_set/ioprio_get with
// PRIO_PROCESS / IOPRIO_WHO_PROCESS): *ret gets the kernel-style result
// (>= 0 or -errno) and true is returned. False: the kernel should serve it.
// Any thread; may deliver a signal handler when the caller signals itself.
bool thread_id_syscall(long nr, const long* a, long* ret);

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

}  // namespace unblock::hooks
