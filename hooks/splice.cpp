// sendfile and splice, where a descriptor would block.
//
// splice() runs as IORING_OP_SPLICE (io_uring executes a splice that would
// block in its own kernel workers). sendfile() to a blocking socket or pipe
// becomes two splices through a pipe of the fiber's own - file into the pipe,
// pipe into the socket - so neither step holds the carrier. The offset
// argument is honoured exactly as sendfile does: with a pointer, the file
// position is left alone and *offset advanced; without, the position moves.
// SO_SNDTIMEO and signals cut it short with the partial count, as Linux does.
#include <fcntl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "hooks/fault.h"
#include "hooks/io_common.h"
#include "shim/raw_syscall.h"

using namespace unblock;
using hooks::Dir;
using hooks::finish;

namespace {

long splice_once(Fiber* f, const fds::Info& out_info, int in, int64_t off_in, int out, int64_t off_out, size_t n,
                 unsigned flags) {
  IoOp op{};
  op.kind = IoOp::kSplice;
  op.fd_in = in;
  op.off_in = off_in;
  op.fd = out;
  op.off = static_cast<uint64_t>(off_out);
  op.len = n;
  op.flags = flags;
  return hooks::run_blocking(f, out_info, op, Dir::kOut);
}

}  // namespace

UNBLOCK_FAULTABLE ssize_t splice(int in, off64_t* off_in, int out, off64_t* off_out, size_t len, unsigned flags) {
  Fiber* f = hooks::fiber_for_call();
  if (!f || (flags & SPLICE_F_NONBLOCK) || len > 0x7fffffff) return real::splice(in, off_in, out, off_out, len, flags);
  fds::Info ii = fds::lookup(in), oi = fds::lookup(out);
  if (!ii.valid || !oi.valid || ii.nonblock || oi.nonblock) return real::splice(in, off_in, out, off_out, len, flags);
  long r = splice_once(f, oi, in, off_in ? *off_in : -1, out, off_out ? *off_out : -1, len, flags);
  if (r > 0) {
    if (off_in) *off_in += r;
    if (off_out) *off_out += r;
  }
  return finish(r);
}

UNBLOCK_FAULTABLE ssize_t sendfile64(int out, int in, off64_t* offset, size_t count) {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return real::sendfile64(out, in, offset, count);
  fds::Info oi = fds::lookup(out), ii = fds::lookup(in);
  if (!oi.valid || !ii.valid || oi.nonblock || oi.kind == fds::Kind::kRegular || ii.kind != fds::Kind::kRegular) {
    return real::sendfile64(out, in, offset, count);
  }
  int pipefd[2];
  if (raw_syscall(SYS_pipe2, reinterpret_cast<long>(pipefd), O_CLOEXEC) != 0) return real::sendfile64(out, in, offset, count);
  fds::Info pipe_info = fds::lookup(pipefd[0]);
  size_t done = 0;
  long err = 0;
  int64_t pos = offset ? *offset : -1;
  // SO_SNDTIMEO bounds the whole call.
  int64_t timeout = oi.socket ? oi.sndtimeo_ns : 0;
  Deadline deadline = timeout > 0 ? Deadline::after_ns(timeout) : Deadline::never();
  while (done < count) {
    size_t chunk = count - done < (1u << 16) ? count - done : (1u << 16);
    long in_pipe = splice_once(f, pipe_info, in, pos, pipefd[1], -1, chunk, SPLICE_F_MOVE);
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
                        : hooks::run_blocking(f, oi, [&] {
                            IoOp op{};
                            op.kind = IoOp::kSplice;
                            op.fd_in = pipefd[0];
                            op.fd = out;
                            op.off = static_cast<uint64_t>(-1);
                            op.len = static_cast<uint64_t>(in_pipe - moved);
                            op.flags = SPLICE_F_MOVE;
                            return op;
                          }(), Dir::kOut, left);
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
      if (!offset) lseek64(in, -(in_pipe - moved), SEEK_CUR);
      else pos -= in_pipe - moved;
      break;
    }
    if (static_cast<size_t>(in_pipe) < chunk) break;  // end of file
  }
  raw_syscall(SYS_close, pipefd[0]);
  raw_syscall(SYS_close, pipefd[1]);
  if (offset) *offset = pos >= 0 ? pos : *offset;
  if (done == 0 && err < 0) {
    if (err == -EPIPE) hooks::raise_sigpipe();
    return finish(err);
  }
  return static_cast<ssize_t>(done);
}

UNBLOCK_FAULTABLE ssize_t sendfile(int out, int in, off_t* offset, size_t count) {
  return sendfile64(out, in, reinterpret_cast<off64_t*>(offset), count);
}
