// Thread ids (runtime/api.h): every thread of the program has its own, as under the kernel.
//
// A fiber's id is Fiber::tid: main keeps its kernel tid (the process id);
// every other fiber gets a unique number above any kernel tid (from
// 0x01000000; pid_max is at most 2^22), which glibc also finds in the
// fiber's TCB. gettid() and syscall(SYS_gettid) return it, and the calls
// that take a thread id accept it: tgkill/tkill and rt_tgsigqueueinfo
// deliver to that thread through the signal emulation; sched_setaffinity /
// sched_getaffinity (and pthread_{set,get}affinity_np), setpriority /
// getpriority(PRIO_PROCESS) and ioprio_set/ioprio_get(IOPRIO_WHO_PROCESS)
// keep per-thread values in the fiber, validated as the kernel validates
// them, inherited by the threads it creates. They are recorded, not applied:
// a fiber's carrier is shared by many threads, so its real affinity, nice
// value and I/O priority stay the process's (README, limitations).
// An id that is no live fiber's goes to the kernel unchanged (a plain OS
// thread's, another process's, or a stale one: ESRCH as before).
//
// Must not: change a carrier's real attributes; call the exported hooks.
// The hooks (hooks/thread_ids.cpp, and syscall() in hooks/futex.cpp) only
// translate the results.
#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/api.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "runtime/threads.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock {
namespace {

Fiber* caller() {
  Fiber* f = Fiber::current();
  return f && sched::active() ? f : nullptr;
}

pid_t own_pid() { return static_cast<pid_t>(raw_syscall(SYS_getpid)); }

// tgkill/tkill/rt_tgsigqueueinfo to thread `id`: 0 or -errno; 1: the id is
// no fiber's (the kernel handles it, ESRCH for an ended thread). As the
// kernel, the thread is looked up before the signal number is checked.
struct Send {
  const siginfo_t* info;
  int err;
};

long signal_id(int id, const siginfo_t& info) {
  if (!signals::table_ready() || !sched::active()) return 1;
  Fiber* self = caller();
  if (self && id == self->tid) return -threads::thread_signal(self, info);
  Send s{&info, 0};
  bool found = id > 0 && sched::with_fiber_by_tid(id, [](Fiber* f, void* a) {
    auto* s = static_cast<Send*>(a);
    s->err = threads::thread_signal(f, *s->info);
  }, &s);
  return found ? -s.err : 1;
}

siginfo_t tkill_info(int sig) {
  siginfo_t si{};
  si.si_signo = sig;
  si.si_code = SI_TKILL;
  si.si_pid = own_pid();
  si.si_uid = static_cast<uid_t>(raw_syscall(SYS_getuid));
  return si;
}

// The CPUs this process may use (what the kernel intersects a new mask with).
long allowed_cpus(cpu_set_t* out) {
  memset(out, 0, sizeof *out);
  long r = raw_syscall(SYS_sched_getaffinity, 0, sizeof *out, reinterpret_cast<long>(out));
  return r < 0 ? r : 0;
}

long set_affinity(Fiber* f, size_t size, const cpu_set_t* mask) {
  cpu_set_t want, allowed;
  memset(&want, 0, sizeof want);
  if (!mask) return -EFAULT;
  // Bits beyond what we keep must be clear (no CPU there), as the kernel
  // ignores bits past nr_cpu_ids but we cannot keep them.
  size_t keep = size < sizeof want ? size : sizeof want;
  memcpy(&want, mask, keep);
  for (size_t i = keep; i < size; ++i) {
    if (reinterpret_cast<const unsigned char*>(mask)[i]) return -EINVAL;
  }
  long r = allowed_cpus(&allowed);
  if (r < 0) return r;
  cpu_set_t both;
  CPU_AND(&both, &want, &allowed);
  if (CPU_COUNT(&both) == 0) return -EINVAL;  // no usable CPU in the new mask
  f->affinity = both;
  f->affinity_set = true;
  return 0;
}

// sched_getaffinity's result: the number of bytes copied, or -errno.
long get_affinity(const Fiber* f, size_t size, cpu_set_t* out) {
  cpu_set_t have;
  if (f->affinity_set) {
    have = f->affinity;
  } else {
    long r = allowed_cpus(&have);
    if (r < 0) return r;
  }
  // The kernel wants room for nr_cpu_ids bits, rounded to longs.
  long ncpu = sysconf(_SC_NPROCESSORS_CONF);
  size_t need = ((static_cast<size_t>(ncpu > 0 ? ncpu : 1) + 63) / 64) * 8;
  if (size < need || (size & 7)) return -EINVAL;
  if (!out) return -EFAULT;
  size_t n = size < sizeof have ? size : sizeof have;
  memset(out, 0, size);
  memcpy(out, &have, n);
  return static_cast<long>(need < n ? need : n);
}

// setpriority(PRIO_PROCESS) for a thread: the kernel's rules (nice is
// clamped to [-20, 19]; lowering it needs CAP_SYS_NICE or RLIMIT_NICE room).
long set_nice(Fiber* f, int nice) {
  if (nice < -20) nice = -20;
  if (nice > 19) nice = 19;
  if (nice < f->nice) {
    struct rlimit rl;
    bool allowed = raw_syscall(SYS_getrlimit, RLIMIT_NICE, reinterpret_cast<long>(&rl)) == 0 &&
                   (rl.rlim_cur == RLIM_INFINITY || static_cast<long>(20 - nice) <= static_cast<long>(rl.rlim_cur));
    if (!allowed && !sched::has_capability(CAP_SYS_NICE)) return -EACCES;
  }
  f->nice = nice;
  return 0;
}

// ioprio_set's checks (block/ioprio.c, Linux 6.x): the class in bits 13-15,
// the level in the low 3 bits; the real-time class needs CAP_SYS_NICE or
// CAP_SYS_ADMIN.
long check_ioprio(int prio) {
  int cls = (prio >> 13) & 7;
  int level = prio & 7;
  switch (cls) {
    case 1:  // IOPRIO_CLASS_RT
      if (!sched::has_capability(CAP_SYS_NICE) && !sched::has_capability(CAP_SYS_ADMIN)) return -EPERM;
      return 0;
    case 2:  // IOPRIO_CLASS_BE
    case 3:  // IOPRIO_CLASS_IDLE
      return 0;
    case 0:  // IOPRIO_CLASS_NONE
      return level ? -EINVAL : 0;
    default:
      return -EINVAL;
  }
}

// Serves system call `nr` with arguments a[0..5] if it names a fiber's
// thread id: *ret gets the kernel-style result (>= 0 or -errno) and true is
// returned. False: the kernel should serve it. May deliver a signal handler
// when the caller signals itself.
bool thread_id_syscall(long nr, const long* a, long* ret) {
  Fiber* self = caller();
  if (!self && !sched::active()) return false;
  switch (nr) {
    case SYS_gettid:
      if (!self) return false;
      *ret = self->tid;
      return true;
    case SYS_tgkill: {
      if (static_cast<pid_t>(a[0]) != own_pid()) return false;
      long r = signal_id(static_cast<int>(a[1]), tkill_info(static_cast<int>(a[2])));
      if (r == 1) return false;
      *ret = r;
      return true;
    }
    case SYS_tkill: {
      long r = signal_id(static_cast<int>(a[0]), tkill_info(static_cast<int>(a[1])));
      if (r == 1) return false;
      *ret = r;
      return true;
    }
    case SYS_rt_tgsigqueueinfo: {
      if (static_cast<pid_t>(a[0]) != own_pid() || !a[3]) return false;
      siginfo_t si;
      memcpy(&si, reinterpret_cast<const void*>(a[3]), sizeof si);
      si.si_signo = static_cast<int>(a[2]);
      // The kernel refuses to let a process forge kernel-made codes for another's threads; for its own it accepts any negative code.
      long r = signal_id(static_cast<int>(a[1]), si);
      if (r == 1) return false;
      *ret = r;
      return true;
    }
    case SYS_sched_setaffinity: {
      long r = -ESRCH;
      if (!threads::for_thread_id(self, static_cast<int>(a[0]), [&](Fiber* f) {
            r = set_affinity(f, static_cast<size_t>(a[1]), reinterpret_cast<const cpu_set_t*>(a[2]));
          })) {
        return false;
      }
      *ret = r;
      return true;
    }
    case SYS_sched_getaffinity: {
      long r = -ESRCH;
      if (!threads::for_thread_id(self, static_cast<int>(a[0]), [&](Fiber* f) {
            r = get_affinity(f, static_cast<size_t>(a[1]), reinterpret_cast<cpu_set_t*>(a[2]));
          })) {
        return false;
      }
      *ret = r;
      return true;
    }
    case SYS_setpriority:
    case SYS_getpriority: {
      if (a[0] != PRIO_PROCESS) return false;
      long r = 0;
      if (!threads::for_thread_id(self, static_cast<int>(a[1]), [&](Fiber* f) {
            r = nr == SYS_setpriority ? set_nice(f, static_cast<int>(a[2])) : 20 - f->nice;  // the syscall's 40..1 form
          })) {
        return false;
      }
      *ret = r;
      return true;
    }
    case SYS_ioprio_set:
    case SYS_ioprio_get: {
      constexpr int kWhoProcess = 1;  // IOPRIO_WHO_PROCESS
      if (a[0] != kWhoProcess) return false;
      long r = 0;
      if (nr == SYS_ioprio_set) r = check_ioprio(static_cast<int>(a[2]));
      if (!threads::for_thread_id(self, static_cast<int>(a[1]), [&](Fiber* f) {
            if (nr == SYS_ioprio_get) {
              // Never set: what the kernel reports for this process's threads.
              r = f->ioprio >= 0 ? f->ioprio : raw_syscall(SYS_ioprio_get, kWhoProcess, 0);
            } else if (r == 0) {
              f->ioprio = static_cast<int>(a[2]);
            }
          })) {
        return false;
      }
      *ret = r;
      return true;
    }
    default:
      return false;
  }
}

long call(long nr, long a0 = 0, long a1 = 0, long a2 = 0, long a3 = 0) {
  long a[6] = {a0, a1, a2, a3, 0, 0};
  long r;
  if (!thread_id_syscall(nr, a, &r)) r = raw_syscall(nr, a0, a1, a2, a3);
  return r;
}

}  // namespace

