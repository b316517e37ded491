// The shape every blocking fd hook shares.
//
// A call goes to the ring only when it would block for real: the caller is
// a fiber of a running runtime, the fd is open and the program did not make
// it non-blocking (then the real call returns EAGAIN at once, as it should).
// Sockets take their SO_RCVTIMEO/SO_SNDTIMEO as a linked io_uring timeout.
// A signal handler for the fiber, or its cancellation request, cancels the
// operation; the hook then runs the handler (signals::run_pending), acts on
// the cancellation (cancel::point, which unwinds once the operation's
// completion arrived) and returns EINTR, or restarts if the
// handler had SA_RESTART and the call may be restarted (never for sockets
// with a timeout, as Linux). Writes to sockets and pipes send everything, as
// a blocking write does, unless a timeout or a signal cuts them short (then
// the partial count). io_uring is given MSG_NOSIGNAL and the library raises
// SIGPIPE itself when the program did not ask for MSG_NOSIGNAL.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include "hooks/hook.h"
#include "runtime/fdtable.h"
#include "runtime/io.h"

namespace unblock::hooks {

enum class Dir { kIn, kOut };

// Runs op until it completes, handling timeouts, signals and restarts.
// Returns the result or -errno (not yet in errno).
// timeout_ns < 0: the socket's own SO_RCVTIMEO/SO_SNDTIMEO.
long run_blocking(Fiber* f, const fds::Info& info, const IoOp& op, Dir dir, int64_t timeout_ns = -1);

// A send on a blocking socket tried at once, without waiting: the bytes the
// socket buffer takes now (maybe all), or -EAGAIN when it takes none (or the
// fiber used up its run of such sends: then it should wait its turn), or
// -errno. SIGPIPE is the caller's (the call gets MSG_NOSIGNAL).
long send_now(Fiber* f, int fd, const msghdr* msg, int msg_flags);
long send_now(Fiber* f, int fd, const void* buf, size_t len, int msg_flags);

// Sends all of [buf, buf+len) on a blocking socket/pipe with repeated ops
// (send on sockets, write elsewhere), stopping early only on timeout, signal
// or error with the partial count (or -errno if nothing was sent).
long write_all(Fiber* f, const fds::Info& info, int fd, const void* buf, size_t len, int msg_flags, bool socket_send);

// Raises SIGPIPE for the calling thread, as the kernel does on EPIPE.
void raise_sigpipe();

// errno-style return for a long result. A handler due for the caller runs
// first, as the kernel runs it on the way out of the system call (the
// operation is complete by then; see hooks::deliver_due).
inline ssize_t finish(long r) {
  deliver_due();
  if (r < 0) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

}  // namespace unblock::hooks
