// Socket hooks: socket/socketpair, accept/accept4, connect, recv/recvfrom/
// recvmsg/recvmmsg, send/sendto/sendmsg/sendmmsg (and the _FORTIFY_SOURCE
// recv forms),
// shutdown, setsockopt (timeouts are remembered, see runtime/fdtable.h).
//
// Each forwards to the runtime's blocking-call API (runtime/api.h):
// blocking sockets wait in the engine; MSG_DONTWAIT and non-blocking sockets
// go to the kernel directly. SO_RCVTIMEO covers recv*/accept, SO_SNDTIMEO
// send*/connect, as in Linux (a timed-out connect reports EINPROGRESS).
#include <sys/socket.h>
#include <sys/time.h>

#include <cstring>

#include "hooks/fault.h"
#include "hooks/hook.h"

using namespace unblock;
using hooks::ret;

extern "C" void __chk_fail(void) __attribute__((noreturn));

UNBLOCK_FAULTABLE int socket(int domain, int type, int protocol) {
  int fd = real::socket(domain, type, protocol);
  if (fd >= 0) rt::fd_created_socket(fd, type & SOCK_NONBLOCK, domain, type);
  return fd;
}

UNBLOCK_HOOK int socketpair(int domain, int type, int protocol, int sv[2]) {
  int r = real::socketpair(domain, type, protocol, sv);
  if (r == 0) {
    rt::fd_created_socket(sv[0], type & SOCK_NONBLOCK, domain, type);
    rt::fd_created_socket(sv[1], type & SOCK_NONBLOCK, domain, type);
  }
  return r;
}

UNBLOCK_FAULTABLE int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  return static_cast<int>(ret(rt::accept4(fd, addr, len, flags)));
}

UNBLOCK_FAULTABLE int accept(int fd, struct sockaddr* addr, socklen_t* len) { return accept4(fd, addr, len, 0); }

UNBLOCK_FAULTABLE int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  return static_cast<int>(ret(rt::connect(fd, addr, len)));
}

UNBLOCK_FAULTABLE ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (!hooks::fiber_for_call()) return real::recv(fd, buf, n, flags);
  return ret(rt::recv(fd, buf, n, flags));
}

UNBLOCK_FAULTABLE ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* addr, socklen_t* len) {
  if (!addr) return recv(fd, buf, n, flags);
  return ret(rt::recvfrom(fd, buf, n, flags, addr, len));
}

UNBLOCK_FAULTABLE ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  return ret(rt::recvmsg(fd, msg, flags));
}

UNBLOCK_HOOK int recvmmsg(int fd, struct mmsghdr* vec, unsigned int vlen, int flags, struct timespec* timeout) {
  return static_cast<int>(ret(rt::recvmmsg(fd, vec, vlen, flags, timeout)));
}

UNBLOCK_HOOK int sendmmsg(int fd, struct mmsghdr* vec, unsigned int vlen, int flags) {
  return static_cast<int>(ret(rt::sendmmsg(fd, vec, vlen, flags)));
}

UNBLOCK_FAULTABLE ssize_t __recv_chk(int fd, void* buf, size_t n, size_t buflen, int flags) {
  if (n > buflen) __chk_fail();
  return recv(fd, buf, n, flags);
}

UNBLOCK_FAULTABLE ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, struct sockaddr* addr,
                                    socklen_t* len) {
  if (n > buflen) __chk_fail();
  return recvfrom(fd, buf, n, flags, addr, len);
}

UNBLOCK_FAULTABLE ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (!hooks::fiber_for_call()) return real::send(fd, buf, n, flags);
  return ret(rt::send(fd, buf, n, flags));
}

UNBLOCK_FAULTABLE ssize_t sendto(int fd, const void* buf, size_t n, int flags, const struct sockaddr* addr,
                            socklen_t len) {
  if (!addr) return send(fd, buf, n, flags);
  return ret(rt::sendto(fd, buf, n, flags, addr, len));
}

UNBLOCK_FAULTABLE ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  return ret(rt::sendmsg(fd, msg, flags));
}

// A sender blocked on a full unix stream socket is woken by its own
// shutdown(SHUT_WR) and fails with EPIPE; epoll has no bit for that, so the
// engines are told (runtime/api.h).
UNBLOCK_HOOK int shutdown(int fd, int how) {
  int r = real::shutdown(fd, how);
  if (r == 0) rt::fd_shut_down(fd);
  return r;
}

UNBLOCK_HOOK int setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
  int r = real::setsockopt(fd, level, name, value, len);
  if (r == 0 && level == SOL_SOCKET && value && len >= sizeof(timeval)) {
    // SO_RCVTIMEO/SO_SNDTIMEO, and their _NEW forms (same layout on x86-64).
    bool rcv = name == SO_RCVTIMEO || name == 66;
    bool snd = name == SO_SNDTIMEO || name == 67;
    if (rcv || snd) {
      timeval tv;
      memcpy(&tv, value, sizeof tv);
      rt::fd_set_timeout(fd, rcv, tv);
    }
  }
  return r;
}