// ---- runtime/api.h ---------------------------------------------------------------------

namespace rt {

long syscall_thread_id(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  long a[6] = {a1, a2, a3, a4, a5, a6};
  long r;
  if (thread_id_syscall(nr, a, &r)) return r;
  return syscall_other(nr, a1, a2, a3, a4, a5, a6);
}

pid_t gettid() {
  Fiber* f = caller();
  return f ? f->tid : static_cast<pid_t>(raw_syscall(SYS_gettid));
}

int tgkill(pid_t tgid, pid_t tid, int sig) { return static_cast<int>(call(SYS_tgkill, tgid, tid, sig)); }

int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* mask) {
  return static_cast<int>(call(SYS_sched_setaffinity, pid, static_cast<long>(size), reinterpret_cast<long>(mask)));
}

int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* mask) {
  // glibc's wrapper clears the bytes past what the kernel wrote and returns 0.
  long r = call(SYS_sched_getaffinity, pid, static_cast<long>(size), reinterpret_cast<long>(mask));
  if (r < 0) return static_cast<int>(r);
  memset(reinterpret_cast<char*>(mask) + r, 0, size - static_cast<size_t>(r));
  return 0;
}

int thread_setaffinity(pthread_t t, size_t size, const cpu_set_t* mask) {
  Fiber* f = sched::active() ? Fiber::from_thread(t) : nullptr;
  if (!f) return -real::pthread_setaffinity_np(t, size, mask);
  long r = set_affinity(f, size, mask);
  return r < 0 ? static_cast<int>(r) : 0;
}

int thread_getaffinity(pthread_t t, size_t size, cpu_set_t* mask) {
  Fiber* f = sched::active() ? Fiber::from_thread(t) : nullptr;
  if (!f) return -real::pthread_getaffinity_np(t, size, mask);
  long r = get_affinity(f, size, mask);
  if (r < 0) return static_cast<int>(r);
  memset(reinterpret_cast<char*>(mask) + r, 0, size - static_cast<size_t>(r));
  return 0;
}

int setpriority(int which, id_t who, int prio) { return static_cast<int>(call(SYS_setpriority, which, who, prio)); }

int getpriority(int which, id_t who) { return static_cast<int>(call(SYS_getpriority, which, who)); }

}  // namespace rt
}  // namespace unblock
