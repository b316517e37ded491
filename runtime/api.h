// The blocking-call API: the one runtime header hooks/ may include (the
// build checks it, hooks/CMakeLists.txt).
//
// Every function is shaped like its system call and returns its result or
// -errno; it never sets errno (the hook does, only on failure). Each owns
// the whole state machine of a blocking call (docs/DESIGN.md, "The
// blocking-call state machine"; runtime/api.cpp): whether the call is the
// runtime's at all (the caller is a fiber of a running runtime, the fd is
// open and blocking - else the real call, at once), the timeout
// (SO_RCVTIMEO/SO_SNDTIMEO), a direct attempt where one pays (sends),
// submission to the worker's engine, the park, cancellation and the drain
// of the cancelled operation, the EINTR/SA_RESTART epilogue, the
// cancellation point, SIGPIPE, and the handlers due on the way out.
//
// Unless a function says otherwise: fiber or plain thread (a plain thread,
// or a fiber outside a running runtime, gets the real call); may suspend;
// does not allocate; not async-signal-safe. Memory the caller passes stays
// in use until the function returns, also when it is interrupted.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>
#include <cstdint>

namespace unblock {

// Opaque to hooks.
class Fiber;

// The calling thread's fiber (runtime/fiber.h) and whether the runtime runs
// (runtime/scheduler.h): declared here so the test below stays inline.
extern __thread Fiber* tl_fiber __attribute__((tls_model("initial-exec")));
namespace sched {
extern std::atomic<bool> g_active;
}  // namespace sched

namespace rt {

// ---- Whose call is it ----------------------------------------------------

// The calling fiber if the runtime may act for this call, else nullptr.
// Any context; async-signal-safe; no allocation; one thread-local load and
// one acquire load.
inline Fiber* fiber_for_call() {
  Fiber* f = tl_fiber;
  if (!f || !sched::g_active.load(std::memory_order_acquire)) return nullptr;
  return f;
}

// Runs the handlers of signals queued for the calling fiber that it does
// not block, as the kernel does on the return from a system call (every
// blocking function below does it itself before returning). For calls that
// return without entering the API. Fiber or plain thread (then nothing);
// may suspend (a handler may block); two loads when nothing is due.
void deliver_due();

// Hands the calling fiber's worker to another carrier while the caller
// makes a call the library cannot serve (a resolver's internal sockets);
// the fiber rejoins a worker afterwards. No-op outside a fiber.
void begin_blocking();

// Raises SIGPIPE for the calling thread, as the kernel does on EPIPE
// (through the signal emulation for a fiber). Any thread.
void raise_sigpipe();

// ---- What the runtime knows about fds (runtime/fdtable.h) ----------------

enum class FdKind : uint8_t { kOther, kSocket, kRegular, kPipe };

// A new fd made by a hooked call (socket, accept, pipe).
void fd_created(int fd, bool nonblock, FdKind kind);
// fd is gone (closed, fclose'd, or about to be replaced).
void fd_forget(int fd);
// newfd now refers to oldfd's open file description (dup2/dup3/F_DUPFD).
void fd_duplicated(int oldfd, int newfd);
// The program changed O_NONBLOCK (fcntl F_SETFL, ioctl FIONBIO).
void fd_set_nonblock(int fd, bool nonblock);
// The program set SO_RCVTIMEO (rcv) or SO_SNDTIMEO to ns (0: none).
void fd_set_timeout(int fd, bool rcv, int64_t ns);

// ---- I/O -----------------------------------------------------------------
// Sockets take SO_RCVTIMEO (reads, accept) and SO_SNDTIMEO (writes,
// connect); a signal handler for the fiber, or its cancellation request,
// ends the wait: EINTR, or a restart when the handler has SA_RESTART and
// the call is restartable (never a socket call with a timeout, as Linux).
// Regular files are not interrupted. Blocking writes to sockets send
// everything unless a timeout or a signal cuts them short (then the
// partial count). SIGPIPE as the kernel raises it.

long read(int fd, void* buf, size_t n);
long pread(int fd, void* buf, size_t n, off64_t off);
long readv(int fd, const iovec* v, int n);
long preadv(int fd, const iovec* v, int n, off64_t off);
long write(int fd, const void* buf, size_t n);
long pwrite(int fd, const void* buf, size_t n, off64_t off);
long writev(int fd, const iovec* v, int n);
long pwritev(int fd, const iovec* v, int n, off64_t off);

long recv(int fd, void* buf, size_t n, int flags);
// addr may be null (then recv).
long recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* addr, socklen_t* len);
long recvmsg(int fd, msghdr* msg, int flags);
long send(int fd, const void* buf, size_t n, int flags);
// addr may be null (then send).
long sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* addr, socklen_t len);
long sendmsg(int fd, const msghdr* msg, int flags);
long accept4(int fd, sockaddr* addr, socklen_t* len, int flags);
// A timed-out connect reports EINPROGRESS, as Linux's.
long connect(int fd, const sockaddr* addr, socklen_t len);

// open(2)/openat(2), waiting in the engine; FIFOs wait for their other end
// as in the kernel.
long openat(int dirfd, const char* path, int flags, mode_t mode);
long fsync(int fd, bool datasync);
// close(2); a fiber blocked on fd is not woken (as a thread blocked in
// read(2) is not): shutdown(2) wakes it.
long close(int fd);
long splice(int in, off64_t* off_in, int out, off64_t* off_out, size_t len, unsigned flags);
long sendfile(int out, int in, off64_t* offset, size_t count);

// ---- Waiting for readiness (wait_fds shapes) ----------------------------
// The kernel's answer without waiting first; then the fiber parks on every
// descriptor and the deadline, and the kernel is asked again with a zero
// timeout whenever anything fires, so results are exactly the kernel's.
// A handler ends the wait with EINTR (never restarted, as Linux). mask: the
// signal mask while waiting (ppoll/pselect/epoll_pwait), or null.
// May allocate (more than 16 descriptors; without memory the caller waits
// in the kernel's own call, its worker handed off).

long poll(pollfd* pfd, nfds_t n, int timeout_ms);
long ppoll(pollfd* pfd, nfds_t n, const timespec* ts, const sigset_t* mask);
// tv, if given, gets the time not slept (as Linux).
long select(int nfds, fd_set* r, fd_set* w, fd_set* e, timeval* tv);
long pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const timespec* ts, const sigset_t* mask);
long epoll_pwait(int epfd, epoll_event* ev, int max, int timeout_ms, const sigset_t* mask);

// ---- Time ----------------------------------------------------------------

// clock_nanosleep(2) (returns 0 or -errno, not the error number): a fiber
// parks on REALTIME/MONOTONIC/BOOTTIME and on other fibers' CPU clocks; a
// handler ends the sleep with EINTR and *rem (relative sleeps), never
// restarted. Other clocks get the real call.
long clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem);
// clock_gettime/clock_getres: fibers' thread CPU clocks from the runtime's
// accounting (runtime/cpu_clock.h); every other clock is libc's.
long clock_gettime(clockid_t clock, timespec* ts);
long clock_getres(clockid_t clock, timespec* res);
// getrusage: RUSAGE_THREAD of a fiber is its own CPU time.
long getrusage(int who, rusage* ru);

}  // namespace rt
}  // namespace unblock
