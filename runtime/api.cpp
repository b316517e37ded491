// The blocking-call protocol for fd I/O (runtime/api.h), written once for
// every hook and every engine. docs/DESIGN.md ("The blocking-call state
// machine") is the essay; the steps, in the order a call takes them:
//
//  1. Whose call. A plain thread, a fiber outside a running runtime, a
//     non-blocking fd (the program's O_NONBLOCK, MSG_DONTWAIT), an fd the
//     runtime does not know to be open, a read of nothing: the real call,
//     at once - it cannot block, or the kernel's error is the answer.
//  2. Timeout. Sockets' SO_RCVTIMEO (reads, accept) or SO_SNDTIMEO (writes,
//     connect), learnt once per fd (runtime/fdtable.h); a whole-call
//     deadline for calls made of several operations (a long send).
//  3. A direct attempt where one pays: a send on a blocking socket is tried
//     with MSG_DONTWAIT first; only one that would wait goes on.
//  4. Submit and park (wait()): one Op on the worker's engine, the fiber
//     parked with WaitReason::kIo; it is a cancellation point on entry.
//  5. Interrupt: a signal handler due for the fiber, or its cancellation
//     request, wakes the park; the operation is cancelled through the
//     engine, and the fiber waits for its completion however it ends (the
//     Op and the buffers live on this stack).
//  6. Epilogue (after_interrupt(), the only copy): the handlers run, a
//     cancellation request unwinds (the operation has completed, so the
//     unwind is safe), and the call returns EINTR - or starts again when
//     the handler had SA_RESTART and the call may be restarted (not a
//     socket call with a timeout, as Linux; never poll/select/sleep).
//  7. Result: -ECANCELED of an expired timeout becomes EAGAIN (EINPROGRESS
//     for connect); EPIPE raises SIGPIPE unless MSG_NOSIGNAL or bytes went
//     out; the handlers due run on the way out (deliver_due), as the kernel
//     runs them on the return from a system call.
//
// Fiber only below the public functions, which check step 1 themselves.
#include "runtime/api.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>

#include "runtime/api_internal.h"
#include "runtime/cancel.h"
#include "runtime/engine.h"
#include "runtime/fdtable.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/iov.h"
#include "runtime/own_fds.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::rt {

// Step 6: the epilogue of an interrupted wait (api_internal.h).
bool detail::after_interrupt(Fiber* f) {
  bool restart = signals::run_pending(f);
  cancel::point();
  return restart;
}

void deliver_due() {
  Fiber* f = Fiber::current();
  if (!f) return;
  uint64_t mask = __atomic_load_n(reinterpret_cast<const uint64_t*>(&f->sigmask), __ATOMIC_RELAXED);
  if (__builtin_expect((f->sig.queue.hint() & ~mask) != 0, 0) && f->runtime_depth == 0 && sched::active()) {
    signals::run_pending(f);
  }
}

void begin_blocking() {
  if (Fiber* f = fiber_for_call()) sched::begin_blocking(f);
}

// SIGPIPE to the calling thread, as the kernel raises it for a failed send:
// through the emulation for a fiber, not through the exported pthread_kill.
void raise_sigpipe() {
  Fiber* f = Fiber::current();
  if (!f || !signals::table_ready()) {
    real::pthread_kill(pthread_self(), SIGPIPE);
    return;
  }
  siginfo_t si{};
  si.si_signo = SIGPIPE;
  si.si_code = SI_TKILL;
  si.si_pid = static_cast<pid_t>(raw_syscall(SYS_getpid));
  si.si_uid = static_cast<uid_t>(raw_syscall(SYS_getuid));
  signals::send_to_fiber(f, si);
}

// Calls fn(engine) for every worker's engine (none before the runtime runs).
template <typename F>
void each_engine(F fn) {
  if (!sched::active()) return;
  for (int i = 0, n = sched::worker_count(); i < n; ++i) fn(sched::worker_at(i)->engine);
}

// Every worker's engine drops what it keeps about the file fd named (the
// epoll engine's cached registration and duplicate: closed here, so a
// closed socket sends its FIN before the program's close returns).
void engines_forget(int fd, bool closing = false) {
  each_engine([fd, closing](Engine& e) { e.forget_remote(fd, closing); });
}

// A call that makes a descriptor got EMFILE: every engine closes the
// duplicates it keeps only as a cache (the epoll engine's idle
// registrations), so that the program meets the limit where it would
// without the library (one a waiting operation holds stays, as before).
// True if any was closed: the caller tries once more.
bool engines_release_idle() {
  int n = 0;
  each_engine([&n](Engine& e) { n += e.release_idle_remote(); });
  return n > 0;
}

// A hooked call made fd: if a close the hooks did not see (an inline
// system call) left a registration for the number, it is dropped now.
void fd_created(int fd, bool nonblock, FdKind kind) {
  engines_forget(fd);
  fds::created(fd, nonblock, static_cast<fds::Kind>(kind));
}
void fd_created_socket(int fd, bool nonblock, int domain, int type) {
  engines_forget(fd);
  fds::created_socket(fd, nonblock, domain, type);
}
void fd_forget(int fd) {
  engines_forget(fd);
  fds::forget(fd);
}
void fd_closing(int fd) {
  engines_forget(fd, true);
  fds::forget(fd);
}
void fd_forget_range(unsigned first, unsigned last) {
  each_engine([first, last](Engine& e) { e.forget_range_remote(first, last); });
  fds::forget_range(first, last);
}
void fd_duplicated(int oldfd, int newfd) {
  if (oldfd == newfd) return;
  engines_forget(newfd);
  fds::forget(newfd);
  fds::mark_shared(oldfd);
  fds::mark_shared(newfd);
}
void fd_set_nonblock(int fd, bool nonblock) { fds::set_nonblock(fd, nonblock); }
void fd_set_timeout(int fd, bool rcv, const timeval& tv) { fds::set_timeout(fd, rcv, fds::timeout_ns(tv)); }

void fd_shut_down(int fd) {
  each_engine([fd](Engine& e) { e.kick_remote(fd); });
}

static_assert(static_cast<int>(FdKind::kSocket) == static_cast<int>(fds::Kind::kSocket) &&
              static_cast<int>(FdKind::kRegular) == static_cast<int>(fds::Kind::kRegular) &&
              static_cast<int>(FdKind::kPipe) == static_cast<int>(fds::Kind::kPipe));

