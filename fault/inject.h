// Carrying out what an armed fault point asks for, around one call of a
// hook. Used by the wrappers fault/wrappers.cpp generates from
// fault/wrappers.def: each exported faultable name tests armed(op) (one
// relaxed load and a branch when nothing is armed) and, when a rule is
// armed, hands the hook call to one of the templates below, which check the
// op's armed points with libfiu before anything reaches io_uring, inject,
// and call the hook - with the (possibly shortened) arguments.
//
// The wrappers run on fibers and plain threads alike, before or after the
// runtime started, and in forked children: the points are the program's
// calls, not the runtime's (the hooks' own calls bind to the hooks, never to
// the wrappers: hooks/fault.h). They may suspend (delay and hang park the
// caller: a fiber on an io_uring timeout, so its worker keeps running the
// others). They set errno only for an injected failure, and leave it as the
// real call left it otherwise. Inside a signal handler the runtime runs, no
// point fires.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <type_traits>

#include "fault/fault.h"

namespace unblock::fault {

// Nonzero while a fault wrapper runs the hook it wraps: a call the program
// makes from there (a signal handler run during a hang) sees no point. The
// wrappers test it on their armed path only (fault/wrappers.cpp).
// Per thread of the program (fibers have their own TLS).
extern thread_local int tl_fault_depth __attribute__((tls_model("initial-exec")));

// What a non-transfer call tells its points.
struct FaultArgs {
  int fd = -1;
  int flags = 0;             // open(2) flags (errno choice, O_NONBLOCK)
  int64_t timeout_ns = -1;   // poll family: < 0 waits forever, 0 never sleeps
  const sockaddr* addr = nullptr;  // connect: the peer
  socklen_t addrlen = 0;
};

using FaultVecFn = ssize_t (*)(void* ctx, const iovec* iov, int cnt);
using FaultCallFn = long (*)(void* ctx);

// A transfer of the bytes described by iov (read/write/send/recv families,
// splice and sendfile with a null base). fn performs the real call.
ssize_t fault_transfer(Op op, int fd, const iovec* iov, int cnt, int msg_flags, FaultVecFn fn, void* ctx);
// Any other call (open, close, fsync, socket, accept, connect, poll family).
long fault_invoke(Op op, const FaultArgs& args, FaultCallFn fn, void* ctx);

// f(void* buf, size_t n) -> ssize_t
template <class F>
ssize_t fault_io(Op op, int fd, void* buf, size_t n, int msg_flags, F&& f) {
  using Fn = std::remove_reference_t<F>;
  iovec v{buf, n};
  return fault_transfer(
      op, fd, &v, 1, msg_flags,
      [](void* c, const iovec* iov, int) -> ssize_t { return (*static_cast<Fn*>(c))(iov[0].iov_base, iov[0].iov_len); },
      &f);
}

// f(const iovec* iov, int cnt) -> ssize_t
template <class F>
ssize_t fault_iov(Op op, int fd, const iovec* iov, int cnt, F&& f) {
  using Fn = std::remove_reference_t<F>;
  return fault_transfer(
      op, fd, iov, cnt, 0,
      [](void* c, const iovec* v, int n) -> ssize_t { return (*static_cast<Fn*>(c))(v, n); }, &f);
}

// recvmsg/sendmsg: f(msghdr* m) -> ssize_t, with m a copy of *msg whose iov
// may be shortened. For recvmsg what the kernel reports in the header
// (name length, control length, flags) is copied back.
template <class F>
ssize_t fault_msg(Op op, int fd, msghdr* msg, int flags, bool copy_back, F&& f) {
  using Fn = std::remove_reference_t<F>;
  struct Ctx {
    Fn* f;
    msghdr* msg;
    bool copy_back;
  } ctx{&f, msg, copy_back};
  int cnt = msg->msg_iovlen > 1024 ? -1 : static_cast<int>(msg->msg_iovlen);
  return fault_transfer(
      op, fd, msg->msg_iov, cnt, flags,
      [](void* c, const iovec* v, int n) -> ssize_t {
        auto* x = static_cast<Ctx*>(c);
        msghdr m = *x->msg;
        if (n >= 0) {
          m.msg_iov = const_cast<iovec*>(v);
          m.msg_iovlen = static_cast<size_t>(n);
        }
        ssize_t r = (*x->f)(&m);
        if (x->copy_back) {
          x->msg->msg_namelen = m.msg_namelen;
          x->msg->msg_controllen = m.msg_controllen;
          x->msg->msg_flags = m.msg_flags;
        }
        return r;
      },
      &ctx);
}

// f() -> integer result of the call
template <class F>
long fault_call(Op op, const FaultArgs& args, F&& f) {
  using Fn = std::remove_reference_t<F>;
  return fault_invoke(
      op, args, [](void* c) -> long { return static_cast<long>((*static_cast<Fn*>(c))()); }, &f);
}

}  // namespace unblock::fault
