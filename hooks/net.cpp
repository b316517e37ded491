// Socket hooks: socket/socketpair, accept/accept4, connect, recv/recvfrom/
// recvmsg, send/sendto/sendmsg (and the _FORTIFY_SOURCE recv forms),
// shutdown, setsockopt (timeouts are remembered, see runtime/fdtable.h).
//
// Blocking sockets wait in io_uring; MSG_DONTWAIT and non-blocking sockets go
// to the kernel directly. SO_RCVTIMEO covers recv*/accept, SO_SNDTIMEO
// send*/connect, as in Linux (a timed-out connect reports EINPROGRESS).
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "hooks/fault.h"
#include "hooks/io_common.h"
#include "runtime/signals.h"

using namespace unblock;
using hooks::Dir;
using hooks::finish;

extern "C" void __chk_fail(void) __attribute__((noreturn));

namespace {

// fds arriving in SCM_RIGHTS messages are unknown to the runtime until used.
void forget_passed_fds(const msghdr* msg) {
  if (!msg->msg_control) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(msg)); c; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const int* fdv = reinterpret_cast<const int*>(CMSG_DATA(c));
    for (size_t i = 0; i < n; ++i) {
      int fd;
      memcpy(&fd, fdv + i, sizeof fd);
      fds::forget(fd);
    }
  }
}

// Returns the fiber if this socket call should wait in the ring.
Fiber* ring_candidate(int fd, int msg_flags, fds::Info* info) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || (msg_flags & MSG_DONTWAIT)) return nullptr;
  *info = fds::lookup(fd);
  if (!info->valid || info->nonblock) return nullptr;
  return f;
}

ssize_t recv_msg_op(Fiber* f, const fds::Info& info, int fd, msghdr* msg, int flags) {
  IoOp op{};
  op.kind = IoOp::kRecvmsg;
  op.fd = fd;
  op.addr = msg;
  op.flags = static_cast<uint32_t>(flags);
  long r = hooks::run_blocking(f, info, op, Dir::kIn);
  if (r >= 0) forget_passed_fds(msg);
  return finish(r);
}

}  // namespace

UNBLOCK_FAULTABLE int socket(int domain, int type, int protocol) {
  int fd = real::socket(domain, type, protocol);
  if (fd >= 0) fds::created(fd, type & SOCK_NONBLOCK, fds::Kind::kSocket);
  return fd;
}

UNBLOCK_HOOK int socketpair(int domain, int type, int protocol, int sv[2]) {
  int r = real::socketpair(domain, type, protocol, sv);
  if (r == 0) {
    fds::created(sv[0], type & SOCK_NONBLOCK, fds::Kind::kSocket);
    fds::created(sv[1], type & SOCK_NONBLOCK, fds::Kind::kSocket);
  }
  return r;
}

UNBLOCK_FAULTABLE int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  fds::Info info;
  Fiber* f = ring_candidate(fd, 0, &info);
  int r;
  if (!f) {
    r = real::accept4(fd, addr, len, flags);
  } else {
    IoOp op{};
    op.kind = IoOp::kAccept;
    op.fd = fd;
    op.addr = addr;
    op.off = reinterpret_cast<uint64_t>(len);
    op.flags = static_cast<uint32_t>(flags);
    op.urgent = true;  // new connections are not kept waiting a full pass (runtime/fiber.h)
    long res = hooks::run_blocking(f, info, op, Dir::kIn);
    r = static_cast<int>(finish(res));
  }
  if (r >= 0) fds::created(r, flags & SOCK_NONBLOCK, fds::Kind::kSocket);
  return r;
}

UNBLOCK_FAULTABLE int accept(int fd, struct sockaddr* addr, socklen_t* len) { return accept4(fd, addr, len, 0); }

namespace {

// A blocking connect() on a socket whose connection is already under way
// waits for it (Linux's __inet_stream_connect; EALREADY is only for
// non-blocking sockets). That is also what a connect restarted after a
// SA_RESTART handler does. io_uring's connect answers EALREADY there, so
// wait for writability and report the outcome as the kernel would: 0, the
// socket's error, or ECONNABORTED if it was disconnected meanwhile; EALREADY
// once SO_SNDTIMEO runs out.
long wait_connected(Fiber* f, const fds::Info& info, int fd) {
  IoOp op{};
  op.kind = IoOp::kPollAdd;
  op.fd = fd;
  op.len = POLLOUT;
  long r = hooks::run_blocking(f, info, op, Dir::kOut);
  if (r < 0) return r == -EAGAIN ? -EALREADY : r;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  if (err) return -err;
  sockaddr_storage peer;
  len = sizeof peer;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 ? 0 : -ECONNABORTED;
}

}  // namespace