namespace {

constexpr uint64_t kCurrentPosition = static_cast<uint64_t>(-1);

enum class Dir { kIn, kOut };

using detail::after_interrupt;
using detail::bad_timespec;
using detail::out;
using detail::sys;

// ---- Steps 4 and 5: one operation through the engine --------------------

struct Waiter : Op {
  Fiber* fiber = nullptr;
  int res = 0;
  std::atomic<bool> done{false};
};

void on_done(Completion* c, int res, uint32_t) {
  auto* w = static_cast<Waiter*>(c);
  w->res = res;
  // Pairs with the fiber's acquire load of done.
  w->done.store(true, std::memory_order_release);
  w->fiber->parker.unpark();
}

// Submits io (with a timeout if timeout_ns > 0), parks until its completion
// and returns its result (>= 0 or -errno). interruptible: a handler or a
// cancellation request cancels the operation (*interrupted is set); its
// completion is still awaited. A cancellation request due at entry unwinds
// before anything is queued.
int wait(Fiber* f, const IoOp& io, int64_t timeout_ns, bool interruptible, bool* interrupted) {
  cancel::point();  // every blocking I/O call is a cancellation point
  Waiter w;
  w.fiber = f;
  w.on_complete = on_done;
  w.io = io;
  w.timeout_ns = timeout_ns;
  // Set only while waiting: a handler that leaves with siglongjmp after
  // the wait (run_pending) must not leave it set.
  f->wake_urgent = io.urgent;
  Worker* worker = sched::enter(f);
  worker->engine.submit(&w);
  bool cancelled = false;
  f->wait_op = static_cast<uint8_t>(static_cast<int>(kWaitIoBase) + static_cast<int>(io.kind));
  f->wait_arg = io.fd;
  while (!w.done.load(std::memory_order_acquire)) {
    ParkResult r = f->parker.park(Deadline::never(), WaitReason::kIo, interruptible && !cancelled);
    if (r == ParkResult::kInterrupted && !cancelled) {
      // Still inside the runtime on the carrier driving `worker`, the
      // engine the operation was queued on.
      f->carrier->worker->engine.cancel(&w);
      cancelled = true;
      *interrupted = true;
    }
  }
  f->wake_urgent = false;
  sched::leave(f);
  // ERESTARTSYS (512) is the kernel's own "restart this call", never meant
  // for user space; a blocking operation in io_uring's worker pool (a FIFO
  // open) interrupted by our cancellation may end with it.
  constexpr int kErestartsys = 512;
  if (w.res == -kErestartsys || (cancelled && w.res == -ECANCELED)) return -EINTR;
  return w.res;
}

int sock_int(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  if (raw_syscall(SYS_getsockopt, fd, level, name, reinterpret_cast<long>(&v), reinterpret_cast<long>(&len)) != 0) {
    return -1;
  }
  return v;
}

// A send that would wait on a unix datagram or seqpacket socket, on an
// engine that cannot wait for it (Backend::waits_for_unix_peer): sent now
// if the receiver's queue has room, else by the kernel's blocking call on
// this carrier, the worker handed off first; it waits as the program's own
// call would, SO_SNDTIMEO and signals included. Writes and sends alike
// (MSG_NOSIGNAL: SIGPIPE is the callers'). Not restartable (a batch that
// has sent some, whose wait a handler ends even under SA_RESTART, which the
// kernel's call would restart): tried again at growing intervals, 1 to 32
// ms, in an interruptible sleep of the fiber, until timeout_ns (> 0).
long send_to_unix_peer(Fiber* f, const IoOp& io, int64_t timeout_ns, bool restartable) {
  msghdr one{};
  iovec iov{};
  const msghdr* m = &one;
  int flags = MSG_NOSIGNAL;
  switch (io.kind) {
    case IoOp::kSendmsg:
      m = static_cast<const msghdr*>(io.addr);
      flags |= static_cast<int>(io.flags);
      break;
    case IoOp::kWritev:
      one.msg_iov = static_cast<iovec*>(io.addr);
      one.msg_iovlen = io.len;
      break;
    default:  // kSend, kWrite
      iov = iovec{io.addr, static_cast<size_t>(io.len)};
      one.msg_iov = &iov;
      one.msg_iovlen = 1;
      if (io.kind == IoOp::kSend) flags |= static_cast<int>(io.flags);
      break;
  }
  cancel::point();
  long r = raw_syscall(SYS_sendmsg, io.fd, reinterpret_cast<long>(m), flags | MSG_DONTWAIT);
  if (r != -EAGAIN) return r;
  if (restartable) {
    sched::begin_blocking(f);
    return sys(real::sendmsg(io.fd, m, flags));
  }
  Deadline end = timeout_ns > 0 ? Deadline::after_ns(timeout_ns) : Deadline::never();
  for (int64_t pause = 1000000;; pause = pause < 32000000 ? pause * 2 : pause) {
    Deadline next = Deadline::after_ns(pause);
    if (!end.infinite && end.remaining_ns() < pause) next = end;
    f->wait_op = kWaitNone;
    if (f->parker.park(next, WaitReason::kIo, /*interruptible=*/true) == ParkResult::kInterrupted) {
      after_interrupt(f);
      return -EINTR;
    }
    r = raw_syscall(SYS_sendmsg, io.fd, reinterpret_cast<long>(m), flags | MSG_DONTWAIT);
    if (r != -EAGAIN) return r;
    if (end.passed()) return -EAGAIN;
  }
}

// A send or write on a unix datagram or seqpacket socket (asked of the
// kernel once per fd, then kept in the fd table) on such an engine.
bool unix_peer_send(Fiber* f, const fds::Info& info, const IoOp& io) {
  bool send = io.kind == IoOp::kSend || io.kind == IoOp::kSendmsg || io.kind == IoOp::kWrite || io.kind == IoOp::kWritev;
  if (!send || info.unix_dgram == 0 || f->carrier->worker->engine.waits_for_unix_peer()) return false;
  if (info.unix_dgram > 0) return true;
  int type = sock_int(io.fd, SOL_SOCKET, SO_TYPE);
  bool yes = type >= 0 && type != SOCK_STREAM && sock_int(io.fd, SOL_SOCKET, SO_DOMAIN) == AF_UNIX;
  fds::set_unix_dgram(io.fd, info.state, yes);
  return yes;
}

// Steps 2 and 4-6 for one operation. timeout_ns < 0: the socket's own
// SO_RCVTIMEO/SO_SNDTIMEO; 0: none. Returns the result or -errno.
// restartable = false: a handler ends the wait with -EINTR even under
// SA_RESTART (the caller has a partial result to return instead).
long blocking(Fiber* f, const fds::Info& info, const IoOp& io, Dir dir, int64_t timeout_ns = -1,
              bool restartable = true) {
  int64_t timeout = timeout_ns;
  if (timeout < 0) timeout = !info.socket ? 0 : dir == Dir::kIn ? info.rcvtimeo_ns : info.sndtimeo_ns;
  // Regular files are not interrupted by signals (the kernel's reads of
  // them are not either).
  bool interruptible = info.kind != fds::Kind::kRegular;
  if (dir == Dir::kOut && info.socket && unix_peer_send(f, info, io)) {
    return send_to_unix_peer(f, io, timeout, restartable);
  }
  for (;;) {
    bool interrupted = false;
    int r = wait(f, io, timeout, interruptible, &interrupted);
    if (interrupted) {
      bool restart = after_interrupt(f);
      if (r == -EINTR) {
        if (restart && restartable && timeout == 0) continue;
        return -EINTR;
      }
    }
    // SO_*TIMEO expired. An operation io_uring had handed to its worker
    // threads (a socket that polls ready, e.g. with an error queued, while
    // the call still has nothing) ends with EINTR when its linked timeout
    // cancels it: without a handler having interrupted the wait, that too
    // is the timeout.
    if (timeout > 0 && (r == -ECANCELED || (r == -EINTR && !interrupted))) return -EAGAIN;
    return r;
  }
}

// ---- Step 3: direct sends ----------------------------------------------

// Most sends on a busy connection find room in the socket buffer. Through
// the engine such a send costs a submission, a completion, and a park and a
// resume of the fiber (a pass through the worker's run queue); sent directly
// and without waiting it costs one system call, and the fiber goes on at
// once. Measured on the 64-byte echo at 1,000 connections: +14% msg/s, +8% at
// 10,000 (docs/benchmarks/README.md). Only a send that would wait goes to the
// engine.
//
// A fiber whose sends keep succeeding would never switch, and the others on
// its worker would wait for it: after kDirectSendRun direct sends without a
// switch the next send takes the engine, which queues the fiber behind them.
constexpr uint8_t kDirectSendRun = 16;

// send(flags) is the system call, given the flags that make it not wait.
// The bytes the socket buffer takes now (maybe all), or -EAGAIN when it
// takes none (or the fiber used up its run of such sends), or -errno.
// SIGPIPE is the caller's (the call gets MSG_NOSIGNAL).
template <class Send>
long direct_send(Fiber* f, Send send) {
  if (f->direct_sends >= kDirectSendRun) return -EAGAIN;
  // send(2) is a cancellation point even when it does not block.
  cancel::point();
  long r = send(MSG_DONTWAIT | MSG_NOSIGNAL);
  if (r != -EAGAIN) {
    ++f->direct_sends;
    bump(f->worker->direct_sends);
  }
  return r;
}

long send_now(Fiber* f, int fd, const msghdr* msg, int msg_flags) {
  return direct_send(f, [&](int now) {
    return raw_syscall(SYS_sendmsg, fd, reinterpret_cast<long>(msg), msg_flags | now);
  });
}

long send_now(Fiber* f, int fd, const void* buf, size_t len, int msg_flags) {
  return direct_send(f, [&](int now) {
    return raw_syscall(SYS_sendto, fd, reinterpret_cast<long>(buf), static_cast<long>(len), msg_flags | now, 0, 0);
  });
}

// Sends all of [buf, buf+len) on a blocking socket (socket_send: send
// operations, the first tried directly) or pipe (write operations),
// stopping early only on timeout, signal or error with the partial count
// (or -errno if nothing was sent). SIGPIPE as the kernel raises it: only
// when nothing was sent and MSG_NOSIGNAL is not in msg_flags.
long write_all(Fiber* f, const fds::Info& info, int fd, const void* buf, size_t len, int msg_flags, bool socket_send) {
  size_t done = 0;
  const char* p = static_cast<const char*>(buf);
  // SO_SNDTIMEO bounds the whole call, not each piece.
  int64_t timeout = info.socket ? info.sndtimeo_ns : 0;
  Deadline deadline = timeout > 0 ? Deadline::after_ns(timeout) : Deadline::never();
  bool now = socket_send;  // the first piece of a socket send: send_now
  do {
    long r = now ? send_now(f, fd, p, len, msg_flags) : -EAGAIN;
    now = false;
    if (r == -EAGAIN) {
      IoOp op{};
      op.fd = fd;
      op.addr = const_cast<char*>(p + done);
      op.len = len - done;
      if (socket_send) {
        op.kind = IoOp::kSend;
        op.flags = static_cast<uint32_t>(msg_flags | MSG_NOSIGNAL);
      } else {
        op.kind = IoOp::kWrite;
        op.off = kCurrentPosition;
      }
      int64_t left = 0;
      if (timeout > 0) {
        left = deadline.remaining_ns();
        if (left <= 0) return done ? static_cast<long>(done) : -EAGAIN;
      }
      r = blocking(f, info, op, Dir::kOut, left);
    }
    if (r < 0) {
      // The kernel raises SIGPIPE only when the call sent nothing.
      if (r == -EPIPE && socket_send && !done && !(msg_flags & MSG_NOSIGNAL)) raise_sigpipe();
      return done ? static_cast<long>(done) : r;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  } while (done < len && (!socket_send || !(msg_flags & MSG_DONTWAIT)));
  return static_cast<long>(done);
}

// The rest of a stream write that sent `done` of the iovecs' bytes: piece
// by piece (without control data, which went with the first part). Bytes
// went out, so an EPIPE now ends the call with the partial count and no
// SIGPIPE (MSG_NOSIGNAL), as in the kernel.
long write_rest(Fiber* f, const fds::Info& info, int fd, const iovec* v, size_t n, size_t done, int msg_flags) {
  size_t skip = 0;
  for (size_t i = 0; i < n; ++i) {
    if (skip + v[i].iov_len <= done) {
      skip += v[i].iov_len;
      continue;
    }
    size_t from = done - skip;
    long w = write_all(f, info, fd, static_cast<char*>(v[i].iov_base) + from, v[i].iov_len - from,
                       msg_flags | MSG_NOSIGNAL, true);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
    skip += v[i].iov_len;
    if (static_cast<size_t>(w) < v[i].iov_len - from) break;  // cut short: timeout or signal
  }
  return static_cast<long>(done);
}

// ---- Step 1 for each family ------------------------------------------

// A read of zero bytes returns 0 at once for sockets, pipes and files, even
// with nothing pending; recv(2) of zero bytes would wait for a datagram (and
// consume it), so such a read must not become a recv.
bool asks_nothing(const IoOp& op) {
  if (op.kind == IoOp::kReadv) {
    auto* v = static_cast<const iovec*>(op.addr);
    for (uint64_t i = 0; i < op.len; ++i) {
      if (v[i].iov_len) return false;
    }
    return true;
  }
  return op.len == 0;
}

long real_read(const IoOp& op) {
  if (op.kind == IoOp::kReadv) {
    auto* v = static_cast<const iovec*>(op.addr);
    return sys(op.off == kCurrentPosition
                   ? real::readv(op.fd, v, static_cast<int>(op.len))
                   : real::preadv64(op.fd, v, static_cast<int>(op.len), static_cast<off64_t>(op.off)));
  }
  return sys(op.off == kCurrentPosition ? real::read(op.fd, op.addr, op.len)
                                        : real::pread64(op.fd, op.addr, op.len, static_cast<off64_t>(op.off)));
}

// read, pread, readv, preadv.
long read_like(IoOp op) {
  Fiber* f = fiber_for_call();
  if (!f || (op.kind == IoOp::kReadv && (static_cast<int>(op.len) < 0 || op.len > IOV_MAX))) return real_read(op);
  fds::Info info = fds::lookup(op.fd);
  if (!info.valid || info.nonblock || asks_nothing(op)) return real_read(op);
  if (info.socket && op.kind == IoOp::kRead) {
    op.kind = IoOp::kRecv;  // read() on a socket is recv(0)
    op.flags = 0;
  }
  return out(blocking(f, info, op, Dir::kIn));
}

// Writes to pipes and character devices are left to the kernel: io_uring
// would raise their SIGPIPE on the wrong thread; if such a write blocks for
// long, the monitor hands the worker off.
bool writes_through_engine(const fds::Info& info) {
  return info.valid && !info.nonblock && (info.kind == fds::Kind::kSocket || info.kind == fds::Kind::kRegular);
}

long write_one(int fd, const void* buf, size_t n, uint64_t off) {
  Fiber* f = fiber_for_call();
  fds::Info info;
  if (f) info = fds::lookup(fd);
  if (!f || !writes_through_engine(info)) {
    return sys(off == kCurrentPosition ? real::write(fd, buf, n)
                                       : real::pwrite64(fd, buf, n, static_cast<off64_t>(off)));
  }
  if (info.kind == fds::Kind::kSocket) return out(write_all(f, info, fd, buf, n, 0, true));
  IoOp op{};
  op.kind = IoOp::kWrite;
  op.fd = fd;
  op.addr = const_cast<void*>(buf);
  op.len = n;
  op.off = off;
  return out(blocking(f, info, op, Dir::kOut));
}

long write_vec(int fd, const iovec* v, int n, uint64_t off) {
  Fiber* f = fiber_for_call();
  fds::Info info;
  if (f && n >= 0 && n <= IOV_MAX) info = fds::lookup(fd);
  if (!f || !writes_through_engine(info)) {
    return sys(off == kCurrentPosition ? real::writev(fd, v, n)
                                       : real::pwritev64(fd, v, n, static_cast<off64_t>(off)));
  }
  IoOp op{};
  op.kind = IoOp::kWritev;
  op.fd = fd;
  op.addr = const_cast<iovec*>(v);
  op.len = static_cast<uint64_t>(n);
  op.off = off;
  long r = blocking(f, info, op, Dir::kOut);
  if (info.kind != fds::Kind::kSocket || r < 0) {
    if (r == -EPIPE) raise_sigpipe();
    return out(r);
  }
  // A blocking socket write sends everything: finish the rest piece by piece.
  return write_rest(f, info, fd, v, static_cast<size_t>(n), static_cast<size_t>(r), 0);
}

// The fiber if this socket call should wait in the engine (and *info).
Fiber* socket_candidate(int fd, int msg_flags, fds::Info* info) {
  Fiber* f = fiber_for_call();
  if (!f || (msg_flags & MSG_DONTWAIT)) return nullptr;
  *info = fds::lookup(fd);
  if (!info->valid || info->nonblock) return nullptr;
  return f;
}

// The same for a receive. MSG_ERRQUEUE and MSG_OOB never wait in the kernel
// (an empty error queue, or urgent data not come yet, is EAGAIN at once),
// and their readiness is not POLLIN: waited for, it may never come.
Fiber* recv_candidate(int fd, int msg_flags, fds::Info* info) {
  if (msg_flags & (MSG_ERRQUEUE | MSG_OOB)) return nullptr;
  return socket_candidate(fd, msg_flags, info);
}

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76  // Linux 6.5
#endif

// How a receive with MSG_WAITALL is carried out (receive_plan).
enum class Receive : uint8_t {
  kEngine,       // one operation; the engines continue a stream's MSG_WAITALL
  kKernel,       // the kernel's blocking call (the worker handed off first)
  kPieces,       // recv_msg_all; control data does not end it (TCP and the like)
  kPiecesUnix,   // recv_msg_all; control data ends it (a unix stream's descriptors)
};

// A recvmsg or sendmsg operation on `m` for the engine.
IoOp msg_op(IoOp::Kind kind, int fd, msghdr* m, int flags) {
  IoOp op{};
  op.kind = kind;
  op.fd = fd;
  op.addr = m;
  op.flags = static_cast<uint32_t>(flags);
  return op;
}

// MSG_WAITALL as the kernel reads it, asked of the socket only for calls
// with the flag. Datagram and sequenced-packet sockets return one message
// and ignore it: it is dropped (the engines continue a short receive that
// carries it, io_uring's retry covers SOCK_SEQPACKET too, and either would
// read on into the next record). On a stream: MSG_PEEK|MSG_WAITALL copies
// from the queue's start each time and waits by each family's rules, and a
// unix stream that passes credentials (SO_PASSCRED, SO_PASSSEC,
// SO_PASSPIDFD) stops where the writer changes, which a piece cannot see
// before it has read the next writer's data: both are the kernel's call.
// A recvmsg (msghdr: with control data to keep) goes in pieces, the rest
// of a recv to the engine.
Receive receive_plan(int fd, int* flags, bool msghdr_call) {
  if (!(*flags & MSG_WAITALL)) return Receive::kEngine;
  int type = sock_int(fd, SOL_SOCKET, SO_TYPE);
  if (type < 0) return Receive::kEngine;  // the call itself will say what is wrong
  if (type != SOCK_STREAM) {
    *flags &= ~MSG_WAITALL;
    return Receive::kEngine;
  }
  if (*flags & MSG_PEEK) return Receive::kKernel;
  bool unix_stream = sock_int(fd, SOL_SOCKET, SO_DOMAIN) == AF_UNIX;
  if (unix_stream && (sock_int(fd, SOL_SOCKET, SO_PASSCRED) > 0 || sock_int(fd, SOL_SOCKET, SO_PASSSEC) > 0 ||
                      sock_int(fd, SOL_SOCKET, SO_PASSPIDFD) > 0)) {
    return Receive::kKernel;
  }
  if (!msghdr_call) return Receive::kEngine;
  return unix_stream ? Receive::kPiecesUnix : Receive::kPieces;
}

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
      fd_forget(fd);
    }
  }
}

