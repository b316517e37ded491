// Time hooks: sleep, usleep, nanosleep, clock_nanosleep; the thread
// CPU-time clocks of fibers (clock_gettime, clock_getres, getrusage, and
// clock_nanosleep on another fiber's clock).
//
// A fiber sleeps by parking with a deadline, which is an io_uring timeout on
// its worker's ring: the worker runs other fibers meanwhile. The sleep is
// interruptible: a signal handler run for this thread ends it with EINTR and
// the remaining time, as the kernel's sleeps do (never restarted, whatever
// SA_RESTART says). Clocks other than REALTIME/MONOTONIC/BOOTTIME and fibers'
// CPU clocks (e.g. the process's CPU clock) go to the real call.
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <climits>

#include "hooks/hook.h"
#include "runtime/cancel.h"
#include "runtime/cpu_clock.h"
#include "runtime/inspect.h"
#include "runtime/signals.h"

using namespace unblock;

namespace {

constexpr long kNs = 1000000000;

timespec now(clockid_t clock) {
  timespec t;
  clock_gettime(clock, &t);
  return t;
}

timespec add(timespec a, const timespec& b) {
  a.tv_sec = (a.tv_sec > LONG_MAX - b.tv_sec) ? LONG_MAX : a.tv_sec + b.tv_sec;
  a.tv_nsec += b.tv_nsec;
  if (a.tv_nsec >= kNs) {
    a.tv_nsec -= kNs;
    if (a.tv_sec < LONG_MAX) ++a.tv_sec;
  }
  return a;
}

timespec sub_clamped(const timespec& a, const timespec& b) {
  timespec r{a.tv_sec - b.tv_sec, a.tv_nsec - b.tv_nsec};
  if (r.tv_nsec < 0) {
    r.tv_nsec += kNs;
    --r.tv_sec;
  }
  if (r.tv_sec < 0) r = timespec{0, 0};
  return r;
}

// Sleeps the fiber until `abs` on `clock`. Returns 0, or EINTR after a handler
// ran for this thread (then *rem, if given, gets the time left for a
// relative sleep).
int fiber_sleep(Fiber* f, clockid_t clock, const timespec& abs, bool relative, timespec* rem) {
  Deadline d = Deadline::at(clock, abs);
  cancel::point();  // sleeps are cancellation points
  for (;;) {
    f->wait_op = kWaitNone;
    ParkResult r = f->parker.park(d, WaitReason::kSleep, /*interruptible=*/true);
    if (r == ParkResult::kTimedOut) {
      hooks::deliver_due();  // a signal that came as the sleep ended: its handler runs now
      return 0;
    }
    if (r == ParkResult::kInterrupted) {
      signals::run_pending(f);
      cancel::point();
      if (relative && rem) *rem = sub_clamped(abs, now(clock));
      return EINTR;
    }
    if (d.passed()) {  // else a stray permit: keep sleeping until the deadline
      hooks::deliver_due();
      return 0;
    }
  }
}

bool supported_clock(clockid_t c) { return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME; }

// The kernel's encoding of CPU-time clock ids (include/linux/posix-timers.h):
// ~pid << 3 | per-thread bit | PROF/VIRT/SCHED. pthread_getcpuclockid gives
// a thread's clock as ~tid << 3 | 4 | SCHED; tid 0 means the caller.
constexpr clockid_t kPerThread = 4, kClockMask = 3, kVirt = 1;

// If clk is a thread CPU clock of one of our live fibers, stores its time
// (ns) and whether it is a VIRT (user time) clock, and returns true; false
// for any other clock (the kernel then decides: EINVAL for a thread that is
// gone). Fiber or plain thread; may make a system call (cpu::fiber_ns).
bool fiber_clock(clockid_t clk, uint64_t* ns, bool* virt) {
  if (!sched::active()) return false;
  Fiber* self = Fiber::current();
  if (clk == CLOCK_THREAD_CPUTIME_ID) {
    if (!self) return false;
    *ns = cpu::fiber_ns(self);
    *virt = false;
    return true;
  }
  if (clk >= 0 || !(clk & kPerThread) || (clk & kClockMask) == kClockMask) return false;
  int tid = static_cast<int>(~(clk >> 3));
  *virt = (clk & kClockMask) == kVirt;
  if (tid == 0 || (self && tid == self->tid)) {
    if (!self) return false;
    *ns = cpu::fiber_ns(self);
    return true;
  }
  return sched::with_fiber_by_tid(tid, [](Fiber* f, void* a) { *static_cast<uint64_t*>(a) = cpu::fiber_ns(f); }, ns);
}

// A VIRT clock counts user time only: the carrier's user share.
uint64_t user_part(uint64_t ns) {
  timeval u, s;
  cpu::split(ns, &u, &s);
  return static_cast<uint64_t>(u.tv_sec) * 1000000000u + static_cast<uint64_t>(u.tv_usec) * 1000u;
}

}  // namespace

// Thread CPU-time clocks of fibers come from the runtime's accounting
// (runtime/cpu_clock.h); every other clock is libc's (the vDSO). The check
// in front costs two compares.
UNBLOCK_HOOK int clock_gettime(clockid_t clock, struct timespec* ts) {
  if (__builtin_expect(clock >= 0 && clock != CLOCK_THREAD_CPUTIME_ID, 1)) return real::clock_gettime(clock, ts);
  uint64_t ns = 0;
  bool virt = false;
  if (!fiber_clock(clock, &ns, &virt)) return real::clock_gettime(clock, ts);
  if (virt) ns = user_part(ns);
  ts->tv_sec = static_cast<time_t>(ns / kNs);
  ts->tv_nsec = static_cast<long>(ns % kNs);
  return 0;
}

