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

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "hooks/fault.h"
#include "hooks/io_common.h"
#include "runtime/alloc.h"
#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/signals.h"
#include "shim/real.h"

using namespace unblock;

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace {

// A handler due for the caller runs before the call returns, after any
// temporary mask is restored (hooks::deliver_due). errno survives it.
int delivered(int r) {
  int e = errno;
  hooks::deliver_due();
  errno = e;
  return r;
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
struct PollWait : Completion {
  Group* group = nullptr;
  Engine* engine = nullptr;
  int fd = -1;
  uint16_t mask = 0;    // asked of io_uring
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
  IoOp op{};
  op.kind = IoOp::kPollAdd;
  op.fd = w->fd;
  op.len = w->mask;
  if (w->multishot) op.flags = IoOp::kPollMultishot;
  w->engine->submit_op(op, w, 0, nullptr);
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
      submit_poll(w);  // same Completion: the wait's cancel reaches it
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
    waits[i].fd = fdv[i];
    waits[i].mask = static_cast<uint16_t>(events[i]) | POLLERR | POLLHUP;
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
  int64_t ns = d.remaining_ns();
  if (ns < 0) ns = 0;
  int64_t us = (ns + 999) / 1000;
  return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
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
    Wake why = wait_any(f, fdv, ev, nullptr, static_cast<int>(n), d);
    if (why == Wake::kNoMemory) {
      sched::begin_blocking(f);
      return real::poll(pfd, n, timeout_ms_left(d));
    }
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

UNBLOCK_FAULTABLE int poll(struct pollfd* pfd, nfds_t n, int timeout) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || timeout == 0) return real::poll(pfd, n, timeout);
  int r = real::poll(pfd, n, 0);
  if (r != 0) return r;
  return delivered(poll_common(f, pfd, n, deadline_ms(timeout), nullptr));
}

UNBLOCK_FAULTABLE int ppoll(struct pollfd* pfd, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0)) return real::ppoll(pfd, n, ts, mask);
  if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) return hooks::fail(EINVAL);
  int r = real::poll(pfd, n, 0);
  if (r != 0) return r;
  return delivered(poll_common(f, pfd, n, deadline_ts(ts), mask));
}

UNBLOCK_FAULTABLE int __poll_chk(struct pollfd* pfd, nfds_t n, int timeout, size_t len) {
  if (len / sizeof(*pfd) < n) __chk_fail();
  return poll(pfd, n, timeout);
}

UNBLOCK_FAULTABLE int __ppoll_chk(struct pollfd* pfd, nfds_t n, const struct timespec* ts, const sigset_t* mask,
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
    if (why == Wake::kNoMemory) {
      if (r) *r = in_r;
      if (w) *w = in_w;
      if (e) *e = in_e;
      sched::begin_blocking(f);
      timeval tv = timeval_left(d);
      return real::select(nfds, r, w, e, d.infinite ? nullptr : &tv);
    }
    if (r) *r = in_r;
    if (w) *w = in_w;
    if (e) *e = in_e;
    timeval zero{0, 0};
    int result = real::select(nfds, r, w, e, &zero);
    if (result != 0) return result;
    if (why == Wake::kInterrupted) {
      // Linux leaves the sets as the caller passed them when select ends
      // with EINTR (only a result writes them); CPython retries with the
      // same fd_set objects, and cleared sets made it wait on nothing.
      if (r) *r = in_r;
      if (w) *w = in_w;
      if (e) *e = in_e;
      signals::run_pending(f);
      cancel::point();
      return hooks::fail(EINTR);
    }
    if (why == Wake::kTimeout || d.passed()) return 0;
  }
}

}  // namespace

UNBLOCK_FAULTABLE int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
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
  return delivered(result);
}

UNBLOCK_FAULTABLE int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const struct timespec* ts,
                         const sigset_t* mask) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || (ts && ts->tv_sec == 0 && ts->tv_nsec == 0) || nfds < 0 || nfds > FD_SETSIZE) {
    return real::pselect(nfds, r, w, e, ts, mask);
  }
  if (ts && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000)) return hooks::fail(EINVAL);
  int first = select_nowait(nfds, r, w, e);
  if (first != 0) return first;
  return delivered(select_common(f, nfds, r, w, e, deadline_ts(ts), mask));
}

namespace {

int epoll_common(Fiber* f, int epfd, struct epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  MaskScope scope(mask);
  Deadline d = deadline_ms(timeout);
  int fdv[1] = {epfd};
  short events[1] = {POLLIN};
  for (;;) {
    Wake why = wait_any(f, fdv, events, nullptr, 1, d);
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

UNBLOCK_FAULTABLE int epoll_wait(int epfd, struct epoll_event* ev, int max, int timeout) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || timeout == 0) return real::epoll_wait(epfd, ev, max, timeout);
  int r = real::epoll_wait(epfd, ev, max, 0);
  if (r != 0) return r;
  return delivered(epoll_common(f, epfd, ev, max, timeout, nullptr));
}

UNBLOCK_FAULTABLE int epoll_pwait(int epfd, struct epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || timeout == 0) return real::epoll_pwait(epfd, ev, max, timeout, mask);
  int r = real::epoll_wait(epfd, ev, max, 0);
  if (r != 0) return r;
  return delivered(epoll_common(f, epfd, ev, max, timeout, mask));
}