// recvmsg with MSG_WAITALL on a stream socket, as the kernel's blocking
// call: the pieces are received into the rest of the iovecs until they are
// full, end of file, an error, SO_RCVTIMEO for the whole call, or a signal
// (each ending it with the count so far). The first piece is the program's
// own msghdr (the kernel checks it; the address is that piece's); the
// program's control buffer goes with every later one. On a unix stream a
// piece that brings control data (or has it cut) ends the call, as
// unix_stream_read_generic stops after passed descriptors; elsewhere (TCP's
// TCP_INQ, timestamps) the newest control data is kept and the call goes
// on. Done here rather than by the engines: io_uring's own continuation of
// a recvmsg loses a later piece's descriptors and returns the first piece
// alone.
long recv_msg_all(Fiber* f, const fds::Info& info, int fd, msghdr* msg, int flags, bool unix_stream) {
  const size_t ctl_len = msg->msg_controllen;
  int64_t timeout = info.rcvtimeo_ns;
  Deadline deadline = timeout > 0 ? Deadline::after_ns(timeout) : Deadline::never();
  uint64_t done = 0, total = 0;
  iovec rest[64];
  msghdr piece{};
  for (;;) {
    msghdr* m = msg;
    if (done) {
      // The rest, at most 64 iovecs a piece; no address.
      piece = msghdr{};
      piece.msg_iov = rest;
      int k = advance_iov(msg->msg_iov, static_cast<int>(msg->msg_iovlen), done, rest, 64);
      piece.msg_iovlen = static_cast<size_t>(k);
      piece.msg_control = msg->msg_control;
      piece.msg_controllen = ctl_len;
      m = &piece;
    }
    IoOp op = msg_op(IoOp::kRecvmsg, fd, m, flags & ~MSG_WAITALL);
    int64_t left = 0;
    if (timeout > 0) {
      left = deadline.remaining_ns();
      if (left <= 0) return done ? static_cast<long>(done) : -EAGAIN;
    }
    long r = blocking(f, info, op, Dir::kIn, left, done == 0);
    if (r < 0) return done ? static_cast<long>(done) : r;
    if (!done) {
      total = iov_total(msg->msg_iov, msg->msg_iovlen);
    } else {
      if (piece.msg_controllen > 0) msg->msg_controllen = piece.msg_controllen;
      msg->msg_flags |= piece.msg_flags;
    }
    done += static_cast<uint64_t>(r);
    bool control = msg->msg_controllen > 0 || (msg->msg_flags & MSG_CTRUNC);
    if (r == 0 || done >= total || (unix_stream && control)) return static_cast<long>(done);
  }
}

