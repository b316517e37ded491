// File-descriptor I/O hooks: read/write and their vector, positioned, 64 and
// _FORTIFY_SOURCE forms; open/openat/creat and theirs; close, fsync,
// fdatasync; the calls that change what the runtime knows about an fd
// (fcntl, ioctl FIONBIO, dup2/dup3, pipe/pipe2, fclose).
//
// Each forwards to the runtime's blocking-call API (runtime/api.h), which
// decides whether the call waits in the engine (a fiber, a blocking fd) or
// goes to the kernel at once; regular files wait in the engine too, so the
// carrier never sleeps on the disk.
#include <fcntl.h>
#include <linux/close_range.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

#include "hooks/fault.h"
#include "hooks/hook.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

using namespace unblock;
using hooks::ret;

extern "C" void __chk_fail(void) __attribute__((noreturn));
extern "C" void __fortify_fail(const char*) __attribute__((noreturn));

namespace {

constexpr uint64_t kCurrentPosition = static_cast<uint64_t>(-1);

ssize_t do_read(int fd, void* buf, size_t n, uint64_t off) {
  Fiber* f = hooks::fiber_for_call();
  if (__builtin_expect(!f, 1)) {  // pass-through: as few instructions as possible
    return off == kCurrentPosition ? real::read(fd, buf, n) : real::pread64(fd, buf, n, static_cast<off64_t>(off));
  }
  return ret(off == kCurrentPosition ? rt::read(fd, buf, n) : rt::pread(fd, buf, n, static_cast<off64_t>(off)));
}

ssize_t do_readv(int fd, const iovec* v, int n, uint64_t off) {
  return ret(off == kCurrentPosition ? rt::readv(fd, v, n) : rt::preadv(fd, v, n, static_cast<off64_t>(off)));
}

ssize_t do_write(int fd, const void* buf, size_t n, uint64_t off) {
  return ret(off == kCurrentPosition ? rt::write(fd, buf, n) : rt::pwrite(fd, buf, n, static_cast<off64_t>(off)));
}

ssize_t do_writev(int fd, const iovec* v, int n, uint64_t off) {
  return ret(off == kCurrentPosition ? rt::writev(fd, v, n) : rt::pwritev(fd, v, n, static_cast<off64_t>(off)));
}

int do_openat(int dirfd, const char* path, int flags, mode_t mode) {
  return static_cast<int>(ret(rt::openat(dirfd, path, flags, mode)));
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
  return static_cast<int>(ret(rt::close(fd)));
}

UNBLOCK_HOOK int fclose(FILE* stream) {
  if (stream) {
    int fd = fileno(stream);
    if (fd >= 0) rt::fd_closing(fd);
  }
  return real::fclose(stream);
}

// close_range(2) and closefrom(3) end a range of fds at once: the runtime
// forgets them first (the epoll engine closes its cached duplicates of
// them, so the files really close) and leaves its own descriptors open
// (rt::close_range). CLOSE_RANGE_CLOEXEC only marks them. The system call
// itself, not glibc's wrapper (added in 2.34: this library must also load
// on older ones).
UNBLOCK_HOOK int close_range(unsigned first, unsigned last, int flags) {
  return static_cast<int>(ret(rt::close_range(first, last, static_cast<unsigned>(flags))));
}

UNBLOCK_HOOK void closefrom(int lowfd) {
  if (rt::closefrom(lowfd)) return;
  // No close_range(2) in the kernel: glibc's own (resolved only then).
  using Fn = void (*)(int);
  static std::atomic<Fn> real_closefrom{nullptr};
  Fn fn = real_closefrom.load(std::memory_order_relaxed);
  if (!fn) {
    fn = reinterpret_cast<Fn>(real::resolve("closefrom"));
    real_closefrom.store(fn, std::memory_order_relaxed);
  }
  if (fn) fn(lowfd);
}

// newfd's registrations are dropped before the call, while the number
// still names the file it replaces: an epoll entry made on that number can
// then still be deleted (afterwards the kernel would look for the new
// file's).
UNBLOCK_HOOK int dup2(int oldfd, int newfd) {
  if (oldfd != newfd && newfd >= 0) rt::fd_closing(newfd);
  int r = real::dup2(oldfd, newfd);
  if (r >= 0) rt::fd_duplicated(oldfd, newfd);
  return r;
}

UNBLOCK_HOOK int dup3(int oldfd, int newfd, int flags) {
  if (oldfd != newfd && newfd >= 0) rt::fd_closing(newfd);
  int r = real::dup3(oldfd, newfd, flags);
  if (r >= 0) rt::fd_duplicated(oldfd, newfd);
  return r;
}

namespace {
int track_fcntl(int fd, int cmd, unsigned long arg, int r) {
  if (r < 0) return r;
  switch (cmd) {
    case F_SETFL:
      rt::fd_set_nonblock(fd, arg & O_NONBLOCK);
      break;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
      rt::fd_duplicated(fd, r);
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
  if (r == 0 && req == FIONBIO && arg) rt::fd_set_nonblock(fd, *reinterpret_cast<const int*>(arg) != 0);
  return r;
}

UNBLOCK_HOOK int pipe2(int p[2], int flags) {
  int r = real::pipe2(p, flags);
  if (r == 0) {
    rt::fd_created(p[0], flags & O_NONBLOCK, rt::FdKind::kPipe);
    rt::fd_created(p[1], flags & O_NONBLOCK, rt::FdKind::kPipe);
  }
  return r;
}

UNBLOCK_HOOK int pipe(int p[2]) { return pipe2(p, 0); }

UNBLOCK_FAULTABLE int fsync(int fd) {
  return static_cast<int>(ret(rt::fsync(fd, false)));
}

UNBLOCK_FAULTABLE int fdatasync(int fd) {
  return static_cast<int>(ret(rt::fsync(fd, true)));
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
