// File-descriptor I/O hooks: read/write and their vector, positioned, 64 and
// _FORTIFY_SOURCE forms; open/openat/creat and theirs; close, fsync,
// fdatasync; the calls that change what the runtime knows about an fd
// (fcntl, ioctl FIONBIO, dup2/dup3, pipe/pipe2, fclose).
//
// Regular files go through the ring too (io_uring runs buffered reads and
// writes in its own workers, so the carrier never sleeps on the disk).
// Writes to pipes and character devices are left to the kernel: io_uring
// would raise their SIGPIPE on the wrong thread; if such a write blocks for
// long, the monitor hands the worker off.
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hooks/fault.h"
#include "shim/raw_syscall.h"
#include "hooks/io_common.h"

using namespace unblock;
using hooks::Dir;
using hooks::finish;

extern "C" void __chk_fail(void) __attribute__((noreturn));
extern "C" void __fortify_fail(const char*) __attribute__((noreturn));

namespace {

constexpr uint64_t kCurrentPosition = static_cast<uint64_t>(-1);

// A read of zero bytes returns 0 at once for sockets, pipes and files, even
// with nothing pending; recv(2) of zero bytes would wait for a datagram (and
// consume it), so such a read must not become a recv on the ring.
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

// Read-like operations of fiber f: the ring when the call would block for real.
ssize_t read_op(Fiber* f, int fd, IoOp op, ssize_t (*fallback)(const IoOp&)) {
  fds::Info info = fds::lookup(fd);
  if (!info.valid || info.nonblock || asks_nothing(op)) return fallback(op);
  if (info.socket && op.kind == IoOp::kRead) {
    op.kind = IoOp::kRecv;  // read() on a socket is recv(0)
    op.flags = 0;
  }
  return finish(hooks::run_blocking(f, info, op, Dir::kIn));
}

ssize_t real_read(const IoOp& op) {
  return op.off == kCurrentPosition ? real::read(op.fd, op.addr, op.len)
                                    : real::pread64(op.fd, op.addr, op.len, static_cast<off64_t>(op.off));
}

ssize_t real_readv(const IoOp& op) {
  auto* v = static_cast<const iovec*>(op.addr);
  return op.off == kCurrentPosition ? real::readv(op.fd, v, static_cast<int>(op.len))
                                    : real::preadv64(op.fd, v, static_cast<int>(op.len), static_cast<off64_t>(op.off));
}

ssize_t do_read(int fd, void* buf, size_t n, uint64_t off) {
  Fiber* f = hooks::fiber_for_call();
  if (__builtin_expect(!f, 1)) {  // pass-through: as few instructions as possible
    return off == kCurrentPosition ? real::read(fd, buf, n) : real::pread64(fd, buf, n, static_cast<off64_t>(off));
  }
  IoOp op{};
  op.kind = IoOp::kRead;
  op.fd = fd;
  op.addr = buf;
  op.len = n;
  op.off = off;
  return read_op(f, fd, op, real_read);
}

ssize_t do_readv(int fd, const iovec* v, int n, uint64_t off) {
  Fiber* f = hooks::fiber_for_call();
  IoOp op{};
  op.kind = IoOp::kReadv;
  op.fd = fd;
  op.addr = const_cast<iovec*>(v);
  op.len = static_cast<uint64_t>(n);
  op.off = off;
  if (!f || n < 0 || n > IOV_MAX) return real_readv(op);
  return read_op(f, fd, op, real_readv);
}

ssize_t do_write(int fd, const void* buf, size_t n, uint64_t off) {
  Fiber* f = hooks::fiber_for_call();
  fds::Info info;
  if (f) info = fds::lookup(fd);
  if (!f || !info.valid || info.nonblock || (info.kind != fds::Kind::kSocket && info.kind != fds::Kind::kRegular)) {
    return off == kCurrentPosition ? real::write(fd, buf, n) : real::pwrite64(fd, buf, n, static_cast<off64_t>(off));
  }
  if (info.kind == fds::Kind::kSocket) return finish(hooks::write_all(f, info, fd, buf, n, 0, true));
  IoOp op{};
  op.kind = IoOp::kWrite;
  op.fd = fd;
  op.addr = const_cast<void*>(buf);
  op.len = n;
  op.off = off;
  return finish(hooks::run_blocking(f, info, op, Dir::kOut));
}

ssize_t do_writev(int fd, const iovec* v, int n, uint64_t off) {
  Fiber* f = hooks::fiber_for_call();
  fds::Info info;
  if (f && n >= 0 && n <= IOV_MAX) info = fds::lookup(fd);
  if (!f || !info.valid || info.nonblock || (info.kind != fds::Kind::kSocket && info.kind != fds::Kind::kRegular)) {
    return off == kCurrentPosition ? real::writev(fd, v, n) : real::pwritev64(fd, v, n, static_cast<off64_t>(off));
  }
  IoOp op{};
  op.kind = IoOp::kWritev;
  op.fd = fd;
  op.addr = const_cast<iovec*>(v);
  op.len = static_cast<uint64_t>(n);
  op.off = off;
  long r = hooks::run_blocking(f, info, op, Dir::kOut);
  if (info.kind != fds::Kind::kSocket || r < 0) {
    if (r == -EPIPE) hooks::raise_sigpipe();
    return finish(r);
  }
  // A blocking socket write sends everything: finish the rest piece by piece.
  size_t total = 0;
  for (int i = 0; i < n; ++i) total += v[i].iov_len;
  size_t done = static_cast<size_t>(r);
  for (int i = 0; i < n && done < total; ++i) {
    size_t skip = 0;
    for (int j = 0; j < i; ++j) skip += v[j].iov_len;
    if (skip + v[i].iov_len <= done) continue;
    size_t from = done - skip;
    // MSG_NOSIGNAL: bytes went out, so an EPIPE now ends the call with the
    // partial count and no SIGPIPE, as in the kernel.
    long w = hooks::write_all(f, info, fd, static_cast<char*>(v[i].iov_base) + from, v[i].iov_len - from,
                              MSG_NOSIGNAL, true);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
    if (static_cast<size_t>(w) < v[i].iov_len - from) break;  // cut short: timeout or signal
  }
  return static_cast<ssize_t>(done);
}

// One openat in the ring. Interrupted and restarted like any blocking call
// (run_blocking): the kernel restarts an open interrupted while waiting for
// a FIFO's other end under SA_RESTART, and open is a cancellation point.
int ring_openat(Fiber* f, int dirfd, const char* path, int flags, mode_t mode, bool blocking_async) {
  IoOp op{};
  op.kind = IoOp::kOpenat;
  op.fd = dirfd;
  op.addr = const_cast<char*>(path);
  op.flags = static_cast<uint32_t>(flags);
  op.len = mode;
  op.blocking_async = blocking_async;
  return static_cast<int>(hooks::run_blocking(f, fds::Info{}, op, Dir::kIn));
}

// open(2) for a fiber. Network file systems can take their time: the open
// waits in io_uring, not on the carrier. io_uring's inline attempt adds
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
int open_in_ring(Fiber* f, int dirfd, const char* path, int flags, mode_t mode) {
  int r = ring_openat(f, dirfd, path, flags, mode, false);
  if ((flags & (O_NONBLOCK | O_PATH)) != 0) return r;
  int acc = flags & O_ACCMODE;
  if (acc == O_WRONLY && r == -ENXIO) return ring_openat(f, dirfd, path, flags, mode, true);
  if (acc != O_RDONLY || r < 0) return r;
  struct stat st;
  if (fstat(r, &st) != 0 || !S_ISFIFO(st.st_mode)) return r;
  // Closes the first descriptor on every way out but success, a
  // cancellation's unwind included.
  struct Holder {
    int fd;
    ~Holder() {
      if (fd >= 0) real::close(fd);
    }
  } first{r};
  int waited = ring_openat(f, dirfd, path, flags, mode, true);
  if (waited < 0) return waited;
  int d = dup3(waited, r, (flags & O_CLOEXEC) ? O_CLOEXEC : 0);
  int err = errno;
  real::close(waited);
  if (d < 0) return -err;
  first.fd = -1;
  return r;
}

int do_openat(int dirfd, const char* path, int flags, mode_t mode) {
  Fiber* f = hooks::fiber_for_call();
  int r;
  if (!f) {
    r = static_cast<int>(errno_syscall(SYS_openat, dirfd, path, flags, mode));
    if (r < 0) return hooks::fail(errno);
  } else {
    r = open_in_ring(f, dirfd, path, flags, mode);
    if (r < 0) return hooks::fail(-r);
  }
  fds::forget(r);  // learnt on first use
  return r;
}

// fsync/fdatasync through the ring (the disk waits, not the carrier).
int sync_fd(int fd, bool datasync) {
  Fiber* f = hooks::fiber_for_call();
  fds::Info info;
  if (f) info = fds::lookup(fd);
  if (!f || !info.valid) return datasync ? real::fdatasync(fd) : real::fsync(fd);
  IoOp op{};
  op.kind = IoOp::kFsync;
  op.fd = fd;
  op.flags = datasync ? 1 : 0;  // IORING_FSYNC_DATASYNC
  int r = io::run(f, op, 0, false, nullptr);
  return r < 0 ? hooks::fail(-r) : 0;
}

bool needs_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

}  // namespace

