// Signal hooks: the sigaction family (and the BSD/System V/XSI wrappers glibc
// implements with its internal sigaction, which a hook of sigaction alone
// would miss), masks, sending (pthread_kill, pthread_sigqueue, raise, kill,
// sigqueue), waiting (sigwait*, sigsuspend, pause, sigpause), sigpending,
// sigaltstack, signalfd; the calls whose effect depends on the OS thread's
// real mask (exec*, posix_spawn*, system, popen); the setxid family; and
// longjmp/siglongjmp out of a handler.
//
// Each is a thin shell over runtime/signals.h: a call from a fiber of a
// running runtime is emulated; anything else (a plain thread, a forked
// child, before the first thread) goes to the real function, except the
// sigaction family, which keeps using the emulated table once it exists
// (the kernel holds trampolines for the program's handlers from then on).
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <climits>

#include "hooks/hook.h"
#include "hooks/signal.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"

using namespace unblock;

extern "C" char** environ;
extern "C" void __longjmp_chk(struct __jmp_buf_tag env[1], int val) __attribute__((noreturn));

namespace {

// Real functions outside shim/real_symbols.def, resolved on first use (never
// first from a signal handler: these hooks are not async-signal-safe before
// their first call, which is fine for everything here but longjmp, resolved
// when the runtime starts a first fiber's call path anyway).
template <typename Fn>
Fn next(std::atomic<Fn>& slot, const char* name) {
  Fn f = slot.load(std::memory_order_relaxed);
  if (__builtin_expect(f == nullptr, 0)) {
    f = reinterpret_cast<Fn>(real::resolve(name));
    if (!f) __builtin_trap();
    slot.store(f, std::memory_order_relaxed);
  }
  return f;
}
#define REAL_NEXT(type, name)                      \
  type real_##name() {                             \
    static std::atomic<type> slot{nullptr};        \
    return next(slot, #name);                      \
  }

using KillFn = int (*)(pid_t, int);
using SigqueueFn = int (*)(pid_t, int, const union sigval);
using PthreadSigqueueFn = int (*)(pthread_t, int, const union sigval);
using SigpendingFn = int (*)(sigset_t*);
using SigaltstackFn = int (*)(const stack_t*, stack_t*);
using SignalfdFn = int (*)(int, const sigset_t*, int);
using ExecvpeFn = int (*)(const char*, char* const*, char* const*);
using FexecveFn = int (*)(int, char* const*, char* const*);
using ExecveatFn = int (*)(int, const char*, char* const*, char* const*, int);
using SpawnFn = int (*)(pid_t*, const char*, const posix_spawn_file_actions_t*, const posix_spawnattr_t*,
                        char* const*, char* const*);
using LongjmpFn = void (*)(struct __jmp_buf_tag*, int);

REAL_NEXT(KillFn, kill)
REAL_NEXT(SigqueueFn, sigqueue)
REAL_NEXT(PthreadSigqueueFn, pthread_sigqueue)
REAL_NEXT(SigpendingFn, sigpending)
REAL_NEXT(SigaltstackFn, sigaltstack)
REAL_NEXT(SignalfdFn, signalfd)
REAL_NEXT(ExecvpeFn, execvpe)
REAL_NEXT(FexecveFn, fexecve)
REAL_NEXT(ExecveatFn, execveat)
REAL_NEXT(SpawnFn, posix_spawn)
REAL_NEXT(SpawnFn, posix_spawnp)
REAL_NEXT(LongjmpFn, longjmp)
REAL_NEXT(LongjmpFn, siglongjmp)
REAL_NEXT(LongjmpFn, _longjmp)
REAL_NEXT(LongjmpFn, __longjmp_chk)

// The calling fiber when the signal emulation applies to this call.
Fiber* sig_fiber() {
  Fiber* f = hooks::fiber_for_call();
  return f && signals::table_ready() ? f : nullptr;
}

bool valid_signal(int sig) { return sig >= 1 && sig < NSIG; }
bool internal_signal(int sig) { return sig == 32 || sig == 33; }  // SIGCANCEL, SIGSETXID

int do_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!signals::table_ready()) return real::sigaction(sig, act, old);
  int r = signals::action(sig, act, old);
  return r < 0 ? hooks::fail(-r) : 0;
}

int do_sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  Fiber* f = sig_fiber();
  if (!f) return real::sigprocmask(how, set, old);
  int r = signals::change_mask(f, how, set, old);
  return r < 0 ? hooks::fail(-r) : 0;
}