long recv_msg(Fiber* f, const fds::Info& info, int fd, msghdr* msg, int flags) {
  long r = 0;
  // No msghdr: the kernel's EFAULT (recv_msg_all reads msg_controllen first).
  Receive plan = msg ? receive_plan(fd, &flags, true) : Receive::kEngine;
  switch (plan) {
    case Receive::kKernel:
      sched::begin_blocking(f);
      r = sys(real::recvmsg(fd, msg, flags));
      break;
    case Receive::kPieces:
    case Receive::kPiecesUnix:
      r = recv_msg_all(f, info, fd, msg, flags, plan == Receive::kPiecesUnix);
      break;
    case Receive::kEngine:
      r = blocking(f, info, msg_op(IoOp::kRecvmsg, fd, msg, flags), Dir::kIn);
      break;
  }
  if (r >= 0) forget_passed_fds(msg);
  return out(r);
}

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
  long r = blocking(f, info, op, Dir::kOut);
  if (r < 0) return r == -EAGAIN ? -EALREADY : r;
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return -errno;
  if (err) return -err;
  sockaddr_storage peer;
  len = sizeof peer;
  return ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0 ? 0 : -ECONNABORTED;
}

// One openat in the engine. Interrupted and restarted like any blocking
// call: the kernel restarts an open interrupted while waiting for a FIFO's
// other end under SA_RESTART, and open is a cancellation point.
long engine_openat(Fiber* f, int dirfd, const char* path, int flags, mode_t mode, bool blocking_async) {
  IoOp op{};
  op.kind = IoOp::kOpenat;
  op.fd = dirfd;
  op.addr = const_cast<char*>(path);
  op.flags = static_cast<uint32_t>(flags);
  op.len = mode;
  op.blocking_async = blocking_async;
  return blocking(f, fds::Info{}, op, Dir::kIn);
}

