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
// A new socket made by a hooked socket()/socketpair(), with its domain and type.
void fd_created_socket(int fd, bool nonblock, int domain, int type);
// fd is gone (closed, replaced, or a new fd the program was just given).
// Every engine drops its registration of the file (the epoll engine closes
// its cached duplicate here). Any thread.
void fd_forget(int fd);
// fd is about to be closed or replaced (close, fclose, dup2/dup3 over it):
// as fd_forget, before the call, while fd still names its file; operations
// waiting on it keep the file (the epoll engine may duplicate it).
void fd_closing(int fd);
// Every fd in [first, last] is about to be closed (close_range, closefrom).
void fd_forget_range(unsigned first, unsigned last);
// A call that makes an fd got EMFILE: the engines close the duplicates they
// keep only as a cache. True if any was closed (then retry once). Any thread.
bool engines_release_idle();
// newfd now refers to oldfd's open file description (dup2/dup3/F_DUPFD).
void fd_duplicated(int oldfd, int newfd);
// The program changed O_NONBLOCK (fcntl F_SETFL, ioctl FIONBIO).
void fd_set_nonblock(int fd, bool nonblock);
// The program set SO_RCVTIMEO (rcv) or SO_SNDTIMEO to tv (setsockopt's
// value, which the kernel accepted).
void fd_set_timeout(int fd, bool rcv, const timeval& tv);
// shutdown(2) on fd succeeded: every worker's engine retries the operations
// waiting on that file (the epoll engine cannot see a unix stream socket's
// own SHUT_WR wake its blocked sender; io_uring needs nothing). Any thread.
void fd_shut_down(int fd);

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
// Batches: what is ready now in one system call, waits in the engine.
long recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout);
long sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags);
long accept4(int fd, sockaddr* addr, socklen_t* len, int flags);
// A timed-out connect reports EINPROGRESS, as Linux's.
long connect(int fd, const sockaddr* addr, socklen_t len);

// open(2)/openat(2), waiting in the engine; FIFOs wait for their other end
// as in the kernel.
long openat(int dirfd, const char* path, int flags, mode_t mode);
long fsync(int fd, bool datasync);
// close(2); a fiber blocked on fd is not woken (as a thread blocked in
// read(2) is not): shutdown(2) wakes it. The library's own descriptors
// answer EBADF and stay open (runtime/own_fds.h), as in close_range and
// closefrom, which close every other fd of the range.
long close(int fd);
long close_range(unsigned first, unsigned last, unsigned flags);
// False if it could not be done here (no close_range(2) in the kernel,
// before Linux 5.9): the caller uses glibc's closefrom, which closes the
// library's descriptors too.
bool closefrom(int lowfd);
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

// ---- Threads, synchronisation, signals, thread ids ----
//
// The runtime's entry points for the thread, sync, signal, futex, thread-id
// and process hooks (hooks/thread.cpp, sync.cpp, signal.cpp, futex.cpp,
// thread_ids.cpp, process.cpp). Each function is shaped like the system
// call or libc function it serves and owns the whole call: it decides
// whether the runtime serves it (a fiber of a running runtime; for some
// families any thread, see each one) or passes it to the real libc
// function, and it owns the cancellation point, the signal handlers due on
// the way out, and every piece of per-thread state. The hooks only
// translate the result: every function here returns a result >= 0 or
// -errno (a pthread_* hook returns -r; the others set errno to -r and
// return -1), unless its comment says otherwise.
//
// Where: any thread, any fiber, unless said otherwise; never a signal
// handler the runtime did not start. A function that "may suspend" parks a
// fiber (a plain thread sleeps on a futex). None allocates unless said.

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

#include <cstddef>