// Signals for which siginterrupt() asked for EINTR (glibc keeps its own copy,
// which its siginterrupt, not called any more, would update).
std::atomic<uint64_t> g_sigintr{0};

sighandler_t bsd_signal_common(int sig, sighandler_t handler) {
  if (handler == SIG_ERR || !valid_signal(sig) || internal_signal(sig)) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction act {}, old{};
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  act.sa_flags = (g_sigintr.load(std::memory_order_relaxed) & signals::bit(sig)) ? 0 : SA_RESTART;
  if (do_sigaction(sig, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}

sighandler_t sysv_signal_common(int sig, sighandler_t handler) {
  if (handler == SIG_ERR || !valid_signal(sig)) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction act {}, old{};
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  act.sa_flags = SA_RESETHAND | SA_NODEFER;
  if (do_sigaction(sig, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}

int one_signal_mask(int how, int sig) {
  sigset_t set;
  sigemptyset(&set);
  if (sigaddset(&set, sig) < 0) return -1;
  return do_sigprocmask(how, &set, nullptr);
}

siginfo_t make_info(int sig, int code) {
  siginfo_t si{};
  si.si_signo = sig;
  si.si_code = code;
  si.si_pid = getpid();
  si.si_uid = getuid();
  return si;
}

// The fiber behind t if the emulation applies to a signal sent to it.
Fiber* target_fiber(pthread_t t) {
  if (!sched::active() || !signals::table_ready()) return nullptr;
  return Fiber::from_thread(t);
}

}  // namespace

int hooks::thread_signal(Fiber* target, const siginfo_t& si) {
  int sig = si.si_signo;
  if (sig < 0 || sig >= NSIG || internal_signal(sig)) return EINVAL;
  if (sig == 0) return 0;  // exists (or ended and not yet joined: glibc 2.34+ says 0 too)
  if (sig == SIGKILL || sig == SIGSTOP) return real_kill()(getpid(), sig) == 0 ? 0 : errno;
  return signals::send_to_fiber(target, si);
}

// ---- dispositions -----------------------------------------------------------------

UNBLOCK_HOOK int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return do_sigaction(sig, act, old);
}
UNBLOCK_HOOK int __sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return do_sigaction(sig, act, old);
}

UNBLOCK_HOOK sighandler_t signal(int sig, sighandler_t handler) { return bsd_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t bsd_signal(int sig, sighandler_t handler) { return bsd_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t ssignal(int sig, sighandler_t handler) { return bsd_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t sysv_signal(int sig, sighandler_t handler) { return sysv_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t __sysv_signal(int sig, sighandler_t handler) { return sysv_signal_common(sig, handler); }

UNBLOCK_HOOK int siginterrupt(int sig, int interrupt) {
  struct sigaction act;
  if (!valid_signal(sig) || internal_signal(sig)) return hooks::fail(EINVAL);
  if (do_sigaction(sig, nullptr, &act) < 0) return -1;
  if (interrupt) {
    g_sigintr.fetch_or(signals::bit(sig), std::memory_order_relaxed);
    act.sa_flags &= ~SA_RESTART;
  } else {
    g_sigintr.fetch_and(~signals::bit(sig), std::memory_order_relaxed);
    act.sa_flags |= SA_RESTART;
  }
  return do_sigaction(sig, &act, nullptr) < 0 ? -1 : 0;
}

UNBLOCK_HOOK sighandler_t sigset(int sig, sighandler_t disp) {
  sigset_t set, oset;
  sigemptyset(&set);
  if (!valid_signal(sig) || sigaddset(&set, sig) < 0) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction act {}, old{};
  if (disp == SIG_HOLD) {
    if (do_sigprocmask(SIG_BLOCK, &set, &oset) < 0) return SIG_ERR;
    if (sigismember(&oset, sig)) return SIG_HOLD;
    if (do_sigaction(sig, nullptr, &old) < 0) return SIG_ERR;
    return old.sa_handler;
  }
  act.sa_handler = disp;
  sigemptyset(&act.sa_mask);
  if (do_sigaction(sig, &act, &old) < 0) return SIG_ERR;
  if (do_sigprocmask(SIG_UNBLOCK, &set, &oset) < 0) return SIG_ERR;
  return sigismember(&oset, sig) ? SIG_HOLD : old.sa_handler;
}

UNBLOCK_HOOK int sighold(int sig) { return one_signal_mask(SIG_BLOCK, sig); }
UNBLOCK_HOOK int sigrelse(int sig) { return one_signal_mask(SIG_UNBLOCK, sig); }

UNBLOCK_HOOK int sigignore(int sig) {
  struct sigaction act {};
  act.sa_handler = SIG_IGN;
  sigemptyset(&act.sa_mask);
  return do_sigaction(sig, &act, nullptr);
}

// ---- masks ------------------------------------------------------------------------

UNBLOCK_HOOK int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  Fiber* f = sig_fiber();
  if (!f) return real::pthread_sigmask(how, set, old);
  int r = signals::change_mask(f, how, set, old);
  return r < 0 ? -r : 0;
}

UNBLOCK_HOOK int sigprocmask(int how, const sigset_t* set, sigset_t* old) { return do_sigprocmask(how, set, old); }

// BSD masks of the first 32 signals, as int.
UNBLOCK_HOOK int sigblock(int mask) {
  sigset_t set, old;
  sigemptyset(&set);
  for (int s = 1; s < 32; ++s) {
    if (mask & (1u << (s - 1))) sigaddset(&set, s);
  }
  if (do_sigprocmask(SIG_BLOCK, &set, &old) < 0) return -1;
  int r = 0;
  for (int s = 1; s < 32; ++s) {
    if (sigismember(&old, s)) r |= 1 << (s - 1);
  }
  return r;
}

UNBLOCK_HOOK int sigsetmask(int mask) {
  sigset_t set, old;
  sigemptyset(&set);
  for (int s = 1; s < 32; ++s) {
    if (mask & (1u << (s - 1))) sigaddset(&set, s);
  }
  if (do_sigprocmask(SIG_SETMASK, &set, &old) < 0) return -1;
  int r = 0;
  for (int s = 1; s < 32; ++s) {
    if (sigismember(&old, s)) r |= 1 << (s - 1);
  }
  return r;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
UNBLOCK_HOOK int siggetmask(void) { return sigblock(0); }
#pragma GCC diagnostic pop

// ---- sending ----------------------------------------------------------------------

UNBLOCK_HOOK int pthread_kill(pthread_t t, int sig) {
  Fiber* target = target_fiber(t);
  if (!target) return real::pthread_kill(t, sig);
  return hooks::thread_signal(target, make_info(sig, SI_TKILL));
}

UNBLOCK_HOOK int pthread_sigqueue(pthread_t t, int sig, const union sigval value) {
  Fiber* target = target_fiber(t);
  if (!target) return real_pthread_sigqueue()(t, sig, value);
  siginfo_t si = make_info(sig, SI_QUEUE);
  si.si_value = value;
  return hooks::thread_signal(target, si);
}

UNBLOCK_HOOK int raise(int sig) {
  Fiber* f = sig_fiber();
  if (!f) return real::raise(sig);
  int r = hooks::thread_signal(f, make_info(sig, SI_TKILL));
  return r ? hooks::fail(r) : 0;
}
UNBLOCK_HOOK int gsignal(int sig) { return raise(sig); }

UNBLOCK_HOOK int kill(pid_t pid, int sig) {
  Fiber* f = sig_fiber();
  if (f && pid == getpid() && valid_signal(sig) && signals::send_to_process(f, make_info(sig, SI_USER))) return 0;
  return real_kill()(pid, sig);
}

UNBLOCK_HOOK int sigqueue(pid_t pid, int sig, const union sigval value) {
  Fiber* f = sig_fiber();
  if (f && pid == getpid() && valid_signal(sig)) {
    siginfo_t si = make_info(sig, SI_QUEUE);
    si.si_value = value;
    if (signals::send_to_process(f, si)) return 0;
  }
  return real_sigqueue()(pid, sig, value);
}

// ---- waiting ----------------------------------------------------------------------

UNBLOCK_HOOK int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  Fiber* f = sig_fiber();
  if (!f) return real::sigwaitinfo(set, info);
  siginfo_t local;
  int r = signals::wait(f, set, info ? info : &local, Deadline::never());
  return r < 0 ? hooks::fail(-r) : r;
}

UNBLOCK_HOOK int sigtimedwait(const sigset_t* set, siginfo_t* info, const struct timespec* ts) {
  Fiber* f = sig_fiber();
  if (!f) return real::sigtimedwait(set, info, ts);
  Deadline d = Deadline::never();
  if (ts) {
    if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0) return hooks::fail(EINVAL);
    int64_t ns = ts->tv_sec > INT64_MAX / 1000000000 - 1 ? INT64_MAX / 2 : ts->tv_sec * 1000000000LL + ts->tv_nsec;
    d = Deadline::after_ns(ns);
  }
  siginfo_t local;
  int r = signals::wait(f, set, info ? info : &local, d);
  return r < 0 ? hooks::fail(-r) : r;
}

UNBLOCK_HOOK int sigwait(const sigset_t* set, int* sig) {
  Fiber* f = sig_fiber();
  if (!f) return real::sigwait(set, sig);
  siginfo_t si;
  int r;
  do {
    r = signals::wait(f, set, &si, Deadline::never());
  } while (r == -EINTR);  // as glibc: sigwait is not interrupted
  if (r < 0) return -r;
  *sig = r;
  return 0;
}

UNBLOCK_HOOK int sigsuspend(const sigset_t* mask) {
  Fiber* f = sig_fiber();
  if (!f) return real::sigsuspend(mask);
  return hooks::fail(-signals::suspend(f, mask));
}
UNBLOCK_HOOK int __sigsuspend(const sigset_t* mask) { return sigsuspend(mask); }

UNBLOCK_HOOK int pause(void) {
  Fiber* f = sig_fiber();
  if (!f) return real::pause();
  return hooks::fail(-signals::suspend(f, nullptr));
}

// sigpause(mask) is the BSD call (an int mask); <signal.h> maps the XSI
// sigpause(sig) to __xpg_sigpause.
UNBLOCK_HOOK int __sigpause(int sig_or_mask, int is_sig) {
  sigset_t set;
  if (is_sig) {
    if (do_sigprocmask(SIG_BLOCK, nullptr, &set) < 0 || sigdelset(&set, sig_or_mask) < 0) return -1;
  } else {
    sigemptyset(&set);
    for (int s = 1; s < 32; ++s) {
      if (sig_or_mask & (1u << (s - 1))) sigaddset(&set, s);
    }
  }
  return sigsuspend(&set);
}
// <signal.h> may have renamed sigpause to __xpg_sigpause: define both by
// their symbol names.
UNBLOCK_HOOK int unblock_bsd_sigpause(int mask) __asm__("sigpause");
UNBLOCK_HOOK int unblock_bsd_sigpause(int mask) { return __sigpause(mask, 0); }
UNBLOCK_HOOK int unblock_xpg_sigpause(int sig) __asm__("__xpg_sigpause");
UNBLOCK_HOOK int unblock_xpg_sigpause(int sig) { return __sigpause(sig, 1); }

UNBLOCK_HOOK int sigpending(sigset_t* set) {
  Fiber* f = sig_fiber();
  if (!f) return real_sigpending()(set);
  signals::pending(f, set);
  return 0;
}

UNBLOCK_HOOK int sigaltstack(const stack_t* ss, stack_t* old) {
  Fiber* f = sig_fiber();
  if (!f) return real_sigaltstack()(ss, old);
  int r = signals::altstack(f, ss, old);
  return r < 0 ? hooks::fail(-r) : 0;
}

UNBLOCK_HOOK int signalfd(int fd, const sigset_t* mask, int flags) {
  int r = real_signalfd()(fd, mask, flags);
  if (r >= 0) signals::note_program_signalfd(mask);
  return r;
}

// ---- calls whose child inherits the OS thread's real mask ------------------------------

namespace {

struct ExecCall {
  enum Kind { kExecve, kExecvpe, kFexecve, kExecveat, kSpawn, kSpawnp, kSystem, kPopen } kind;
  const char* path;
  char* const* argv;
  char* const* envp;
  int fd;
  int flags;
  pid_t* pid;
  const posix_spawn_file_actions_t* actions;
  const posix_spawnattr_t* attr;
  const char* mode;
  FILE* stream;
};

long run_exec_call(void* arg) {
  auto* c = static_cast<ExecCall*>(arg);
  switch (c->kind) {
    case ExecCall::kExecve: return real::execve(c->path, c->argv, c->envp);
    case ExecCall::kExecvpe: return real_execvpe()(c->path, c->argv, c->envp);
    case ExecCall::kFexecve: return real_fexecve()(c->fd, c->argv, c->envp);
    case ExecCall::kExecveat: return real_execveat()(c->fd, c->path, c->argv, c->envp, c->flags);
    case ExecCall::kSpawn: return real_posix_spawn()(c->pid, c->path, c->actions, c->attr, c->argv, c->envp);
    case ExecCall::kSpawnp: return real_posix_spawnp()(c->pid, c->path, c->actions, c->attr, c->argv, c->envp);
    case ExecCall::kSystem: return real::system(c->path);
    case ExecCall::kPopen: c->stream = real::popen(c->path, c->mode); return 0;
  }
  return -1;
}

// Runs the call with the OS thread's real mask set to the fiber's, so the new
// program (or child) starts with the mask the thread had.
long exec_call(ExecCall& c) {
  Fiber* f = sig_fiber();
  if (!f) return run_exec_call(&c);
  return signals::with_program_mask(f, run_exec_call, &c);
}

int exec_path(const char* path, char* const* argv, char* const* envp, bool search) {
  ExecCall c{};
  c.kind = search ? ExecCall::kExecvpe : ExecCall::kExecve;
  c.path = path;
  c.argv = argv;
  c.envp = envp;
  return static_cast<int>(exec_call(c));
}

// execl-style argument lists, collected on the stack (execl is async-signal-safe).
#define COLLECT_ARGS(first, ap, argv_name, count_name)    \
  size_t count_name = 1;                                   \
  {                                                        \
    va_list cp;                                            \
    va_copy(cp, ap);                                       \
    while (va_arg(cp, char*)) ++count_name;                \
    va_end(cp);                                            \
  }                                                        \
  char* argv_name[count_name + 1];                         \
  argv_name[0] = const_cast<char*>(first);                 \
  for (size_t i_ = 1; i_ <= count_name; ++i_) argv_name[i_] = va_arg(ap, char*);

}  // namespace

UNBLOCK_HOOK int execve(const char* path, char* const argv[], char* const envp[]) {
  return exec_path(path, argv, envp, false);
}
UNBLOCK_HOOK int execv(const char* path, char* const argv[]) { return exec_path(path, argv, environ, false); }
UNBLOCK_HOOK int execvp(const char* file, char* const argv[]) { return exec_path(file, argv, environ, true); }
UNBLOCK_HOOK int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return exec_path(file, argv, envp, true);
}

UNBLOCK_HOOK int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  COLLECT_ARGS(arg, ap, argv, n)
  va_end(ap);
  return exec_path(path, argv, environ, false);
}

UNBLOCK_HOOK int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  COLLECT_ARGS(arg, ap, argv, n)
  va_end(ap);
  return exec_path(file, argv, environ, true);
}