UNBLOCK_FAULTABLE int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  fds::Info info;
  Fiber* f = ring_candidate(fd, 0, &info);
  if (!f) return real::connect(fd, addr, len);
  IoOp op{};
  op.kind = IoOp::kConnect;
  op.fd = fd;
  op.addr = const_cast<sockaddr*>(addr);
  op.len = len;
  long r = hooks::run_blocking(f, info, op, Dir::kOut);
  if (r == -EAGAIN && info.sndtimeo_ns > 0) r = -EINPROGRESS;  // Linux's answer to a timed-out connect
  if (r == -EALREADY) r = wait_connected(f, info, fd);
  return static_cast<int>(finish(r));
}

UNBLOCK_FAULTABLE ssize_t recv(int fd, void* buf, size_t n, int flags) {
  fds::Info info;
  Fiber* f = ring_candidate(fd, flags, &info);
  if (!f || !info.socket) return real::recv(fd, buf, n, flags);
  IoOp op{};
  op.kind = IoOp::kRecv;
  op.fd = fd;
  op.addr = buf;
  op.len = n;
  op.flags = static_cast<uint32_t>(flags);
  return finish(hooks::run_blocking(f, info, op, Dir::kIn));
}

UNBLOCK_FAULTABLE ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* addr, socklen_t* len) {
  if (!addr) return recv(fd, buf, n, flags);
  fds::Info info;
  Fiber* f = ring_candidate(fd, flags, &info);
  if (!f || !info.socket || !len) return real::recvfrom(fd, buf, n, flags, addr, len);
  iovec iov{buf, n};
  msghdr msg{};
  msg.msg_name = addr;
  msg.msg_namelen = *len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ssize_t r = recv_msg_op(f, info, fd, &msg, flags);
  if (r >= 0) *len = msg.msg_namelen;
  return r;
}

UNBLOCK_FAULTABLE ssize_t recvmsg(int fd, struct msghdr* msg, int flags) {
  fds::Info info;
  Fiber* f = ring_candidate(fd, flags, &info);
  if (!f || !info.socket) {
    ssize_t r = real::recvmsg(fd, msg, flags);
    if (r >= 0) forget_passed_fds(msg);
    return r;
  }
  return recv_msg_op(f, info, fd, msg, flags);
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
  fds::Info info;
  Fiber* f = ring_candidate(fd, flags, &info);
  if (!f || !info.socket) return real::send(fd, buf, n, flags);
  return finish(hooks::write_all(f, info, fd, buf, n, flags, true));
}

UNBLOCK_FAULTABLE ssize_t sendto(int fd, const void* buf, size_t n, int flags, const struct sockaddr* addr,
                            socklen_t len) {
  if (!addr) return send(fd, buf, n, flags);
  fds::Info info;
  Fiber* f = ring_candidate(fd, flags, &info);
  if (!f || !info.socket) return real::sendto(fd, buf, n, flags, addr, len);
  // Datagrams with an address: one message, sent whole or not at all.
  iovec iov{const_cast<void*>(buf), n};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(addr);
  msg.msg_namelen = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  IoOp op{};
  op.kind = IoOp::kSendmsg;
  op.fd = fd;
  op.addr = &msg;
  op.flags = static_cast<uint32_t>(flags | MSG_NOSIGNAL);
  long r = hooks::run_blocking(f, info, op, Dir::kOut);
  if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) hooks::raise_sigpipe();
  return finish(r);
}

UNBLOCK_FAULTABLE ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  fds::Info info;
  Fiber* f = ring_candidate(fd, flags, &info);
  if (!f || !info.socket) return real::sendmsg(fd, msg, flags);
  IoOp op{};
  op.kind = IoOp::kSendmsg;
  op.fd = fd;
  op.addr = const_cast<msghdr*>(msg);
  op.flags = static_cast<uint32_t>(flags | MSG_NOSIGNAL);
  long r = hooks::send_now(f, fd, msg, flags);
  if (r == -EAGAIN) r = hooks::run_blocking(f, info, op, Dir::kOut);
  if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) hooks::raise_sigpipe();
  if (r <= 0 || msg->msg_iovlen == 0) return finish(r);
  // A stream socket's blocking sendmsg sends every byte: finish the rest
  // (without the control data, which went with the first part).
  size_t done = static_cast<size_t>(r), skip = 0;
  for (size_t i = 0; i < msg->msg_iovlen; ++i) {
    const iovec& v = msg->msg_iov[i];
    if (skip + v.iov_len <= done) {
      skip += v.iov_len;
      continue;
    }
    size_t from = done - skip;
    // Bytes went out: an EPIPE now ends the call with the partial count and
    // no SIGPIPE, as in the kernel.
    long w = hooks::write_all(f, info, fd, static_cast<char*>(v.iov_base) + from, v.iov_len - from,
                              flags | MSG_NOSIGNAL, true);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
    skip += v.iov_len;
    if (static_cast<size_t>(w) < v.iov_len - from) break;
  }
  return static_cast<ssize_t>(done);
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
      fds::set_timeout(fd, rcv, tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL);
    }
  }
  return r;
}
