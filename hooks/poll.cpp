// Readiness hooks: poll/ppoll (+ _FORTIFY_SOURCE forms), select/pselect,
// epoll_wait/epoll_pwait.
//
// Each first asks the kernel without waiting (the real call with a zero
// timeout); only if nothing is ready and the program is willing to wait does
// the fiber park, on one IORING_OP_POLL_ADD per descriptor (for epoll, one on
// the epoll fd itself) plus the deadline. When anything fires, every other
// poll is cancelled and its completion awaited, and the real call is asked
// again with a zero timeout, so the result sets are exactly the kernel's.
// A handler run for the fiber ends the wait with EINTR (these calls are never
// restarted, as in Linux). Descriptors above 1024 work for poll and epoll.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

#include <cstdlib>
#include <cstring>

#include "hooks/fault.h"
#include "hooks/io_common.h"
#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/signals.h"
#include "shim/real.h"

using namespace unblock;

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace {

struct Group;

struct PollWait : Completion {
  Group* group = nullptr;
  bool done = false;
};

struct Group {
  Fiber* fiber = nullptr;
  int pending = 0;
  int fired = 0;
};

void on_poll(Completion* c, int, uint32_t) {
  auto* w = static_cast<PollWait*>(c);
  w->done = true;
  w->group->pending--;
  w->group->fired++;
  w->group->fiber->parker.unpark();
}

enum class Wake { kReady, kTimeout, kInterrupted };

// Parks until one of fds[i] (events[i]) may be ready, the deadline passes or
// a handler is due. Runs on the fiber; completions run on its worker's
// scheduler, so the counters need no atomics.
Wake wait_any(Fiber* f, const int* fdv, const short* events, int n, const Deadline& d) {
  cancel::point();  // poll, select, epoll_wait are cancellation points
  PollWait small[16];
  PollWait* waits = n <= 16 ? small : new (std::nothrow) PollWait[n];
  if (!waits) return Wake::kTimeout;
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
    IoOp op{};
    op.kind = IoOp::kPollAdd;
    op.fd = fdv[i];
    op.len = static_cast<uint16_t>(events[i]) | POLLERR | POLLHUP;
    w->engine.submit_op(op, &waits[i], 0, nullptr);
    ++g.pending;
  }
  Wake why = Wake::kReady;
  f->wait_op = kWaitPoll;
  f->wait_arg = n;
  while (g.fired == 0 && g.pending > 0) {
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
  // Cancel what has not fired and wait for every completion: the kernel may
  // still write to these PollWaits until then.
  for (int i = 0; i < n; ++i) {
    if (!waits[i].done) f->carrier->worker->engine.cancel(&waits[i]);
  }
  while (g.pending > 0) f->parker.park(Deadline::never(), WaitReason::kIo, false);
  sched::leave(f);
  if (waits != small) delete[] waits;
  return why;
}

Deadline deadline_ms(int timeout) {
  return timeout < 0 ? Deadline::never() : Deadline::after_ns(static_cast<int64_t>(timeout) * 1000000);
}

Deadline deadline_ts(const timespec* ts) {
  if (!ts) return Deadline::never();
  return Deadline::after_ns(ts->tv_sec * 1000000000LL + ts->tv_nsec);
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

int poll_common(Fiber* f, struct pollfd* pfd, nfds_t n, const Deadline& d, const sigset_t* mask) {
  MaskScope scope(mask);
  PollScratch scratch(n);
  int* fdv = scratch.fdv;
  short* ev = scratch.ev;
  if (!fdv || !ev) return hooks::fail(ENOMEM);
  for (nfds_t i = 0; i < n; ++i) {
    fdv[i] = pfd[i].fd;
    ev[i] = pfd[i].events;
  }
  int result;
  for (;;) {
    Wake why = wait_any(f, fdv, ev, static_cast<int>(n), d);
    result = real::poll(pfd, n, 0);
    if (result != 0) break;
    if (why == Wake::kInterrupted) {
      signals::run_pending(f);
      cancel::point();
      result = hooks::fail(EINTR);
      break;
    }
    if (why == Wake::kTimeout || d.passed()) break;
  }
  return result;
}

}  // namespace

UNBLOCK_HOOK int poll(struct pollfd* pfd, nfds_t n, int timeout) {
  if (hooks::fault_armed(fault::Op::kPoll)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = timeout < 0 ? -1 : timeout * 1000000LL;
    return static_cast<int>(hooks::fault_call(fault::Op::kPoll, a, [&] { return poll(pfd, n, timeout); }));
  }
  Fiber* f = hooks::fiber_for_call();
  if (!f || timeout == 0) return real::poll(pfd, n, timeout);
  int r = real::poll(pfd, n, 0);
  if (r != 0) return r;
  return poll_common(f, pfd, n, deadline_ms(timeout), nullptr);
}

UNBLOCK_HOOK int ppoll(struct pollfd* pfd, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  if (hooks::fault_armed(fault::Op::kPoll)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = ts ? ts->tv_sec * 1000000000LL + ts->tv_nsec : -1;
    return static_cast<int>(hooks::fault_call(fault::Op::kPoll, a, [&] { return ppoll(pfd, n, ts, mask); }));
  }
  Fiber* f = hooks::fiber_for_call();
  if (!f || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0)) return real::ppoll(pfd, n, ts, mask);
  if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) return hooks::fail(EINVAL);
  int r = real::poll(pfd, n, 0);
  if (r != 0) return r;
  return poll_common(f, pfd, n, deadline_ts(ts), mask);
}

