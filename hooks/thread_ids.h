// Thread ids for fibers (hooks/thread_ids.cpp): the system calls that name a
// thread by id, for the syscall() entry point (hooks/futex.cpp).
#pragma once

namespace unblock::hooks {

// Serves system call `nr` with arguments a[0..5] if it names a fiber's
// thread id (gettid, tgkill, tkill, rt_tgsigqueueinfo, sched_setaffinity,
// sched_getaffinity, setpriority/getpriority and ioprio_set/ioprio_get with
// PRIO_PROCESS / IOPRIO_WHO_PROCESS): *ret gets the kernel-style result
// (>= 0 or -errno) and true is returned. False: the kernel should serve it.
// Any thread; may deliver a signal handler when the caller signals itself.
bool thread_id_syscall(long nr, const long* a, long* ret);

// True if the calling thread has capability `cap` in its effective set.
bool has_capability(int cap);

}  // namespace unblock::hooks
