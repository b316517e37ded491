#include "hooks/io_common.h"

#include <signal.h>
#include <sys/socket.h>

#include "runtime/cancel.h"
#include "runtime/signals.h"

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

void raise_sigpipe() { pthread_kill(pthread_self(), SIGPIPE); }

long write_all(Fiber* f, const fds::Info& info, int fd, const void* buf, size_t len, int msg_flags, bool socket_send) {
  size_t done = 0;
  const char* p = static_cast<const char*>(buf);
  // SO_SNDTIMEO bounds the whole call, not each piece.
  int64_t timeout = info.socket ? info.sndtimeo_ns : 0;
  Deadline deadline = timeout > 0 ? Deadline::after_ns(timeout) : Deadline::never();
  do {
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
    long r = run_blocking(f, info, op, Dir::kOut, left);
    if (r < 0) {
      if (r == -EPIPE && socket_send && !(msg_flags & MSG_NOSIGNAL)) raise_sigpipe();
      return done ? static_cast<long>(done) : r;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  } while (done < len && (!socket_send || !(msg_flags & MSG_DONTWAIT)));
  return static_cast<long>(done);
}

}  // namespace unblock::hooks
