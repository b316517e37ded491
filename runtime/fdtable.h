// What the runtime remembers about the program's file descriptors.
//
// A blocking call must know, without a system call each time, whether the
// program made the fd non-blocking (io_uring arms a poll and waits even on an
// O_NONBLOCK fd, so such calls must go straight to the kernel) and, for
// sockets, SO_RCVTIMEO/SO_SNDTIMEO (io_uring ignores them; the runtime links
// an io_uring timeout instead). Both are learnt once per fd (fcntl F_GETFL,
// getsockopt) and kept up to date by the hooks that change them (fcntl,
// ioctl FIONBIO, setsockopt, accept4/socket flags) or end the fd (close,
// dup2/dup3 over it, fclose, close_range).
//
// The library never changes an fd's flags. An O_NONBLOCK change made through
// another descriptor of the same open file description (a dup, a parent or
// child process) is seen because F_SETFL on any fd the runtime did not create
// fresh invalidates what is known about every fd; changes made by another
// process are not seen (README, limitations).
//
// Any thread or fiber; lock-free; entries are allocated in chunks on first
// use and never freed.
#pragma once

#include <sys/time.h>

#include <cstdint>

namespace unblock::fds {

enum class Kind : uint8_t { kOther, kSocket, kRegular, kPipe };

struct Info {
  bool valid = false;     // false: fd not open (the real call will say EBADF)
  bool nonblock = false;  // O_NONBLOCK set by the program
  bool socket = false;
  Kind kind = Kind::kOther;  // what fstat said (sockets, regular files, pipes/FIFOs, the rest)
  int64_t rcvtimeo_ns = 0;  // 0: none
  int64_t sndtimeo_ns = 0;
  int8_t unix_dgram = -1;  // a unix datagram or seqpacket socket: 1; not: 0; not asked yet: -1
  uint64_t state = 0;      // the entry's state word this was read from (set_unix_dgram)
};

// Current knowledge of fd, learnt from the kernel if unknown.
Info lookup(int fd);

// A new fd made by a hooked call.
void created(int fd, bool nonblock, Kind kind);
// The fd is gone (closed, or about to be replaced by dup2/dup3).
void forget(int fd);
// Every fd in [first, last] is gone (close_range, closefrom).
void forget_range(unsigned first, unsigned last);
// The program changed O_NONBLOCK on fd with fcntl/ioctl.
void set_nonblock(int fd, bool nonblock);
// What a caller learnt of Info::unix_dgram (getsockopt), kept only if fd's
// state is still `seen` (Info::state). A close and a new file of the same
// kind and flags on that number in between, by another thread, would pass
// that check with the old file's answer: the number was then sent on while
// being replaced, and the answer only picks how a send waits (runtime/api.cpp).
void set_unix_dgram(int fd, uint64_t seen, bool yes);
// A socket made by a hooked socket()/socketpair(): its domain and type tell.
void created_socket(int fd, bool nonblock, int domain, int type);
// The program set SO_RCVTIMEO (rcv=true) or SO_SNDTIMEO.
void set_timeout(int fd, bool rcv, int64_t ns);
// A SO_RCVTIMEO/SO_SNDTIMEO value as the kernel takes it (sock_set_timeout),
// in nanoseconds for set_timeout: zero is none; a negative tv_sec is "do not
// wait" (1 ns: the first wait fails with EAGAIN); a time too long for
// nanoseconds (centuries) is none.
int64_t timeout_ns(const timeval& tv);
// fd now shares its open file description with another fd (dup, SCM_RIGHTS).
void mark_shared(int fd);

}  // namespace unblock::fds