// The hottest entry points test for pass-through inline, so a call made
// outside a fiber costs a few loads and a tail call.
UNBLOCK_FAULTABLE ssize_t read(int fd, void* buf, size_t n) {
  if (__builtin_expect(!hooks::fiber_for_call(), 1)) {
    return real::read(fd, buf, n);
  }
  return do_read(fd, buf, n, kCurrentPosition);
}
UNBLOCK_FAULTABLE ssize_t write(int fd, const void* buf, size_t n) {
  if (__builtin_expect(!hooks::fiber_for_call(), 1)) {
    return real::write(fd, buf, n);
  }
  return do_write(fd, buf, n, kCurrentPosition);
}
UNBLOCK_FAULTABLE ssize_t readv(int fd, const struct iovec* v, int n) { return do_readv(fd, v, n, kCurrentPosition); }
UNBLOCK_FAULTABLE ssize_t writev(int fd, const struct iovec* v, int n) { return do_writev(fd, v, n, kCurrentPosition); }

UNBLOCK_FAULTABLE ssize_t pread64(int fd, void* buf, size_t n, off64_t off) {
  if (off < 0) return real::pread64(fd, buf, n, off);  // EINVAL from the kernel
  return do_read(fd, buf, n, static_cast<uint64_t>(off));
}
UNBLOCK_FAULTABLE ssize_t pread(int fd, void* buf, size_t n, off_t off) { return pread64(fd, buf, n, off); }
UNBLOCK_FAULTABLE ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  if (off < 0) return real::pwrite64(fd, buf, n, off);
  return do_write(fd, buf, n, static_cast<uint64_t>(off));
}
UNBLOCK_FAULTABLE ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) { return pwrite64(fd, buf, n, off); }
UNBLOCK_FAULTABLE ssize_t preadv64(int fd, const struct iovec* v, int n, off64_t off) {
  if (off < 0) return real::preadv64(fd, v, n, off);
  return do_readv(fd, v, n, static_cast<uint64_t>(off));
}
UNBLOCK_FAULTABLE ssize_t preadv(int fd, const struct iovec* v, int n, off_t off) { return preadv64(fd, v, n, off); }
UNBLOCK_FAULTABLE ssize_t pwritev64(int fd, const struct iovec* v, int n, off64_t off) {
  if (off < 0) return real::pwritev64(fd, v, n, off);
  return do_writev(fd, v, n, static_cast<uint64_t>(off));
}
UNBLOCK_FAULTABLE ssize_t pwritev(int fd, const struct iovec* v, int n, off_t off) { return pwritev64(fd, v, n, off); }

