// Readiness hooks: poll/ppoll (+ _FORTIFY_SOURCE forms), select/pselect,
// epoll_wait/epoll_pwait.
//
// Each forwards to the runtime (runtime/api.h; the wait is
// runtime/api_wait.cpp's): the kernel's answer without waiting first, then
// a park on every descriptor and the deadline, and the kernel asked again
// whenever anything fires, so the result sets are exactly the kernel's. A
// handler run for the fiber ends the wait with EINTR (never restarted, as
// in Linux).
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/time.h>

#include "hooks/fault.h"
#include "hooks/hook.h"

using namespace unblock;
using hooks::ret;

extern "C" void __chk_fail(void) __attribute__((noreturn));

UNBLOCK_HOOK int poll(struct pollfd* pfd, nfds_t n, int timeout) {
  if (hooks::fault_armed(fault::Op::kPoll)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = timeout < 0 ? -1 : timeout * 1000000LL;
    return static_cast<int>(hooks::fault_call(fault::Op::kPoll, a, [&] { return poll(pfd, n, timeout); }));
  }
  return static_cast<int>(ret(rt::poll(pfd, n, timeout)));
}

UNBLOCK_HOOK int ppoll(struct pollfd* pfd, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  if (hooks::fault_armed(fault::Op::kPoll)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = ts ? ts->tv_sec * 1000000000LL + ts->tv_nsec : -1;
    return static_cast<int>(hooks::fault_call(fault::Op::kPoll, a, [&] { return ppoll(pfd, n, ts, mask); }));
  }
  return static_cast<int>(ret(rt::ppoll(pfd, n, ts, mask)));
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

UNBLOCK_HOOK int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
  if (hooks::fault_armed(fault::Op::kSelect)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = tv ? tv->tv_sec * 1000000000LL + tv->tv_usec * 1000LL : -1;
    return static_cast<int>(hooks::fault_call(fault::Op::kSelect, a, [&] { return select(nfds, r, w, e, tv); }));
  }
  return static_cast<int>(ret(rt::select(nfds, r, w, e, tv)));
}

UNBLOCK_HOOK int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const struct timespec* ts,
                         const sigset_t* mask) {
  if (hooks::fault_armed(fault::Op::kPselect)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = ts ? ts->tv_sec * 1000000000LL + ts->tv_nsec : -1;
    return static_cast<int>(
        hooks::fault_call(fault::Op::kPselect, a, [&] { return pselect(nfds, r, w, e, ts, mask); }));
  }
  return static_cast<int>(ret(rt::pselect(nfds, r, w, e, ts, mask)));
}

UNBLOCK_HOOK int epoll_wait(int epfd, struct epoll_event* ev, int max, int timeout) {
  if (hooks::fault_armed(fault::Op::kEpollWait)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = timeout < 0 ? -1 : timeout * 1000000LL;
    return static_cast<int>(
        hooks::fault_call(fault::Op::kEpollWait, a, [&] { return epoll_wait(epfd, ev, max, timeout); }));
  }
  return static_cast<int>(ret(rt::epoll_pwait(epfd, ev, max, timeout, nullptr)));
}

UNBLOCK_HOOK int epoll_pwait(int epfd, struct epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  if (hooks::fault_armed(fault::Op::kEpollWait)) {  // fault point (hooks/fault.h)
    hooks::FaultArgs a;
    a.timeout_ns = timeout < 0 ? -1 : timeout * 1000000LL;
    return static_cast<int>(
        hooks::fault_call(fault::Op::kEpollWait, a, [&] { return epoll_pwait(epfd, ev, max, timeout, mask); }));
  }
  return static_cast<int>(ret(rt::epoll_pwait(epfd, ev, max, timeout, mask)));
}
