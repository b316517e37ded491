// Time hooks: sleep, usleep, nanosleep, clock_nanosleep; the thread
// CPU-time clocks of fibers (clock_gettime, clock_getres, getrusage, and
// clock_nanosleep on another fiber's clock).
//
// Each forwards to the runtime (runtime/api.h; runtime/api_wait.cpp): a
// fiber sleeps by parking with a deadline, a timer on its worker's engine,
// while the worker runs other fibers. The sleep is interruptible: a signal
// handler run for this thread ends it with EINTR and the remaining time, as
// the kernel's sleeps do (never restarted, whatever SA_RESTART says). Clocks
// other than REALTIME/MONOTONIC/BOOTTIME and fibers' CPU clocks (e.g. the
// process's CPU clock) go to the real call.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hooks/hook.h"

using namespace unblock;
using hooks::ret;

// Thread CPU-time clocks of fibers come from the runtime's accounting
// (runtime/cpu_clock.h); every other clock is libc's (the vDSO). The check
// in front costs two compares.
UNBLOCK_HOOK int clock_gettime(clockid_t clock, struct timespec* ts) {
  if (__builtin_expect(clock >= 0 && clock != CLOCK_THREAD_CPUTIME_ID, 1)) return real::clock_gettime(clock, ts);
  return static_cast<int>(ret(rt::clock_gettime(clock, ts)));
}

UNBLOCK_HOOK int clock_getres(clockid_t clock, struct timespec* res) {
  if (__builtin_expect(clock >= 0, 1)) return real::clock_getres(clock, res);
  return static_cast<int>(ret(rt::clock_getres(clock, res)));
}

// RUSAGE_THREAD of a fiber: its own CPU time (runtime/api.h).
UNBLOCK_HOOK int getrusage(int who, struct rusage* ru) {
  if (who != RUSAGE_THREAD) return real::getrusage(who, ru);
  return static_cast<int>(ret(rt::getrusage(who, ru)));
}

// clock_nanosleep returns the error number instead of setting errno.
UNBLOCK_HOOK int clock_nanosleep(clockid_t clock, int flags, const struct timespec* req, struct timespec* rem) {
  return static_cast<int>(-rt::clock_nanosleep(clock, flags, req, rem));
}

UNBLOCK_HOOK int nanosleep(const struct timespec* req, struct timespec* rem) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || !req) return real::nanosleep(req, rem);
  // Linux measures nanosleep on CLOCK_MONOTONIC.
  return static_cast<int>(ret(rt::clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem)));
}

UNBLOCK_HOOK int usleep(useconds_t usec) {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return real::usleep(usec);
  timespec req{static_cast<time_t>(usec / 1000000), static_cast<long>(usec % 1000000) * 1000};
  return static_cast<int>(ret(rt::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, nullptr)));
}

UNBLOCK_HOOK unsigned sleep(unsigned seconds) {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return real::sleep(seconds);
  timespec req{static_cast<time_t>(seconds), 0}, rem{0, 0};
  int saved = errno;
  if (rt::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem) == -EINTR) {
    // glibc (2.36, sysdeps/posix/sleep.c) returns the whole seconds left,
    // truncated, and leaves errno as nanosleep set it.
    errno = EINTR;
    return static_cast<unsigned>(rem.tv_sec);
  }
  errno = saved;
  return 0;
}