namespace unblock::rt {

// -- threads (hooks/thread.cpp) --------------------------------------------
// pthread_create: a fiber, or an OS thread for a caller-supplied stack or
// when the runtime cannot start. Starts the runtime on first use (plain
// thread); may allocate.
int thread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg);
// The joins; join/timedjoin/clockjoin are cancellation points and may
// suspend. abstime nullptr: no deadline.
int thread_join(pthread_t thread, void** ret);
int thread_tryjoin(pthread_t thread, void** ret);
int thread_timedjoin(pthread_t thread, void** ret, const timespec* abstime);
int thread_clockjoin(pthread_t thread, void** ret, clockid_t clock, const timespec* abstime);
int thread_detach(pthread_t thread);
// pthread_exit: ends the calling thread (a fiber through glibc's unwind).
[[noreturn]] void thread_exit(void* value);
int thread_cancel(pthread_t thread);
int thread_getattr(pthread_t thread, pthread_attr_t* attr);
int thread_getcpuclockid(pthread_t thread, clockid_t* clock);
int thread_setname(pthread_t thread, const char* name);
int thread_getname(pthread_t thread, char* buf, size_t len);
// prctl(2): PR_SET_NAME/PR_GET_NAME act on a fiber's own name; every other
// option is the kernel's.
long prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
// pthread_key_create/delete: keys whose destructors the runtime runs when a
// fiber ends (glibc runs them in start_thread, which fibers skip).
int key_create(pthread_key_t* key, void (*destructor)(void*));
int key_delete(pthread_key_t key);
// sched_yield; delivers due handlers after the yield. May suspend.
int yield();
// Scheduling parameters: recorded per fiber, checked as the kernel checks
// them, never applied to a carrier. The sched_* calls name a thread by id
// (0: the caller).
int thread_setschedparam(pthread_t thread, int policy, const sched_param* param);
int thread_getschedparam(pthread_t thread, int* policy, sched_param* param);
int thread_setschedprio(pthread_t thread, int prio);
int sched_setscheduler(pid_t pid, int policy, const sched_param* param);
int sched_getscheduler(pid_t pid);  // the policy
int sched_setparam(pid_t pid, const sched_param* param);
int sched_getparam(pid_t pid, sched_param* param);
// The resource limit calls (the thread limit follows RLIMIT_NPROC).
int setrlimit(__rlimit_resource_t resource, const struct rlimit* limit);
int setrlimit64(__rlimit_resource_t resource, const struct rlimit64* limit);
int prlimit(pid_t pid, __rlimit_resource resource, const struct rlimit* limit, struct rlimit* old);
int prlimit64(pid_t pid, __rlimit_resource resource, const struct rlimit64* limit, struct rlimit64* old);

// -- process (hooks/process.cpp) -------------------------------------------
// fork (and vfork): the child's pid, 0 in the child, or -errno. The child
// passes every later call through (the runtime does not survive fork).
pid_t fork();

// -- synchronisation (hooks/sync.cpp) --------------------------------------
// Every thread, before and after the runtime starts and in a forked child:
// an object never changes implementation while in use. The waits may
// suspend; cond waits and sem waits are cancellation points. Results are 0
// or -errno (the errno the pthread/sem function would give).
int mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* attr);
int mutex_destroy(pthread_mutex_t* m);
int mutex_lock(pthread_mutex_t* m);
int mutex_trylock(pthread_mutex_t* m);
// check_clock: pthread_mutex_clocklock (the clock is validated).
int mutex_timedlock(pthread_mutex_t* m, clockid_t clock, const timespec* abs, bool check_clock);
int mutex_unlock(pthread_mutex_t* m);
int mutex_consistent(pthread_mutex_t* m);
int cond_init(pthread_cond_t* c, const pthread_condattr_t* attr);
int cond_destroy(pthread_cond_t* c);
int cond_wait(pthread_cond_t* c, pthread_mutex_t* m);
int cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abs);
int cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock, const timespec* abs);
int cond_signal(pthread_cond_t* c);
int cond_broadcast(pthread_cond_t* c);
int rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr);
int rwlock_destroy(pthread_rwlock_t* l);
// timed: the timed/clock variants (abs checked); abs nullptr: no deadline.
int rwlock_rdlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool timed);
int rwlock_tryrdlock(pthread_rwlock_t* l);
int rwlock_wrlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool timed);
int rwlock_trywrlock(pthread_rwlock_t* l);
int rwlock_unlock(pthread_rwlock_t* l);
int barrier_init(pthread_barrier_t* b, const pthread_barrierattr_t* attr, unsigned count);
int barrier_destroy(pthread_barrier_t* b);
// 0, kBarrierSerial for the one serial thread (glibc's
// PTHREAD_BARRIER_SERIAL_THREAD is -1, which would read as -EPERM), or -errno.
constexpr int kBarrierSerial = 1;
int barrier_wait(pthread_barrier_t* b);
int once(pthread_once_t* once, void (*init)());
int sem_init(sem_t* s, int pshared, unsigned value);
int sem_destroy(sem_t* s);
int sem_wait(sem_t* s);
int sem_trywait(sem_t* s);
int sem_timedwait(sem_t* s, clockid_t clock, const timespec* abs, bool check_clock);
// Async-signal-safe.
int sem_post(sem_t* s);
int sem_getvalue(sem_t* s, int* value);