UNBLOCK_HOOK int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  COLLECT_ARGS(arg, ap, argv, n)
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return exec_path(path, argv, envp, false);
}

UNBLOCK_HOOK int fexecve(int fd, char* const argv[], char* const envp[]) {
  ExecCall c{};
  c.kind = ExecCall::kFexecve;
  c.fd = fd;
  c.argv = argv;
  c.envp = envp;
  return static_cast<int>(exec_call(c));
}

UNBLOCK_HOOK int execveat(int dirfd, const char* path, char* const argv[], char* const envp[], int flags) {
  ExecCall c{};
  c.kind = ExecCall::kExecveat;
  c.fd = dirfd;
  c.path = path;
  c.argv = argv;
  c.envp = envp;
  c.flags = flags;
  return static_cast<int>(exec_call(c));
}

namespace {
int spawn_common(ExecCall::Kind kind, pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                 const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  ExecCall c{};
  c.kind = kind;
  c.pid = pid;
  c.path = path;
  c.actions = actions;
  c.attr = attr;
  c.argv = argv;
  c.envp = envp;
  short flags = 0;
  if (attr && posix_spawnattr_getflags(attr, &flags) == 0 && (flags & POSIX_SPAWN_SETSIGMASK)) {
    return static_cast<int>(run_exec_call(&c));  // the child's mask is given
  }
  return static_cast<int>(exec_call(c));
}
}  // namespace