// open(2) for a fiber. Network file systems can take their time: the open
// waits in the engine, not on the carrier. io_uring's inline attempt adds
// O_NONBLOCK, which changes what opening a FIFO does (no wait for the other
// end; ENXIO for a writer without a reader), so FIFOs are opened again in
// io_uring's worker pool, where the open blocks as the real call does:
//  - a write-only open that got ENXIO (a FIFO without a reader, or a socket
//    or device file, which fail the same way again);
//  - a read-only open that turned out to be a FIFO: its descriptor is kept
//    open meanwhile - a reader waiting in open(2) counts as a reader, so
//    writers proceed as natively - and the waited-for open takes its number
//    (dup3), so the program sees the lowest free fd as the kernel gives it.
// O_RDWR never waits on a FIFO, and O_NONBLOCK is what the program asked for.
// *kind: what the file is when the FIFO check had to look (read-only opens),
// else left alone, so that openat() can record the new fd without the fd
// table asking the kernel again on first use.
long open_in_engine(Fiber* f, int dirfd, const char* path, int flags, mode_t mode, FdKind* kind) {
  long r = engine_openat(f, dirfd, path, flags, mode, false);
  if ((flags & (O_NONBLOCK | O_PATH)) != 0) return r;
  int acc = flags & O_ACCMODE;
  if (acc == O_WRONLY && r == -ENXIO) return engine_openat(f, dirfd, path, flags, mode, true);
  if (acc != O_RDONLY || r < 0) return r;
  int fd = static_cast<int>(r);
  struct stat st;
  if (raw_syscall(SYS_fstat, fd, reinterpret_cast<long>(&st)) != 0) return r;
  if (!S_ISFIFO(st.st_mode)) {
    *kind = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ? FdKind::kRegular : FdKind::kOther;
    return r;
  }
  // Closes the first descriptor on every way out but success, a
  // cancellation's unwind included.
  struct Holder {
    int fd;
    ~Holder() {
      if (fd >= 0) raw_syscall(SYS_close, fd);
    }
  } first{fd};
  long waited = engine_openat(f, dirfd, path, flags, mode, true);
  if (waited < 0) return waited;
  long d = raw_syscall(SYS_dup3, waited, fd, (flags & O_CLOEXEC) ? O_CLOEXEC : 0);
  raw_syscall(SYS_close, waited);
  if (d < 0) return d;
  first.fd = -1;
  *kind = FdKind::kPipe;
  return fd;
}

long engine_splice(Fiber* f, const fds::Info& out_info, int in, int64_t off_in, int out, int64_t off_out, size_t n,
                   unsigned flags, int64_t timeout_ns = -1) {
  IoOp op{};
  op.kind = IoOp::kSplice;
  op.fd_in = in;
  op.off_in = off_in;
  op.fd = out;
  op.off = static_cast<uint64_t>(off_out);
  op.len = n;
  op.flags = flags;
  return blocking(f, out_info, op, Dir::kOut, timeout_ns);
}

}  // namespace

