#include "hooks/io_common.h"

#include <signal.h>
#include <sys/socket.h>

#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::hooks {

long run_blocking(Fiber* f, const fds::Info& info, const IoOp& op, Dir dir, int64_t timeout_ns) {
  int64_t timeout = timeout_ns;
  if (timeout < 0) timeout = !info.socket ? 0 : dir == Dir::kIn ? info.rcvtimeo_ns : info.sndtimeo_ns;
  // Regular files are not interrupted by signals (the kernel's reads of
  // them are not either).
  bool interruptible = info.kind != fds::Kind::kRegular;
  for (;;) {
    bool interrupted = false;
    int r = io::run(f, op, timeout, interruptible, &interrupted);
    if (interrupted) {
      bool restart = signals::run_pending(f);
      cancel::point();  // the operation has completed: safe to unwind
      if (r == -EINTR) {
        if (restart && timeout == 0) continue;
        return -EINTR;
      }
    }
    if (r == -ECANCELED && timeout > 0) return -EAGAIN;  // SO_*TIMEO expired
    return r;
  }
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

// Most sends on a busy connection find room in the socket buffer. Through
// the ring such a send costs a submission, a completion, and a park and a
// resume of the fiber (a pass through the worker's run queue); sent directly
// and without waiting it costs one system call, and the fiber goes on at
// once. Measured on the 64-byte echo at 1,000 connections: +14% msg/s, +8% at
// 10,000 (docs/benchmarks/README.md). Only a send that would wait goes to the
// ring.
//
// A fiber whose sends keep succeeding would never switch, and the others on
// its worker would wait for it: after kDirectSendRun direct sends without a
// switch the next send takes the ring, which queues the fiber behind them.
constexpr uint8_t kDirectSendRun = 16;

namespace {

// send(flags) is the system call, given the flags that make it not wait.
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

}  // namespace

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
        op.off = static_cast<uint64_t>(-1);
      }
      int64_t left = 0;
      if (timeout > 0) {
        left = deadline.remaining_ns();
        if (left <= 0) return done ? static_cast<long>(done) : -EAGAIN;
      }
      r = run_blocking(f, info, op, Dir::kOut, left);
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

}  // namespace unblock::hooks
