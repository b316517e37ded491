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

UNBLOCK_FAULTABLE int poll(struct pollfd* pfd, nfds_t n, int timeout) {
  return static_cast<int>(ret(rt::poll(pfd, n, timeout)));
}

UNBLOCK_FAULTABLE int ppoll(struct pollfd* pfd, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  return static_cast<int>(ret(rt::ppoll(pfd, n, ts, mask)));
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

UNBLOCK_FAULTABLE int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
  return static_cast<int>(ret(rt::select(nfds, r, w, e, tv)));
}

UNBLOCK_FAULTABLE int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const struct timespec* ts,
                         const sigset_t* mask) {
  return static_cast<int>(ret(rt::pselect(nfds, r, w, e, ts, mask)));
}

UNBLOCK_FAULTABLE int epoll_wait(int epfd, struct epoll_event* ev, int max, int timeout) {
  return static_cast<int>(ret(rt::epoll_pwait(epfd, ev, max, timeout, nullptr)));
}

UNBLOCK_FAULTABLE int epoll_pwait(int epfd, struct epoll_event* ev, int max, int timeout, const sigset_t* mask) {
  return static_cast<int>(ret(rt::epoll_pwait(epfd, ev, max, timeout, mask)));
}