// ---- The public functions -------------------------------------------------

long read(int fd, void* buf, size_t n) {
  IoOp op{};
  op.kind = IoOp::kRead;
  op.fd = fd;
  op.addr = buf;
  op.len = n;
  op.off = kCurrentPosition;
  return read_like(op);
}

long pread(int fd, void* buf, size_t n, off64_t off) {
  if (off < 0) return sys(real::pread64(fd, buf, n, off));  // EINVAL from the kernel
  IoOp op{};
  op.kind = IoOp::kRead;
  op.fd = fd;
  op.addr = buf;
  op.len = n;
  op.off = static_cast<uint64_t>(off);
  return read_like(op);
}

long readv(int fd, const iovec* v, int n) {
  IoOp op{};
  op.kind = IoOp::kReadv;
  op.fd = fd;
  op.addr = const_cast<iovec*>(v);
  op.len = static_cast<uint64_t>(n);
  op.off = kCurrentPosition;
  return read_like(op);
}

long preadv(int fd, const iovec* v, int n, off64_t off) {
  if (off < 0) return sys(real::preadv64(fd, v, n, off));
  IoOp op{};
  op.kind = IoOp::kReadv;
  op.fd = fd;
  op.addr = const_cast<iovec*>(v);
  op.len = static_cast<uint64_t>(n);
  op.off = static_cast<uint64_t>(off);
  return read_like(op);
}

long write(int fd, const void* buf, size_t n) { return write_one(fd, buf, n, kCurrentPosition); }

long pwrite(int fd, const void* buf, size_t n, off64_t off) {
  if (off < 0) return sys(real::pwrite64(fd, buf, n, off));
  return write_one(fd, buf, n, static_cast<uint64_t>(off));
}

long writev(int fd, const iovec* v, int n) { return write_vec(fd, v, n, kCurrentPosition); }

long pwritev(int fd, const iovec* v, int n, off64_t off) {
  if (off < 0) return sys(real::pwritev64(fd, v, n, off));
  return write_vec(fd, v, n, static_cast<uint64_t>(off));
}

long recv(int fd, void* buf, size_t n, int flags) {
  fds::Info info;
  Fiber* f = recv_candidate(fd, flags, &info);
  if (!f || !info.socket) return sys(real::recv(fd, buf, n, flags));
  if (receive_plan(fd, &flags, false) == Receive::kKernel) {
    sched::begin_blocking(f);
    return sys(real::recv(fd, buf, n, flags));
  }
  IoOp op{};
  op.kind = IoOp::kRecv;
  op.fd = fd;
  op.addr = buf;
  op.len = n;
  op.flags = static_cast<uint32_t>(flags);
  return out(blocking(f, info, op, Dir::kIn));
}

long recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* len) {
  if (!addr) return recv(fd, buf, n, flags);
  fds::Info info;
  Fiber* f = recv_candidate(fd, flags, &info);
  if (!f || !info.socket || !len) return sys(real::recvfrom(fd, buf, n, flags, addr, len));
  iovec iov{buf, n};
  msghdr msg{};
  msg.msg_name = addr;
  msg.msg_namelen = *len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  long r = recv_msg(f, info, fd, &msg, flags);
  if (r >= 0) *len = msg.msg_namelen;
  return r;
}

long recvmsg(int fd, msghdr* msg, int flags) {
  fds::Info info;
  Fiber* f = recv_candidate(fd, flags, &info);
  if (!f || !info.socket) {
    long r = sys(real::recvmsg(fd, msg, flags));
    if (r >= 0) forget_passed_fds(msg);
    return r;
  }
  return recv_msg(f, info, fd, msg, flags);
}

long send(int fd, const void* buf, size_t n, int flags) {
  fds::Info info;
  Fiber* f = socket_candidate(fd, flags, &info);
  if (!f || !info.socket) return sys(real::send(fd, buf, n, flags));
  return out(write_all(f, info, fd, buf, n, flags, true));
}

long sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len) {
  if (!addr) return send(fd, buf, n, flags);
  fds::Info info;
  Fiber* f = socket_candidate(fd, flags, &info);
  if (!f || !info.socket) return sys(real::sendto(fd, buf, n, flags, addr, len));
  // Datagrams with an address: one message, sent whole or not at all.
  iovec iov{const_cast<void*>(buf), n};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(addr);
  msg.msg_namelen = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  long r = blocking(f, info, msg_op(IoOp::kSendmsg, fd, &msg, flags | MSG_NOSIGNAL), Dir::kOut);
  if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) raise_sigpipe();
  return out(r);
}

long sendmsg(int fd, const msghdr* msg, int flags) {
  fds::Info info;
  Fiber* f = socket_candidate(fd, flags, &info);
  if (!f || !info.socket) return sys(real::sendmsg(fd, msg, flags));
  long r = send_now(f, fd, msg, flags);
  if (r == -EAGAIN) {
    r = blocking(f, info, msg_op(IoOp::kSendmsg, fd, const_cast<msghdr*>(msg), flags | MSG_NOSIGNAL), Dir::kOut);
  }
  if (r == -EPIPE && !(flags & MSG_NOSIGNAL)) raise_sigpipe();
  if (r <= 0 || msg->msg_iovlen == 0) return out(r);
  // A stream socket's blocking sendmsg sends every byte: finish the rest
  // (without the control data, which went with the first part).
  return write_rest(f, info, fd, msg->msg_iov, msg->msg_iovlen, static_cast<size_t>(r), flags);
}

// The program's timespec through the kernel (EFAULT, not a crash, for a
// bad pointer): process_vm_readv/writev on this process, or a plain copy
// where a seccomp profile refuses them.
long copy_timespec(timespec* to, const timespec* from, bool to_user) {
  iovec local{to_user ? const_cast<timespec*>(from) : to, sizeof(timespec)};
  iovec remote{to_user ? to : const_cast<timespec*>(from), sizeof(timespec)};
  long pid = raw_syscall(SYS_getpid);
  long r = raw_syscall(to_user ? SYS_process_vm_writev : SYS_process_vm_readv, pid, reinterpret_cast<long>(&local), 1,
                       reinterpret_cast<long>(&remote), 1, 0);
  if (r == static_cast<long>(sizeof(timespec))) return 0;
  if (r == -EFAULT) return -EFAULT;
  *to = *from;
  return 0;
}