// _FORTIFY_SOURCE entry points: the same checks glibc makes, then the call.
UNBLOCK_FAULTABLE ssize_t __read_chk(int fd, void* buf, size_t n, size_t buflen) {
  if (n > buflen) __chk_fail();
  return read(fd, buf, n);
}
UNBLOCK_FAULTABLE ssize_t __pread_chk(int fd, void* buf, size_t n, off_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread64(fd, buf, n, off);
}
UNBLOCK_FAULTABLE ssize_t __pread64_chk(int fd, void* buf, size_t n, off64_t off, size_t buflen) {
  if (n > buflen) __chk_fail();
  return pread64(fd, buf, n, off);
}

UNBLOCK_FAULTABLE int close(int fd) {
  // The kernel keeps a file referenced by an in-flight operation alive, so a
  // fiber blocked on fd is not woken by close (as with a thread blocked in
  // read(2)); shutdown(2) wakes it.
  fds::forget(fd);
  return real::close(fd);
}

UNBLOCK_HOOK int fclose(FILE* stream) {
  if (stream) {
    int fd = fileno(stream);
    if (fd >= 0) fds::forget(fd);
  }
  return real::fclose(stream);
}

UNBLOCK_HOOK int dup2(int oldfd, int newfd) {
  int r = real::dup2(oldfd, newfd);
  if (r >= 0 && oldfd != newfd) {
    fds::forget(newfd);
    fds::mark_shared(oldfd);
    fds::mark_shared(newfd);
  }
  return r;
}

