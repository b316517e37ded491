// Time hooks: sleep, usleep, nanosleep, clock_nanosleep.
//
// A fiber sleeps by parking with a deadline, which is an io_uring timeout on
// its worker's ring: the worker runs other fibers meanwhile. The sleep is
// interruptible: a signal handler run for this thread ends it with EINTR and
// the remaining time, as the kernel's sleeps do (never restarted, whatever
// SA_RESTART says). Clocks other than REALTIME/MONOTONIC/BOOTTIME (e.g. CPU-time
// clocks) go to the real call.
#include <time.h>
#include <unistd.h>

#include <climits>

#include "hooks/hook.h"
#include "runtime/cancel.h"
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
    if (r == ParkResult::kTimedOut) return 0;
    if (r == ParkResult::kInterrupted) {
      signals::run_pending(f);
      cancel::point();
      if (relative && rem) *rem = sub_clamped(abs, now(clock));
      return EINTR;
    }
    if (d.passed()) return 0;  // a stray permit: keep sleeping until the deadline
  }
}

bool supported_clock(clockid_t c) { return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME; }

}  // namespace

UNBLOCK_HOOK int clock_nanosleep(clockid_t clock, int flags, const struct timespec* req, struct timespec* rem) {
  Fiber* f = hooks::fiber_for_call();
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