// recvmmsg on a blocking socket, as the kernel's loop of receives: every
// datagram already queued is taken by one non-blocking call; when none is,
// one receive waits in the engine (SO_RCVTIMEO per datagram, as in the
// kernel; a readiness poll would not do: a socket can poll readable, e.g.
// with an error queued, while a receive still has nothing). It returns once
// vlen have come, after the first with MSG_WAITFORONE, after a datagram
// with MSG_OOB, or when `timeout` has passed after a datagram (the kernel
// checks it only then, so it never bounds the wait for the first one; a
// zero timeout takes one), writing back the time left, as the kernel does.
// A wait cut by a handler, SO_RCVTIMEO or an error after some datagrams
// returns their count; such an error is then not kept for the next call as
// the kernel keeps it (sk_err). MSG_WAITALL as for recv (receive_plan).
long recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout) {
  fds::Info info;
  Fiber* f = recv_candidate(fd, flags, &info);
  if (!f || !info.socket || vlen == 0) return sys(real::recvmmsg(fd, vec, vlen, flags, timeout));
  if (receive_plan(fd, &flags, false) == Receive::kKernel || (flags & MSG_WAITALL)) {
    sched::begin_blocking(f);
    return out(sys(real::recvmmsg(fd, vec, vlen, flags, timeout)));
  }
  Deadline end = Deadline::never();
  if (timeout) {
    timespec rel;
    if (copy_timespec(&rel, timeout, false) != 0) return -EFAULT;
    if (bad_timespec(&rel)) return -EINVAL;
    end = Deadline::after(rel);
  }
  cancel::point();  // recvmmsg(2) is a cancellation point even when it does not block
  unsigned int got = 0;
  long err = 0;
  while (got < vlen) {
    // A timeout already passed takes one datagram (the kernel's check
    // after each); otherwise all that are queued.
    unsigned int want = timeout && end.passed() ? 1 : vlen - got;
    long r = sys(real::recvmmsg(fd, vec + got, want, flags | MSG_DONTWAIT, nullptr));
    if (r == -EAGAIN && !(got && (flags & MSG_WAITFORONE))) {
      r = blocking(f, info, msg_op(IoOp::kRecvmsg, fd, &vec[got].msg_hdr, flags & ~MSG_WAITFORONE), Dir::kIn, -1,
                   got == 0);
      if (r >= 0) {
        vec[got].msg_len = static_cast<unsigned int>(r);
        r = 1;
      }
    }
    if (r <= 0) {
      err = r;
      break;
    }
    got += static_cast<unsigned int>(r);
    if ((flags & MSG_WAITFORONE) || (vec[got - 1].msg_hdr.msg_flags & MSG_OOB) || (timeout && end.passed())) break;
  }
  if (got == 0) return out(err);
  for (unsigned int i = 0; i < got; ++i) forget_passed_fds(&vec[i].msg_hdr);
  if (timeout) {
    timespec left = end.left();
    if (copy_timespec(timeout, &left, true) != 0) return out(-EFAULT);
  }
  return out(got);
}

// sendmmsg on a blocking socket: the messages that fit now go in one
// non-blocking call (counted as a direct send, send_now); when none does,
// one send waits in the engine (SO_SNDTIMEO per message). A stream message
// cut short is finished as a blocking sendmsg finishes it. Returns the
// count sent, or the error when none was; EPIPE raises SIGPIPE unless
// MSG_NOSIGNAL, as each of the kernel's sends does.
long sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) {
  fds::Info info;
  Fiber* f = socket_candidate(fd, flags, &info);
  if (!f || !info.socket || vlen == 0) return sys(real::sendmmsg(fd, vec, vlen, flags));
  if (vlen > UIO_MAXIOV) vlen = UIO_MAXIOV;
  unsigned int sent = 0;
  long err = 0;
  while (sent < vlen) {
    long r = direct_send(f, [&](int now) {
      return raw_syscall(SYS_sendmmsg, fd, reinterpret_cast<long>(vec + sent), vlen - sent, flags | now);
    });
    if (r == -EAGAIN) {
      r = blocking(f, info, msg_op(IoOp::kSendmsg, fd, &vec[sent].msg_hdr, flags | MSG_NOSIGNAL), Dir::kOut, -1,
                   sent == 0);
      if (r >= 0) {
        vec[sent].msg_len = static_cast<unsigned int>(r);
        r = 1;
      }
    }
    if (r <= 0) {
      err = r;
      break;
    }
    sent += static_cast<unsigned int>(r);
    msghdr& last = vec[sent - 1].msg_hdr;
    uint64_t total = iov_total(last.msg_iov, last.msg_iovlen);
    if (vec[sent - 1].msg_len < total) {
      vec[sent - 1].msg_len =
          static_cast<unsigned int>(write_rest(f, info, fd, last.msg_iov, last.msg_iovlen, vec[sent - 1].msg_len, flags));
      if (vec[sent - 1].msg_len < total) break;  // cut short: timeout, signal or error
    }
  }
  if (err == -EPIPE && !(flags & MSG_NOSIGNAL)) raise_sigpipe();
  return out(sent ? static_cast<long>(sent) : err);
}

long accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  fds::Info info;
  Fiber* f = socket_candidate(fd, 0, &info);
  long r;
  if (!f) {
    r = sys(real::accept4(fd, addr, len, flags));
  } else {
    IoOp op{};
    op.kind = IoOp::kAccept;
    op.fd = fd;
    op.addr = addr;
    op.off = reinterpret_cast<uint64_t>(len);
    op.flags = static_cast<uint32_t>(flags);
    op.urgent = true;  // new connections are not kept waiting a full pass (runtime/fiber.h)
    r = out(blocking(f, info, op, Dir::kIn));
    // The connection is still queued: taken again after the engines gave
    // their idle descriptors back.
    if (r == -EMFILE && engines_release_idle()) r = out(blocking(f, info, op, Dir::kIn));
  }
  if (r >= 0) fd_created(static_cast<int>(r), flags & SOCK_NONBLOCK, FdKind::kSocket);
  return r;
}

long connect(int fd, const sockaddr* addr, socklen_t len) {
  fds::Info info;
  Fiber* f = socket_candidate(fd, 0, &info);
  if (!f) return sys(real::connect(fd, addr, len));
  IoOp op{};
  op.kind = IoOp::kConnect;
  op.fd = fd;
  op.addr = const_cast<sockaddr*>(addr);
  op.len = len;
  long r = blocking(f, info, op, Dir::kOut);
  if (r == -EAGAIN && info.sndtimeo_ns > 0) r = -EINPROGRESS;  // Linux's answer to a timed-out connect
  if (r == -EALREADY) r = wait_connected(f, info, fd);
  return out(r);
}