// -- raw system calls through syscall() (hooks/futex.cpp) -----------------
// syscall(SYS_futex, ...) and the numbers that name a thread by id
// (gettid, tkill, tgkill, rt_tgsigqueueinfo, sched_set/getaffinity,
// set/getpriority, ioprio_set/get): the kernel's result or -errno; a
// request the runtime does not serve goes to glibc's syscall(). May suspend
// (futex waits).
long syscall_futex(long a1, long a2, long a3, long a4, long a5, long a6);
long syscall_thread_id(long nr, long a1, long a2, long a3, long a4, long a5, long a6);
// Any other number: glibc's syscall() with the same arguments.
long syscall_other(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

// -- thread ids (hooks/thread_ids.cpp) -------------------------------------
// A fiber's id is its own; the calls that take an id accept it. Kernel
// results (getpriority: the syscall's 40..1 form).
pid_t gettid();
int tgkill(pid_t tgid, pid_t tid, int sig);
int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* mask);
// As glibc's wrapper: 0, with the bytes past what the kernel wrote cleared.
int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* mask);
int thread_setaffinity(pthread_t thread, size_t size, const cpu_set_t* mask);
int thread_getaffinity(pthread_t thread, size_t size, cpu_set_t* mask);
int setpriority(int which, id_t who, int prio);
int getpriority(int which, id_t who);

// -- signals (hooks/signal.cpp) --------------------------------------------
// Emulated for a fiber of a running runtime (per-thread masks, pending
// queues, handlers run on the fiber); the dispositions stay emulated for
// every thread once the runtime started; anything else is the real call.
int sigaction(int sig, const struct sigaction* act, struct sigaction* old);
// signal()/bsd_signal()/ssignal(): BSD semantics (SA_RESTART unless
// siginterrupt() asked otherwise); *old gets the previous handler.
int signal_bsd(int sig, sighandler_t handler, sighandler_t* old);
// sysv_signal(): SA_RESETHAND | SA_NODEFER.
int signal_sysv(int sig, sighandler_t handler, sighandler_t* old);
int siginterrupt(int sig, int interrupt);
// sigset(): *old gets the previous disposition or SIG_HOLD.
int sigset(int sig, sighandler_t disp, sighandler_t* old);
// sigprocmask (process-mask flavour: the real one sets errno) and
// pthread_sigmask. May run handlers that the change unblocks.
int sigprocmask(int how, const sigset_t* set, sigset_t* old);
int thread_sigmask(int how, const sigset_t* set, sigset_t* old);
// sighold/sigrelse: block or unblock one signal.
int sigmask_one(int how, int sig);
// Sending. A signal the caller sends itself is delivered before returning.
int thread_kill(pthread_t thread, int sig);
int thread_sigqueue(pthread_t thread, int sig, const sigval value);
int raise(int sig);
int kill(pid_t pid, int sig);
int sigqueue(pid_t pid, int sig, const sigval value);
// Waiting; all may suspend and are cancellation points. The signal number,
// or -errno.
int sigwaitinfo(const sigset_t* set, siginfo_t* info);
int sigtimedwait(const sigset_t* set, siginfo_t* info, const timespec* timeout);
// sigwait: 0 with *sig set, or -errno (never -EINTR).
int sigwait(const sigset_t* set, int* sig);
// sigsuspend and pause: always -EINTR, after a handler ran.
int sigsuspend(const sigset_t* mask);
int pause();
// __sigpause: is_sig ? the XSI sigpause(sig) : the BSD sigpause(mask).
int sigpause(int sig_or_mask, int is_sig);
int sigpending(sigset_t* set);
int sigaltstack(const stack_t* ss, stack_t* old);
// The new descriptor; the library stops reading the signals in mask.
int signalfd(int fd, const sigset_t* mask, int flags);
// Calls whose new program or child inherits the OS thread's real mask: run
// with the calling thread's emulated mask in the kernel. exec* return only
// on failure.
int execve(const char* path, char* const argv[], char* const envp[]);
int execvpe(const char* file, char* const argv[], char* const envp[]);
int fexecve(int fd, char* const argv[], char* const envp[]);
int execveat(int dirfd, const char* path, char* const argv[], char* const envp[], int flags);
// search: posix_spawnp.
int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                const posix_spawnattr_t* attr, char* const argv[], char* const envp[], bool search);
// system(): the wait status, or -errno.
int system(const char* command);
// popen(): 0 with *stream set, or -errno.
int popen(const char* command, const char* mode, FILE** stream);
// The setxid family, applied to every OS thread of the process as glibc does.
enum class Credential { kUid, kGid, kEuid, kEgid, kReuid, kRegid, kResuid, kResgid };
int set_credentials(Credential which, unsigned a, unsigned b, unsigned c);
int setgroups(size_t n, const gid_t* groups);
// longjmp and its variants: leaves the handlers being jumped out of, then
// jumps with glibc's function of that name.
enum class Longjmp { kLongjmp, kSiglongjmp, kUnderscore, kChecked };
[[noreturn]] void longjmp(Longjmp which, struct __jmp_buf_tag env[1], int val);

}  // namespace unblock::rt