UNBLOCK_HOOK int __poll_chk(struct pollfd* pfd, nfds_t n, int timeout, size_t len) {
  if (len / sizeof(*pfd) < n) __chk_fail();
  return poll(pfd, n, timeout);
}

UNBLOCK_HOOK int __ppoll_chk(struct pollfd* pfd, nfds_t n, const struct timespec* ts, const sigset_t* mask,
                             size_t len) {
  if (len / sizeof(*pfd) < n) __chk_fail();
  return ppoll(pfd, n, ts, mask);
}

namespace {

// Asks the kernel without waiting; when nothing is ready the caller's sets
// are put back as they were, ready for the wait.
int select_nowait(int nfds, fd_set* r, fd_set* w, fd_set* e) {
  fd_set sr, sw, se;
  if (r) sr = *r;
  if (w) sw = *w;
  if (e) se = *e;
  timeval zero{0, 0};
  int first = real::select(nfds, r, w, e, &zero);
  if (first == 0) {
    if (r) *r = sr;
    if (w) *w = sw;
    if (e) *e = se;
  }
  return first;
}

int select_common(Fiber* f, int nfds, fd_set* r, fd_set* w, fd_set* e, const Deadline& d, const sigset_t* mask) {
  MaskScope scope(mask);
  fd_set in_r, in_w, in_e;
  if (r) in_r = *r;
  if (w) in_w = *w;
  if (e) in_e = *e;
  int fdv[FD_SETSIZE];
  short ev[FD_SETSIZE];
  int n = 0;
  for (int fd = 0; fd < nfds && fd < FD_SETSIZE; ++fd) {
    short events = 0;
    if (r && FD_ISSET(fd, &in_r)) events |= POLLIN;
    if (w && FD_ISSET(fd, &in_w)) events |= POLLOUT;
    if (e && FD_ISSET(fd, &in_e)) events |= POLLPRI;
    if (!events) continue;
    fdv[n] = fd;
    ev[n++] = events;
  }
  for (;;) {
    Wake why = wait_any(f, fdv, ev, n, d);
    if (r) *r = in_r;
    if (w) *w = in_w;
    if (e) *e = in_e;
    timeval zero{0, 0};
    int result = real::select(nfds, r, w, e, &zero);
    if (result != 0) return result;
    if (why == Wake::kInterrupted) {
      signals::run_pending(f);
      cancel::point();
      return hooks::fail(EINTR);
    }
    if (why == Wake::kTimeout || d.passed()) return 0;
  }
}

}  // namespace