long openat(int dirfd, const char* path, int flags, mode_t mode) {
  Fiber* f = fiber_for_call();
  // kSocket: not known (open never makes a socket).
  FdKind kind = FdKind::kSocket;
  auto open_once = [&] {
    kind = FdKind::kSocket;
    return f ? open_in_engine(f, dirfd, path, flags, mode, &kind)
             : raw_syscall(SYS_openat, dirfd, reinterpret_cast<long>(path), flags, mode);
  };
  long r = open_once();
  if (r == -EMFILE && engines_release_idle()) r = open_once();
  if (r < 0) return r;
  // A read-only open already looked at the file: a new open file
  // description, O_NONBLOCK as the program asked (the engine's own
  // O_NONBLOCK is cleared again). Otherwise learnt on first use.
  if (kind != FdKind::kSocket) fd_created(static_cast<int>(r), (flags & O_NONBLOCK) != 0, kind);
  else fd_forget(static_cast<int>(r));
  return r;
}

// fsync/fdatasync through the engine (the disk waits, not the carrier).
// Not interrupted by signals, as the kernel's are not.
long fsync(int fd, bool datasync) {
  Fiber* f = fiber_for_call();
  fds::Info info;
  if (f) info = fds::lookup(fd);
  if (!f || !info.valid) return sys(datasync ? real::fdatasync(fd) : real::fsync(fd));
  IoOp op{};
  op.kind = IoOp::kFsync;
  op.fd = fd;
  op.flags = datasync ? 1 : 0;  // IORING_FSYNC_DATASYNC
  bool interrupted = false;
  long r = wait(f, op, 0, false, &interrupted);
  return r < 0 ? r : 0;
}

long close(int fd) {
  // The library's own descriptors are not the program's to close: a plain
  // run has no such fd (runtime/own_fds.h).
  if (own_fds::is_own(fd)) return -EBADF;
  fd_closing(fd);
  return sys(real::close(fd));
}

long close_range(unsigned first, unsigned last, unsigned flags) {
  // Only the kernel's own checks for a bad range or flags; marking
  // close-on-exec closes nothing (and the library's are marked already).
  if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) || (flags & CLOSE_RANGE_CLOEXEC)) {
    return raw_syscall(SYS_close_range, first, last, flags);
  }
  fd_forget_range(first, last);
  return own_fds::close_range_except_own(first, last, flags);
}

bool closefrom(int lowfd) {
  unsigned first = lowfd < 0 ? 0U : static_cast<unsigned>(lowfd);  // glibc's closefrom takes a negative as 0
  fd_forget_range(first, ~0U);
  return own_fds::close_range_except_own(first, ~0U, 0) != -ENOSYS;
}

// splice() runs as one engine operation (io_uring executes a splice that
// would block in its own kernel workers).
long splice(int in, off64_t* off_in, int out_fd, off64_t* off_out, size_t len, unsigned flags) {
  Fiber* f = fiber_for_call();
  if (!f || (flags & SPLICE_F_NONBLOCK) || len > 0x7fffffff) {
    return sys(real::splice(in, off_in, out_fd, off_out, len, flags));
  }
  fds::Info ii = fds::lookup(in), oi = fds::lookup(out_fd);
  if (!ii.valid || !oi.valid || ii.nonblock || oi.nonblock) {
    return sys(real::splice(in, off_in, out_fd, off_out, len, flags));
  }
  long r = engine_splice(f, oi, in, off_in ? *off_in : -1, out_fd, off_out ? *off_out : -1, len, flags);
  if (r > 0) {
    if (off_in) *off_in += r;
    if (off_out) *off_out += r;
  }
  return out(r);
}

// sendfile() to a blocking socket or pipe becomes two splices through a
// pipe of the fiber's own - file into the pipe, pipe into the socket - so
// neither step holds the carrier. The offset argument is honoured exactly as
// sendfile does: with a pointer, the file position is left alone and
// *offset advanced; without, the position moves. SO_SNDTIMEO and signals
// cut it short with the partial count, as Linux does.
long sendfile(int out_fd, int in, off64_t* offset, size_t count) {
  Fiber* f = fiber_for_call();
  if (!f) return sys(real::sendfile64(out_fd, in, offset, count));
  fds::Info oi = fds::lookup(out_fd), ii = fds::lookup(in);
  if (!oi.valid || !ii.valid || oi.nonblock || oi.kind == fds::Kind::kRegular || ii.kind != fds::Kind::kRegular) {
    return sys(real::sendfile64(out_fd, in, offset, count));
  }
  int pipefd[2];
  if (raw_syscall(SYS_pipe2, reinterpret_cast<long>(pipefd), O_CLOEXEC) != 0) {
    return sys(real::sendfile64(out_fd, in, offset, count));
  }
  fds::Info pipe_info = fds::lookup(pipefd[0]);
  size_t done = 0;
  long err = 0;
  int64_t pos = offset ? *offset : -1;
  // SO_SNDTIMEO bounds the whole call.
  int64_t timeout = oi.socket ? oi.sndtimeo_ns : 0;
  Deadline deadline = timeout > 0 ? Deadline::after_ns(timeout) : Deadline::never();
  while (done < count) {
    size_t chunk = count - done < (1u << 16) ? count - done : (1u << 16);
    long in_pipe = engine_splice(f, pipe_info, in, pos, pipefd[1], -1, chunk, SPLICE_F_MOVE);
    if (in_pipe <= 0) {
      err = in_pipe;
      break;
    }
    if (pos >= 0) pos += in_pipe;
    long moved = 0;
    while (moved < in_pipe) {
      int64_t left = 0;
      if (timeout > 0 && (left = deadline.remaining_ns()) <= 0) left = -1;
      long w = left < 0 ? -EAGAIN
                        : engine_splice(f, oi, pipefd[0], -1, out_fd, -1, static_cast<size_t>(in_pipe - moved),
                                        SPLICE_F_MOVE, left);
      if (w <= 0) {
        err = w ? w : -EIO;
        break;
      }
      moved += w;
    }
    done += static_cast<size_t>(moved);
    if (moved < in_pipe) {
      // The rest read from the file did not go out: put the file back where
      // the bytes sent end, as sendfile leaves it.
      if (!offset) ::lseek64(in, -(in_pipe - moved), SEEK_CUR);
      else pos -= in_pipe - moved;
      break;
    }
    if (static_cast<size_t>(in_pipe) < chunk) break;  // end of file
  }
  // What lookup learnt about the pipe, and the engine's registration of it
  // (cached by the epoll engine), go with it: the numbers are free for the
  // program's next descriptors, and a registration left behind would keep
  // this pipe open and answer for the next file given the number.
  fd_forget(pipefd[0]);
  raw_syscall(SYS_close, pipefd[0]);
  fd_forget(pipefd[1]);
  raw_syscall(SYS_close, pipefd[1]);
  if (offset) *offset = pos >= 0 ? pos : *offset;
  if (done == 0 && err < 0) {
    if (err == -EPIPE) raise_sigpipe();
    return out(err);
  }
  return static_cast<long>(done);
}

}  // namespace unblock::rt