UNBLOCK_HOOK int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                             const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return spawn_common(ExecCall::kSpawn, pid, path, actions, attr, argv, envp);
}

UNBLOCK_HOOK int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                              const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return spawn_common(ExecCall::kSpawnp, pid, file, actions, attr, argv, envp);
}

UNBLOCK_HOOK int system(const char* command) {
  ExecCall c{};
  c.kind = ExecCall::kSystem;
  c.path = command;
  return static_cast<int>(exec_call(c));
}

UNBLOCK_HOOK FILE* popen(const char* command, const char* mode) {
  ExecCall c{};
  c.kind = ExecCall::kPopen;
  c.path = command;
  c.mode = mode;
  exec_call(c);
  return c.stream;
}

// ---- credentials ------------------------------------------------------------------

namespace {
struct Xid {
  int which;
  long a, b, c;
  size_t n;
  const gid_t* groups;
};

long run_setxid(void* arg) {
  auto* x = static_cast<Xid*>(arg);
  switch (x->which) {
    case 0: return real::setuid(static_cast<uid_t>(x->a));
    case 1: return real::setgid(static_cast<gid_t>(x->a));
    case 2: return real::seteuid(static_cast<uid_t>(x->a));
    case 3: return real::setegid(static_cast<gid_t>(x->a));
    case 4: return real::setreuid(static_cast<uid_t>(x->a), static_cast<uid_t>(x->b));
    case 5: return real::setregid(static_cast<gid_t>(x->a), static_cast<gid_t>(x->b));
    case 6: return real::setresuid(static_cast<uid_t>(x->a), static_cast<uid_t>(x->b), static_cast<uid_t>(x->c));
    case 7: return real::setresgid(static_cast<gid_t>(x->a), static_cast<gid_t>(x->b), static_cast<gid_t>(x->c));
    default: return real::setgroups(x->n, x->groups);
  }
}

// glibc applies a credential change to every thread it knows (SIGSETXID);
// from a fiber it must run as the carrier glibc knows this OS thread by.
int setxid(Xid x) {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return static_cast<int>(run_setxid(&x));
  return static_cast<int>(signals::as_carrier(f, run_setxid, &x));
}
}  // namespace