UNBLOCK_HOOK int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
  if (hooks::fault_armed(fault::Op::kSelect)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = tv ? tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL : -1;
    return static_cast<int>(hooks::fault_call(fault::Op::kSelect, a, [&] { return select(nfds, r, w, e, tv); }));
  }
  Fiber* f = hooks::fiber_for_call();
  if (!f || (tv && tv->tv_sec == 0 && tv->tv_usec == 0) || nfds < 0 || nfds > FD_SETSIZE) {
    return real::select(nfds, r, w, e, tv);
  }
  if (tv && (tv->tv_sec < 0 || tv->tv_usec < 0)) return hooks::fail(EINVAL);
  int first = select_nowait(nfds, r, w, e);
  if (first != 0) return first;
  Deadline d = tv ? Deadline::after_ns(tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL) : Deadline::never();
  int result = select_common(f, nfds, r, w, e, d, nullptr);
  if (tv) {
    // Linux reports the time not slept.
    int64_t left = d.remaining_ns();
    if (left < 0) left = 0;
    tv->tv_sec = left / 1000000000;
    tv->tv_usec = (left % 1000000000) / 1000;
  }
  return result;
}

UNBLOCK_HOOK int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const struct timespec* ts,
                         const sigset_t* mask) {
  if (hooks::fault_armed(fault::Op::kPselect)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = ts ? ts->tv_sec * 1000000000LL + ts->tv_nsec : -1;
    return static_cast<int>(
        hooks::fault_call(fault::Op::kPselect, a, [&] { return pselect(nfds, r, w, e, ts, mask); }));
  }
  Fiber* f = hooks::fiber_for_call();
  if (!f || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0) || nfds < 0 || nfds > FD_SETSIZE) {
    return real::pselect(nfds, r, w, e, ts, mask);
  }
  if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) return hooks::fail(EINVAL);
  int first = select_nowait(nfds, r, w, e);
  if (first != 0) return first;
  return select_common(f, nfds, r, w, e, deadline_ts(ts), mask);
}

namespace {

int epoll_common(Fiber* f, int epfd, struct epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  MaskScope scope(mask);
  Deadline d = deadline_ms(timeout);
  int fdv[1] = {epfd};
  short events[1] = {POLLIN};
  for (;;) {
    Wake why = wait_any(f, fdv, events, 1, d);
    int r = real::epoll_wait(epfd, ev, max, 0);
    if (r != 0) return r;
    if (why == Wake::kInterrupted) {
      signals::run_pending(f);
      cancel::point();
      return hooks::fail(EINTR);
    }
    if (why == Wake::kTimeout || d.passed()) return 0;
  }
}

}  // namespace

UNBLOCK_HOOK int epoll_wait(int epfd, struct epoll_event* ev, int max, int timeout) {
  if (hooks::fault_armed(fault::Op::kEpollWait)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = timeout < 0 ? -1 : timeout * 1000000LL;
    return static_cast<int>(
        hooks::fault_call(fault::Op::kEpollWait, a, [&] { return epoll_wait(epfd, ev, max, timeout); }));
  }
  Fiber* f = hooks::fiber_for_call();
  if (!f || timeout == 0) return real::epoll_wait(epfd, ev, max, timeout);
  int r = real::epoll_wait(epfd, ev, max, 0);
  if (r != 0) return r;
  return epoll_common(f, epfd, ev, max, timeout, nullptr);
}

UNBLOCK_HOOK int epoll_pwait(int epfd, struct epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  if (hooks::fault_armed(fault::Op::kEpollWait)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = timeout < 0 ? -1 : timeout * 1000000LL;
    return static_cast<int>(
        hooks::fault_call(fault::Op::kEpollWait, a, [&] { return epoll_pwait(epfd, ev, max, timeout, mask); }));
  }
  Fiber* f = hooks::fiber_for_call();
  if (!f || timeout == 0) return real::epoll_pwait(epfd, ev, max, timeout, mask);
  int r = real::epoll_wait(epfd, ev, max, 0);
  if (r != 0) return r;
  return epoll_common(f, epfd, ev, max, timeout, mask);
}