UNBLOCK_HOOK int clock_getres(clockid_t clock, struct timespec* res) {
  if (__builtin_expect(clock >= 0, 1)) return real::clock_getres(clock, res);
  uint64_t ns = 0;
  bool virt = false;
  if (!fiber_clock(clock, &ns, &virt)) return real::clock_getres(clock, res);
  // Every thread CPU clock has the same resolution (1 ns for SCHED).
  return real::clock_getres(CLOCK_THREAD_CPUTIME_ID, res);
}

// RUSAGE_THREAD of a fiber: its CPU time, split into user and system time
// in its carrier's proportion; maxrss is the process's (as the kernel gives
// it); the other counters are not kept per fiber and read 0.
UNBLOCK_HOOK int getrusage(int who, struct rusage* ru) {
  Fiber* f = who == RUSAGE_THREAD ? hooks::fiber_for_call() : nullptr;
  if (!f) return real::getrusage(who, ru);
  rusage carrier{};
  if (int r = real::getrusage(RUSAGE_THREAD, &carrier)) return r;
  memset(ru, 0, sizeof *ru);
  ru->ru_maxrss = carrier.ru_maxrss;
  cpu::split(cpu::fiber_ns(f), &ru->ru_utime, &ru->ru_stime);
  return 0;
}

namespace {

timespec from_ns(uint64_t ns) { return timespec{static_cast<time_t>(ns / kNs), static_cast<long>(ns % kNs)}; }

// clock_nanosleep on another thread's CPU clock (the kernel's
// posix_cpu_nsleep): wait until that thread's CPU time reaches the deadline;
// the caller's own clock is EINVAL. A thread's CPU time grows no faster than
// wall time, so the fiber sleeps the CPU time still missing (at least 1 ms:
// the kernel, too, checks CPU timers at its tick), reads the clock again and
// repeats: it never wakes before the deadline, and soon after it. Returns -1
// if `clock` is not a fiber's CPU clock (the kernel's call decides).
int cpu_clock_sleep(Fiber* f, clockid_t clock, int flags, const timespec* req, timespec* rem) {
  if (clock >= 0 || !(clock & kPerThread)) return -1;
  int tid = static_cast<int>(~(clock >> 3));
  if (tid == 0 || tid == f->tid) return EINVAL;
  uint64_t cur = 0;
  bool virt = false;
  if (!fiber_clock(clock, &cur, &virt)) return -1;
  if (req->tv_nsec < 0 || req->tv_nsec >= kNs || req->tv_sec < 0) return EINVAL;
  auto read = [&](uint64_t* v) {
    if (!fiber_clock(clock, v, &virt)) return false;  // the thread ended
    if (virt) *v = user_part(*v);
    return true;
  };
  read(&cur);
  uint64_t want = static_cast<uint64_t>(req->tv_sec) * kNs + static_cast<uint64_t>(req->tv_nsec);
  bool absolute = flags & TIMER_ABSTIME;
  uint64_t deadline = absolute ? want : cur + want;
  constexpr uint64_t kMinSleep = 1000000;
  for (;;) {
    if (!read(&cur) || cur >= deadline) return 0;
    uint64_t missing = deadline - cur;
    timespec until = add(now(CLOCK_MONOTONIC), from_ns(missing < kMinSleep ? kMinSleep : missing));
    if (fiber_sleep(f, CLOCK_MONOTONIC, until, false, nullptr) == EINTR) {
      if (!absolute && rem) *rem = read(&cur) && cur < deadline ? from_ns(deadline - cur) : timespec{0, 0};
      return EINTR;
    }
  }
}

}  // namespace

UNBLOCK_HOOK int clock_nanosleep(clockid_t clock, int flags, const struct timespec* req, struct timespec* rem) {
  Fiber* f = hooks::fiber_for_call();
  if (f && req && clock < 0) {
    int r = cpu_clock_sleep(f, clock, flags, req, rem);
    if (r >= 0) return r;
  }
  if (!f || !supported_clock(clock) || !req) return real::clock_nanosleep(clock, flags, req, rem);
  if (req->tv_nsec < 0 || req->tv_nsec >= kNs || req->tv_sec < 0) return EINVAL;
  bool absolute = flags & TIMER_ABSTIME;
  timespec abs = absolute ? *req : add(now(clock), *req);
  return fiber_sleep(f, clock, abs, !absolute, rem);
}

UNBLOCK_HOOK int nanosleep(const struct timespec* req, struct timespec* rem) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || !req) return real::nanosleep(req, rem);
  // Linux measures nanosleep on CLOCK_MONOTONIC.
  int r = clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem);
  return r ? hooks::fail(r) : 0;
}

UNBLOCK_HOOK int usleep(useconds_t usec) {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return real::usleep(usec);
  timespec req{static_cast<time_t>(usec / 1000000), static_cast<long>(usec % 1000000) * 1000};
  int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, nullptr);
  return r ? hooks::fail(r) : 0;
}

UNBLOCK_HOOK unsigned sleep(unsigned seconds) {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return real::sleep(seconds);
  timespec req{static_cast<time_t>(seconds), 0}, rem{0, 0};
  int saved = errno;
  if (clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem) == EINTR) {
    // glibc (2.36, sysdeps/posix/sleep.c) returns the whole seconds left,
    // truncated, and leaves errno as nanosleep set it.
    errno = EINTR;
    return static_cast<unsigned>(rem.tv_sec);
  }
  errno = saved;
  return 0;
}
