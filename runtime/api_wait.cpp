// Waiting for readiness and for time (runtime/api.h): poll/ppoll,
// select/pselect, epoll_wait/epoll_pwait, and the sleeps and CPU clocks.
//
// The readiness calls first ask the kernel without waiting (the real call
// with a zero timeout); only if nothing is ready and the program is willing
// to wait does the fiber park (wait_any), on one engine poll per descriptor
// (for epoll, one on the epoll fd itself) plus the deadline. When anything
// fires, every other poll is cancelled and its completion awaited, and the
// real call is asked again with a zero timeout, so the result sets are
// exactly the kernel's. A handler run for the fiber ends the wait with EINTR
// (these calls and the sleeps are never restarted, as in Linux): the
// epilogue is api.cpp's after_interrupt (api_internal.h).
// Descriptors above 1024 work for poll and epoll.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "runtime/alloc.h"
#include "runtime/api.h"
#include "runtime/api_internal.h"
#include "runtime/cancel.h"
#include "runtime/cpu_clock.h"
#include "runtime/engine.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "shim/real.h"

namespace unblock::rt {
namespace {

using detail::bad_timespec;
using detail::out;
using detail::sys;

// An interrupted wait that is never restarted ends with EINTR after the
// epilogue.
long interrupted(Fiber* f) {
  detail::after_interrupt(f);
  return -EINTR;
}

struct Group;

// One descriptor's poll. `counts` is the set of revents the caller's
// re-check reports for it (what the kernel's poll/select would count).
// io_uring also completes a poll for EPOLLERR, EPOLLHUP and EPOLLRDHUP
// whatever was asked, and those states last: a one-shot poll re-armed on
// such a descriptor (select's except set on a hung-up pipe, POLLOUT on a
// full socket whose peer shut down writing) would complete at once on every
// turn of the caller's loop - a busy loop, forever without a timeout. So a
// completion with nothing in `counts` re-arms the poll as multishot from the
// completion handler, and the multishot's completions that still count
// nothing are ignored: after its first it completes only when the file's
// state changes, as the kernel's own wait does.
struct PollWait : Op {
  Group* group = nullptr;
  Engine* engine = nullptr;
  uint16_t counts = 0;  // revents that end the wait
  bool multishot = false;
  bool cancelled = false;  // the wait asked the kernel to drop it: never re-arm
  bool done = false;       // its last completion arrived
};

struct Group {
  Fiber* fiber = nullptr;
  int pending = 0;
  int fired = 0;
};

// Multishot polls need Linux 5.13; an older kernel rejects them with EINVAL
// and the re-check loop takes over (it then spins on such descriptors).
std::atomic<bool> g_multishot_refused{false};

void submit_poll(PollWait* w) {
  w->io.flags = w->multishot ? IoOp::kPollMultishot : 0;
  w->engine->submit(w);
}

// Scheduler context of the worker that submitted the poll.
void on_poll(Completion* c, int res, uint32_t flags) {
  auto* w = static_cast<PollWait*>(c);
  bool last = !Engine::more_follow(flags);
  bool counted = res <= 0 || (static_cast<unsigned>(res) & w->counts) != 0;
  if (w->multishot && last && res == -EINVAL) g_multishot_refused.store(true, std::memory_order_relaxed);
  // A cancelled wait must not re-arm: its cancel may already have passed
  // (the one-shot completed first), and nothing would end the new poll.
  if (!counted && !w->cancelled) {
    if (!last) return;  // the lasting state again: keep waiting
    if (!w->multishot && !g_multishot_refused.load(std::memory_order_relaxed)) {
      w->multishot = true;
      submit_poll(w);  // same Op: the wait's cancel reaches it
      return;
    }
  }
  if (last) {
    w->done = true;
    w->group->pending--;
  }
  w->group->fired++;
  w->group->fiber->parker.unpark();
}

// kNoMemory: more than 16 descriptors and no memory for their waits. The
// caller then waits in the kernel's own call on this OS thread, its worker
// handed to another (as for calls the library cannot serve): never a
// timeout that did not happen, never an error the plain call would not give.
enum class Wake { kReady, kTimeout, kInterrupted, kNoMemory };

// Parks until one of fdv[i] may be ready for events[i] (ending the wait on
// the revents in counts[i]; without counts, on events[i] and what poll always
// reports), the deadline passes or a handler is due. Runs on the fiber;
// completions run on its worker's scheduler, so the counters need no atomics.
Wake wait_any(Fiber* f, const int* fdv, const short* events, const short* counts, int n, const Deadline& d) {
  cancel::point();  // poll, select, epoll_wait are cancellation points
  PollWait small[16];
  // Not new (std::nothrow): runtime/alloc.h says why.
  PollWait* waits = n <= 16 ? small : alloc_objects<PollWait>(static_cast<size_t>(n));
  if (!waits) return Wake::kNoMemory;
  Group g;
  g.fiber = f;
  Worker* w = sched::enter(f);
  for (int i = 0; i < n; ++i) {
    waits[i].group = &g;
    waits[i].on_complete = on_poll;
    if (fdv[i] < 0) {
      waits[i].done = true;
      continue;
    }
    waits[i].engine = &w->engine;
    waits[i].io.kind = IoOp::kPollAdd;
    waits[i].io.fd = fdv[i];
    waits[i].io.len = static_cast<uint16_t>(static_cast<uint16_t>(events[i]) | POLLERR | POLLHUP);
    waits[i].counts = static_cast<uint16_t>(counts ? counts[i] : events[i] | POLLERR | POLLHUP | POLLNVAL);
    submit_poll(&waits[i]);
    ++g.pending;
  }
  // Park even when nothing was armed (select with empty sets, poll with no
  // fd >= 0): the call is then a sleep until the deadline or a signal, as in
  // the kernel. Returning at once made the caller's re-check loop spin on its
  // worker without ever switching (the asyncio livelock, issue 16).
  Wake why = Wake::kReady;
  f->wait_op = kWaitPoll;
  f->wait_arg = n;
  while (g.fired == 0) {
    ParkResult r = f->parker.park(d, WaitReason::kIo, true);
    if (r == ParkResult::kTimedOut) {
      why = Wake::kTimeout;
      break;
    }
    if (r == ParkResult::kInterrupted) {
      why = Wake::kInterrupted;
      break;
    }
  }
  // Cancel what is still armed (a multishot poll too, even after it fired)
  // and wait for every last completion: the kernel may still write to these
  // PollWaits until then.
  for (int i = 0; i < n; ++i) {
    if (waits[i].done) continue;
    waits[i].cancelled = true;
    f->carrier->worker->engine.cancel(&waits[i]);
  }
  while (g.pending > 0) f->parker.park(Deadline::never(), WaitReason::kIo, false);
  sched::leave(f);
  if (waits != small) {
    for (int i = 0; i < n; ++i) waits[i].~PollWait();
    free(waits);
  }
  return why;
}

// What is left of d for the kernel's own poll/select (rounded up).
int timeout_ms_left(const Deadline& d) {
  if (d.infinite) return -1;
  int64_t ns = d.remaining_ns();
  if (ns <= 0) return 0;
  int64_t ms = (ns + 999999) / 1000000;
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

timeval timeval_left(const Deadline& d) {
  timespec left = d.left();
  timeval tv{left.tv_sec, (left.tv_nsec + 999) / 1000};
  if (tv.tv_usec == 1000000 && tv.tv_sec < LONG_MAX) {
    ++tv.tv_sec;
    tv.tv_usec = 0;
  }
  return tv;
}

Deadline deadline_ms(int timeout) {
  return timeout < 0 ? Deadline::never() : Deadline::after_ns(static_cast<int64_t>(timeout) * 1000000);
}

Deadline deadline_ts(const timespec* ts) {
  return ts ? Deadline::after(*ts) : Deadline::never();
}

// The emulated signal mask for ppoll/pselect/epoll_pwait, swapped around the
// wait (the emulation's own call, not the exported pthread_sigmask).
struct MaskScope {
  bool set = false;
  bool emulated = false;
  sigset_t old;
  explicit MaskScope(const sigset_t* mask) {
    if (!mask) return;
    Fiber* f = Fiber::current();
    emulated = f && signals::table_ready();
    set = emulated ? signals::change_mask(f, SIG_SETMASK, mask, &old) == 0
                   : real::pthread_sigmask(SIG_SETMASK, mask, &old) == 0;
  }
  ~MaskScope() {
    if (!set) return;
    if (emulated) signals::change_mask(Fiber::current(), SIG_SETMASK, &old, nullptr);
    else real::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  MaskScope(const MaskScope&) = delete;
  MaskScope& operator=(const MaskScope&) = delete;
};

// poll's fd and event arrays: on the stack up to 16, else on the heap, freed
// on every way out (a cancellation's forced unwind too).
struct PollScratch {
  int fdv_small[16];
  short ev_small[16];
  int* fdv = fdv_small;
  short* ev = ev_small;
  explicit PollScratch(nfds_t n) {
    if (n <= 16) return;
    fdv = static_cast<int*>(malloc(n * sizeof(int)));
    ev = static_cast<short*>(malloc(n * sizeof(short)));
  }
  ~PollScratch() {
    if (fdv != fdv_small) free(fdv);
    if (ev != ev_small) free(ev);
  }
  PollScratch(const PollScratch&) = delete;
  PollScratch& operator=(const PollScratch&) = delete;
};

long poll_common(Fiber* f, pollfd* pfd, nfds_t n, const Deadline& d, const sigset_t* mask) {
  MaskScope scope(mask);
  PollScratch scratch(n);
  int* fdv = scratch.fdv;
  short* ev = scratch.ev;
  if (!fdv || !ev) return -ENOMEM;
  for (nfds_t i = 0; i < n; ++i) {
    fdv[i] = pfd[i].fd;
    ev[i] = pfd[i].events;
  }
  for (;;) {
    Wake why = wait_any(f, fdv, ev, nullptr, static_cast<int>(n), d);
    if (why == Wake::kNoMemory) {
      sched::begin_blocking(f);
      return sys(real::poll(pfd, n, timeout_ms_left(d)));
    }
    long result = sys(real::poll(pfd, n, 0));
    if (result != 0) return result;
    if (why == Wake::kInterrupted) return interrupted(f);
    if (why == Wake::kTimeout || d.passed()) return 0;
  }
}

// Asks the kernel without waiting; when nothing is ready the caller's sets
// are put back as they were, ready for the wait.
long select_nowait(int nfds, fd_set* r, fd_set* w, fd_set* e) {
  fd_set sr, sw, se;
  if (r) sr = *r;
  if (w) sw = *w;
  if (e) se = *e;
  timeval zero{0, 0};
  long first = sys(real::select(nfds, r, w, e, &zero));
  if (first == 0) {
    if (r) *r = sr;
    if (w) *w = sw;
    if (e) *e = se;
  }
  return first;
}

long select_common(Fiber* f, int nfds, fd_set* r, fd_set* w, fd_set* e, const Deadline& d, const sigset_t* mask) {
  MaskScope scope(mask);
  fd_set in_r, in_w, in_e;
  if (r) in_r = *r;
  if (w) in_w = *w;
  if (e) in_e = *e;
  auto restore = [&] {
    if (r) *r = in_r;
    if (w) *w = in_w;
    if (e) *e = in_e;
  };
  int fdv[FD_SETSIZE];
  short ev[FD_SETSIZE];
  short counts[FD_SETSIZE];
  int n = 0;
  // What the kernel's select counts per set (fs/select.c: POLLIN_SET,
  // POLLOUT_SET, POLLEX_SET): a hang-up is readable, an error readable and
  // writable, only POLLPRI is exceptional.
  constexpr short kInSet = POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR;
  constexpr short kOutSet = POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR;
  constexpr short kExSet = POLLPRI;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
    short events = 0;
    short counted = 0;
    if (r && FD_ISSET(fd, &in_r)) {
      events |= POLLIN;
      counted |= kInSet;
    }
    if (w && FD_ISSET(fd, &in_w)) {
      events |= POLLOUT;
      counted |= kOutSet;
    }
    if (e && FD_ISSET(fd, &in_e)) {
      events |= POLLPRI;
      counted |= kExSet;
    }
    if (!events) continue;
    fdv[n] = fd;
    counts[n] = counted;
    ev[n++] = events;
  }
  for (;;) {
    Wake why = wait_any(f, fdv, ev, counts, n, d);
    restore();
    if (why == Wake::kNoMemory) {
      sched::begin_blocking(f);
      timeval tv = timeval_left(d);
      return sys(real::select(nfds, r, w, e, d.infinite ? nullptr : &tv));
    }
    timeval zero{0, 0};
    long result = sys(real::select(nfds, r, w, e, &zero));
    if (result != 0) return result;
    if (why == Wake::kInterrupted) {
      // Linux leaves the sets as the caller passed them when select ends
      // with EINTR (only a result writes them); CPython retries with the
      // same fd_set objects, and cleared sets made it wait on nothing.
      restore();
      return interrupted(f);
    }
    if (why == Wake::kTimeout || d.passed()) return 0;
  }
}

long epoll_common(Fiber* f, int epfd, epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  MaskScope scope(mask);
  Deadline d = deadline_ms(timeout);
  int fdv[1] = {epfd};
  short events[1] = {POLLIN};
  for (;;) {
    Wake why = wait_any(f, fdv, events, nullptr, 1, d);
    long r = sys(real::epoll_wait(epfd, ev, max, 0));
    if (r != 0) return r;
    if (why == Wake::kInterrupted) return interrupted(f);
    if (why == Wake::kTimeout || d.passed()) return 0;
  }
}

}  // namespace

long poll(pollfd* pfd, nfds_t n, int timeout_ms) {
  Fiber* f = fiber_for_call();
  if (!f || timeout_ms == 0) return sys(real::poll(pfd, n, timeout_ms));
  long r = sys(real::poll(pfd, n, 0));
  if (r != 0) return r;
  return out(poll_common(f, pfd, n, deadline_ms(timeout_ms), nullptr));
}

long ppoll(pollfd* pfd, nfds_t n, const timespec* ts, const sigset_t* mask) {
  Fiber* f = fiber_for_call();
  if (!f || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0)) return sys(real::ppoll(pfd, n, ts, mask));
  if (bad_timespec(ts)) return -EINVAL;
  long r = sys(real::poll(pfd, n, 0));
  if (r != 0) return r;
  return out(poll_common(f, pfd, n, deadline_ts(ts), mask));
}

long select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv) {
  Fiber* f = fiber_for_call();
  if (!f || (tv && tv->tv_sec == 0 && tv->tv_usec == 0) || nfds < 0 || nfds > FD_SETSIZE) {
    return sys(real::select(nfds, r, w, e, tv));
  }
  // As glibc's select: tv_usec read as 32 bits, whole seconds carried out
  // of it, the sum saturated, then pselect6's checks.
  timespec rel{};
  if (tv) {
    int32_t us = static_cast<int32_t>(tv->tv_usec);
    if (tv->tv_sec < 0 || us < 0) return -EINVAL;
    time_t carry = us / 1000000;
    rel = tv->tv_sec > LONG_MAX - carry ? timespec{LONG_MAX, 999999999} : timespec{tv->tv_sec + carry, (us % 1000000) * 1000L};
  }
  Deadline d = tv ? Deadline::after(rel) : Deadline::never();
  long first = select_nowait(nfds, r, w, e);
  long result = first != 0 ? first : select_common(f, nfds, r, w, e, d, nullptr);
  if (tv) {
    // Linux reports the time not slept, also when ready at once.
    timespec left = d.left();
    tv->tv_sec = left.tv_sec;
    tv->tv_usec = left.tv_nsec / 1000;
  }
  return first != 0 ? first : out(result);
}

long pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts, const sigset_t* mask) {
  Fiber* f = fiber_for_call();
  if (!f || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0) || nfds < 0 || nfds > FD_SETSIZE) {
    return sys(real::pselect(nfds, r, w, e, ts, mask));
  }
  if (bad_timespec(ts)) return -EINVAL;
  long first = select_nowait(nfds, r, w, e);
  if (first != 0) return first;
  return out(select_common(f, nfds, r, w, e, deadline_ts(ts), mask));
}

long epoll_pwait(int epfd, epoll_event* ev, int max, int timeout_ms, const sigset_t* mask) {
  Fiber* f = fiber_for_call();
  if (!f || timeout_ms == 0) {
    return sys(mask ? real::epoll_pwait(epfd, ev, max, timeout_ms, mask) : real::epoll_wait(epfd, ev, max, timeout_ms));
  }
  long r = sys(real::epoll_wait(epfd, ev, max, 0));
  if (r != 0) return r;
  return out(epoll_common(f, epfd, ev, max, timeout_ms, mask));
}

// ---- Time ------------------------------------------------------------------

namespace {

constexpr long kNs = 1000000000;

timespec now(clockid_t clock) {
  timespec t;
  real::clock_gettime(clock, &t);
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

timespec from_ns(uint64_t ns) { return timespec{static_cast<time_t>(ns / kNs), static_cast<long>(ns % kNs)}; }

// Sleeps the fiber until `abs` on `clock`. Returns 0, or -EINTR after a
// handler ran for this thread (then *rem, if given, gets the time left for
// a relative sleep).
long fiber_sleep(Fiber* f, clockid_t clock, const timespec& abs, bool relative, timespec* rem) {
  Deadline d = Deadline::at(clock, abs);
  cancel::point();  // sleeps are cancellation points
  for (;;) {
    f->wait_op = kWaitNone;
    ParkResult r = f->parker.park(d, WaitReason::kSleep, /*interruptible=*/true);
    if (r == ParkResult::kTimedOut) return out(0);  // a signal that came as the sleep ended: its handler runs now
    if (r == ParkResult::kInterrupted) {
      long e = interrupted(f);
      if (relative && rem) *rem = sub_clamped(abs, now(clock));
      return e;
    }
    if (d.passed()) return out(0);  // else a stray permit: keep sleeping until the deadline
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

// clock_nanosleep on another thread's CPU clock (the kernel's
// posix_cpu_nsleep): wait until that thread's CPU time reaches the deadline;
// the caller's own clock is EINVAL. A thread's CPU time grows no faster than
// wall time, so the fiber sleeps the CPU time still missing (at least 1 ms:
// the kernel, too, checks CPU timers at its tick), reads the clock again and
// repeats: it never wakes before the deadline, and soon after it. Returns 1
// if `clock` is not a fiber's CPU clock (the kernel's call decides), else 0
// or -errno.
long cpu_clock_sleep(Fiber* f, clockid_t clock, int flags, const timespec* req, timespec* rem) {
  if (clock >= 0 || !(clock & kPerThread)) return 1;
  int tid = static_cast<int>(~(clock >> 3));
  if (tid == 0 || tid == f->tid) return -EINVAL;
  uint64_t cur = 0;
  bool virt = false;
  if (!fiber_clock(clock, &cur, &virt)) return 1;
  if (req->tv_nsec < 0 || req->tv_nsec >= kNs || req->tv_sec < 0) return -EINVAL;
  auto read_clock = [&](uint64_t* v) {
    if (!fiber_clock(clock, v, &virt)) return false;  // the thread ended
    if (virt) *v = user_part(*v);
    return true;
  };
  read_clock(&cur);
  uint64_t want = static_cast<uint64_t>(req->tv_sec) * kNs + static_cast<uint64_t>(req->tv_nsec);
  bool absolute = flags & TIMER_ABSTIME;
  uint64_t deadline = absolute ? want : cur + want;
  constexpr uint64_t kMinSleep = 1000000;
  for (;;) {
    if (!read_clock(&cur) || cur >= deadline) return 0;
    uint64_t missing = deadline - cur;
    timespec until = add(now(CLOCK_MONOTONIC), from_ns(missing < kMinSleep ? kMinSleep : missing));
    if (fiber_sleep(f, CLOCK_MONOTONIC, until, false, nullptr) == -EINTR) {
      if (!absolute && rem) *rem = read_clock(&cur) && cur < deadline ? from_ns(deadline - cur) : timespec{0, 0};
      return -EINTR;
    }
  }
}

}  // namespace

long clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem) {
  Fiber* f = fiber_for_call();
  if (f && req && clock < 0) {
    long r = cpu_clock_sleep(f, clock, flags, req, rem);
    if (r <= 0) return r;
  }
  if (!f || !supported_clock(clock) || !req) return -real::clock_nanosleep(clock, flags, req, rem);
  if (req->tv_nsec < 0 || req->tv_nsec >= kNs || req->tv_sec < 0) return -EINVAL;
  bool absolute = flags & TIMER_ABSTIME;
  timespec abs = absolute ? *req : add(now(clock), *req);
  return fiber_sleep(f, clock, abs, !absolute, rem);
}

long clock_gettime(clockid_t clock, timespec* ts) {
  uint64_t ns = 0;
  bool virt = false;
  if (!fiber_clock(clock, &ns, &virt)) return sys(real::clock_gettime(clock, ts));
  if (virt) ns = user_part(ns);
  ts->tv_sec = static_cast<time_t>(ns / kNs);
  ts->tv_nsec = static_cast<long>(ns % kNs);
  return 0;
}

long clock_getres(clockid_t clock, timespec* res) {
  uint64_t ns = 0;
  bool virt = false;
  if (!fiber_clock(clock, &ns, &virt)) return sys(real::clock_getres(clock, res));
  // Every thread CPU clock has the same resolution (1 ns for SCHED).
  return sys(real::clock_getres(CLOCK_THREAD_CPUTIME_ID, res));
}

// RUSAGE_THREAD of a fiber: its CPU time, split into user and system time
// in its carrier's proportion; maxrss is the process's (as the kernel gives
// it); the other counters are not kept per fiber and read 0.
long getrusage(int who, rusage* ru) {
  Fiber* f = who == RUSAGE_THREAD ? fiber_for_call() : nullptr;
  if (!f) return sys(real::getrusage(who, ru));
  rusage carrier{};
  if (real::getrusage(RUSAGE_THREAD, &carrier) != 0) return -errno;
  memset(ru, 0, sizeof *ru);
  ru->ru_maxrss = carrier.ru_maxrss;
  cpu::split(cpu::fiber_ns(f), &ru->ru_utime, &ru->ru_stime);
  return 0;
}

}  // namespace unblock::rt