UNBLOCK_HOOK int dup3(int oldfd, int newfd, int flags) {
  int r = real::dup3(oldfd, newfd, flags);
  if (r >= 0) {
    fds::forget(newfd);
    fds::mark_shared(oldfd);
    fds::mark_shared(newfd);
  }
  return r;
}

namespace {
int track_fcntl(int fd, int cmd, unsigned long arg, int r) {
  if (r < 0) return r;
  switch (cmd) {
    case F_SETFL:
      fds::set_nonblock(fd, arg & O_NONBLOCK);
      break;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
      fds::forget(r);
      fds::mark_shared(fd);
      fds::mark_shared(r);
      break;
    default:
      break;
  }
  return r;
}
}  // namespace

UNBLOCK_HOOK int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return track_fcntl(fd, cmd, arg, real::fcntl(fd, cmd, arg));
}

UNBLOCK_HOOK int fcntl64(int fd, int cmd, ...) __attribute__((alias("fcntl")));

UNBLOCK_HOOK int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  int r = real::ioctl(fd, req, arg);
  if (r == 0 && req == FIONBIO && arg) fds::set_nonblock(fd, *reinterpret_cast<const int*>(arg) != 0);
  return r;
}

UNBLOCK_HOOK int pipe2(int p[2], int flags) {
  int r = real::pipe2(p, flags);
  if (r == 0) {
    fds::created(p[0], flags & O_NONBLOCK, fds::Kind::kPipe);
    fds::created(p[1], flags & O_NONBLOCK, fds::Kind::kPipe);
  }
  return r;
}

UNBLOCK_HOOK int pipe(int p[2]) { return pipe2(p, 0); }

UNBLOCK_FAULTABLE int fsync(int fd) {
  return sync_fd(fd, false);
}

UNBLOCK_FAULTABLE int fdatasync(int fd) {
  return sync_fd(fd, true);
}

UNBLOCK_FAULTABLE int openat(int dirfd, const char* path, int flags, ...) {
  mode_t mode = 0;
  if (needs_mode(flags)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return do_openat(dirfd, path, flags, mode);
}
UNBLOCK_FAULTABLE int openat64(int dirfd, const char* path, int flags, ...) UNBLOCK_ALIAS_OF(openat);

UNBLOCK_FAULTABLE int open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if (needs_mode(flags)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  return do_openat(AT_FDCWD, path, flags, mode);
}
UNBLOCK_FAULTABLE int open64(const char* path, int flags, ...) UNBLOCK_ALIAS_OF(open);

UNBLOCK_FAULTABLE int creat(const char* path, mode_t mode) {
  return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}
UNBLOCK_FAULTABLE int creat64(const char* path, mode_t mode) UNBLOCK_ALIAS_OF(creat);

// Fortified open: O_CREAT/O_TMPFILE without a mode is a bug glibc stops.
UNBLOCK_FAULTABLE int __open_2(const char* path, int flags) {
  if (needs_mode(flags)) __fortify_fail("invalid open call: O_CREAT or O_TMPFILE without mode");
  return do_openat(AT_FDCWD, path, flags, 0);
}
UNBLOCK_FAULTABLE int __open64_2(const char* path, int flags) UNBLOCK_ALIAS_OF(__open_2);
UNBLOCK_FAULTABLE int __openat_2(int dirfd, const char* path, int flags) {
  if (needs_mode(flags)) __fortify_fail("invalid openat call: O_CREAT or O_TMPFILE without mode");
  return do_openat(dirfd, path, flags, 0);
}
UNBLOCK_FAULTABLE int __openat64_2(int dirfd, const char* path, int flags) UNBLOCK_ALIAS_OF(__openat_2);