UNBLOCK_HOOK int setuid(uid_t u) { return setxid(Xid{0, u, 0, 0, 0, nullptr}); }
UNBLOCK_HOOK int setgid(gid_t g) { return setxid(Xid{1, g, 0, 0, 0, nullptr}); }
UNBLOCK_HOOK int seteuid(uid_t u) { return setxid(Xid{2, u, 0, 0, 0, nullptr}); }
UNBLOCK_HOOK int setegid(gid_t g) { return setxid(Xid{3, g, 0, 0, 0, nullptr}); }
UNBLOCK_HOOK int setreuid(uid_t r, uid_t e) { return setxid(Xid{4, r, e, 0, 0, nullptr}); }
UNBLOCK_HOOK int setregid(gid_t r, gid_t e) { return setxid(Xid{5, r, e, 0, 0, nullptr}); }
UNBLOCK_HOOK int setresuid(uid_t r, uid_t e, uid_t s) { return setxid(Xid{6, r, e, s, 0, nullptr}); }
UNBLOCK_HOOK int setresgid(gid_t r, gid_t e, gid_t s) { return setxid(Xid{7, r, e, s, 0, nullptr}); }
UNBLOCK_HOOK int setgroups(size_t n, const gid_t* groups) { return setxid(Xid{8, 0, 0, 0, n, groups}); }

// ---- leaving a handler with longjmp -----------------------------------------------------

namespace {
inline void note_longjmp(struct __jmp_buf_tag* env) {
  Fiber* f = hooks::fiber_for_call();
  if (f && f->sig.handler_depth > 0) signals::before_longjmp(f, env->__jmpbuf, env->__mask_was_saved != 0);
}
}  // namespace

UNBLOCK_HOOK void longjmp(struct __jmp_buf_tag env[1], int val) {
  note_longjmp(env);
  real_longjmp()(env, val);
  __builtin_unreachable();
}
UNBLOCK_HOOK void siglongjmp(struct __jmp_buf_tag env[1], int val) {
  note_longjmp(env);
  real_siglongjmp()(env, val);
  __builtin_unreachable();
}
UNBLOCK_HOOK void _longjmp(struct __jmp_buf_tag env[1], int val) {
  note_longjmp(env);
  real__longjmp()(env, val);
  __builtin_unreachable();
}
UNBLOCK_HOOK void __longjmp_chk(struct __jmp_buf_tag env[1], int val) {
  note_longjmp(env);
  real___longjmp_chk()(env, val);
  __builtin_unreachable();
}
