// The signal calls of runtime/api.h: the sigaction family (and the BSD/
// System V/XSI wrappers glibc implements with its internal sigaction, which
// a hook of sigaction alone would miss), masks, sending (pthread_kill,
// pthread_sigqueue, raise, kill, sigqueue), waiting (sigwait*, sigsuspend,
// pause, sigpause), sigpending, sigaltstack, signalfd; the calls whose effect
// depends on the OS thread's real mask (exec*, posix_spawn*, system, popen);
// the setxid family; and longjmp/siglongjmp out of a handler.
//
// Each is a thin shell over runtime/signals.h: a call from a fiber of a
// running runtime is emulated; anything else (a plain thread, a forked
// child, before the first thread) goes to the real function, except the
// sigaction family, which keeps using the emulated table once it exists
// (the kernel holds trampolines for the program's handlers from then on).
// Must not: call an exported hook (real:: only); be called from a signal
// handler the runtime did not start.
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>

#include "runtime/api.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "runtime/threads.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock {
namespace {

// A libc result (-1 and errno on failure) as a result or -errno.
int neg_errno(long r) { return r < 0 ? -errno : static_cast<int>(r); }

// The calling fiber when the signal emulation applies to this call.
Fiber* sig_fiber() {
  Fiber* f = Fiber::current();
  return f && sched::active() && signals::table_ready() ? f : nullptr;
}

bool valid_signal(int sig) { return sig >= 1 && sig < NSIG; }
bool internal_signal(int sig) { return sig == 32 || sig == 33; }  // SIGCANCEL, SIGSETXID

int do_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!signals::table_ready()) return neg_errno(real::sigaction(sig, act, old));
  return signals::action(sig, act, old);
}

int do_sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::sigprocmask(how, set, old));
  return signals::change_mask(f, how, set, old);
}

// Signals for which siginterrupt() asked for EINTR (glibc keeps its own copy,
// which its siginterrupt, not called any more, would update).
std::atomic<uint64_t> g_sigintr{0};

siginfo_t make_info(int sig, int code) {
  siginfo_t si{};
  si.si_signo = sig;
  si.si_code = code;
  si.si_pid = static_cast<pid_t>(raw_syscall(SYS_getpid));
  si.si_uid = static_cast<uid_t>(raw_syscall(SYS_getuid));
  return si;
}

// The fiber behind t if the emulation applies to a signal sent to it.
Fiber* target_fiber(pthread_t t) {
  if (!sched::active() || !signals::table_ready()) return nullptr;
  return Fiber::from_thread(t);
}

// ---- calls whose child inherits the OS thread's real mask ----

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
    case ExecCall::kExecvpe: return real::execvpe(c->path, c->argv, c->envp);
    case ExecCall::kFexecve: return real::fexecve(c->fd, c->argv, c->envp);
    case ExecCall::kExecveat: return real::execveat(c->fd, c->path, c->argv, c->envp, c->flags);
    case ExecCall::kSpawn: return real::posix_spawn(c->pid, c->path, c->actions, c->attr, c->argv, c->envp);
    case ExecCall::kSpawnp: return real::posix_spawnp(c->pid, c->path, c->actions, c->attr, c->argv, c->envp);
    case ExecCall::kSystem: return real::system(c->path);
    case ExecCall::kPopen: c->stream = real::popen(c->path, c->mode); return 0;
  }
  return -1;
}

// Runs the call with the OS thread's real mask set to the fiber's, so the new
// program (or child) starts with the mask the thread had. errno as the call
// left it.
long exec_call(ExecCall& c) {
  Fiber* f = sig_fiber();
  if (!f) return run_exec_call(&c);
  return signals::with_program_mask(f, run_exec_call, &c);
}

int exec_result(ExecCall& c) { return neg_errno(exec_call(c)); }

// ---- credentials ----

struct Xid {
  rt::Credential which;
  unsigned a, b, c;
  size_t n;
  const gid_t* groups;
  bool is_groups;
};

long run_setxid(void* arg) {
  auto* x = static_cast<Xid*>(arg);
  if (x->is_groups) return real::setgroups(x->n, x->groups);
  switch (x->which) {
    case rt::Credential::kUid: return real::setuid(x->a);
    case rt::Credential::kGid: return real::setgid(x->a);
    case rt::Credential::kEuid: return real::seteuid(x->a);
    case rt::Credential::kEgid: return real::setegid(x->a);
    case rt::Credential::kReuid: return real::setreuid(x->a, x->b);
    case rt::Credential::kRegid: return real::setregid(x->a, x->b);
    case rt::Credential::kResuid: return real::setresuid(x->a, x->b, x->c);
    case rt::Credential::kResgid: return real::setresgid(x->a, x->b, x->c);
  }
  errno = EINVAL;
  return -1;
}

// glibc applies a credential change to every thread it knows (SIGSETXID);
// from a fiber it must run as the carrier glibc knows this OS thread by.
int setxid(Xid x) {
  Fiber* f = Fiber::current();
  if (!f || !sched::active()) return neg_errno(run_setxid(&x));
  return neg_errno(signals::as_carrier(f, run_setxid, &x));
}

}  // namespace

namespace threads {

int thread_signal(Fiber* target, const siginfo_t& si) {
  int sig = si.si_signo;
  if (sig < 0 || sig >= NSIG || internal_signal(sig)) return EINVAL;
  if (sig == 0) return 0;  // exists (or ended and not yet joined: glibc 2.34+ says 0 too)
  if (sig == SIGKILL || sig == SIGSTOP) return real::kill(static_cast<pid_t>(raw_syscall(SYS_getpid)), sig) == 0 ? 0 : errno;
  return signals::send_to_fiber(target, si);
}

}  // namespace threads

// ---- runtime/api.h ---------------------------------------------------------------------

namespace rt {

// -- dispositions --

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) { return do_sigaction(sig, act, old); }

int signal_bsd(int sig, sighandler_t handler, sighandler_t* prev) {
  if (handler == SIG_ERR || !valid_signal(sig) || internal_signal(sig)) return -EINVAL;
  struct sigaction act {}, old{};
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  act.sa_flags = (g_sigintr.load(std::memory_order_relaxed) & signals::bit(sig)) ? 0 : SA_RESTART;
  if (int r = do_sigaction(sig, &act, &old)) return r;
  *prev = old.sa_handler;
  return 0;
}

int signal_sysv(int sig, sighandler_t handler, sighandler_t* prev) {
  if (handler == SIG_ERR || !valid_signal(sig)) return -EINVAL;
  struct sigaction act {}, old{};
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  act.sa_flags = SA_RESETHAND | SA_NODEFER;
  if (int r = do_sigaction(sig, &act, &old)) return r;
  *prev = old.sa_handler;
  return 0;
}

int siginterrupt(int sig, int interrupt) {
  struct sigaction act;
  if (!valid_signal(sig) || internal_signal(sig)) return -EINVAL;
  if (int r = do_sigaction(sig, nullptr, &act)) return r;
  if (interrupt) {
    g_sigintr.fetch_or(signals::bit(sig), std::memory_order_relaxed);
    act.sa_flags &= ~SA_RESTART;
  } else {
    g_sigintr.fetch_and(~signals::bit(sig), std::memory_order_relaxed);
    act.sa_flags |= SA_RESTART;
  }
  return do_sigaction(sig, &act, nullptr);
}

int sigset(int sig, sighandler_t disp, sighandler_t* prev) {
  sigset_t set, oset;
  sigemptyset(&set);
  if (!valid_signal(sig) || sigaddset(&set, sig) < 0) return -EINVAL;
  struct sigaction act {}, old{};
  if (disp == SIG_HOLD) {
    if (int r = do_sigprocmask(SIG_BLOCK, &set, &oset)) return r;
    if (sigismember(&oset, sig)) {
      *prev = SIG_HOLD;
      return 0;
    }
    if (int r = do_sigaction(sig, nullptr, &old)) return r;
    *prev = old.sa_handler;
    return 0;
  }
  act.sa_handler = disp;
  sigemptyset(&act.sa_mask);
  if (int r = do_sigaction(sig, &act, &old)) return r;
  if (int r = do_sigprocmask(SIG_UNBLOCK, &set, &oset)) return r;
  *prev = sigismember(&oset, sig) ? SIG_HOLD : old.sa_handler;
  return 0;
}

// -- masks --

int sigprocmask(int how, const sigset_t* set, sigset_t* old) { return do_sigprocmask(how, set, old); }

int thread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  Fiber* f = sig_fiber();
  if (!f) return -real::pthread_sigmask(how, set, old);
  return signals::change_mask(f, how, set, old);
}

int sigmask_one(int how, int sig) {
  sigset_t set;
  sigemptyset(&set);
  if (sigaddset(&set, sig) < 0) return -EINVAL;
  return do_sigprocmask(how, &set, nullptr);
}

// -- sending --

int thread_kill(pthread_t t, int sig) {
  Fiber* target = target_fiber(t);
  if (!target) return -real::pthread_kill(t, sig);
  return -threads::thread_signal(target, make_info(sig, SI_TKILL));
}

int thread_sigqueue(pthread_t t, int sig, const sigval value) {
  Fiber* target = target_fiber(t);
  if (!target) return -real::pthread_sigqueue(t, sig, value);
  siginfo_t si = make_info(sig, SI_QUEUE);
  si.si_value = value;
  return -threads::thread_signal(target, si);
}

int raise(int sig) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::raise(sig));
  return -threads::thread_signal(f, make_info(sig, SI_TKILL));
}

int kill(pid_t pid, int sig) {
  Fiber* f = sig_fiber();
  if (f && pid == static_cast<pid_t>(raw_syscall(SYS_getpid)) && valid_signal(sig) &&
      signals::send_to_process(f, make_info(sig, SI_USER))) {
    return 0;
  }
  return neg_errno(real::kill(pid, sig));
}

int sigqueue(pid_t pid, int sig, const sigval value) {
  Fiber* f = sig_fiber();
  if (f && pid == static_cast<pid_t>(raw_syscall(SYS_getpid)) && valid_signal(sig)) {
    siginfo_t si = make_info(sig, SI_QUEUE);
    si.si_value = value;
    if (signals::send_to_process(f, si)) return 0;
  }
  return neg_errno(real::sigqueue(pid, sig, value));
}

// -- waiting --

int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::sigwaitinfo(set, info));
  siginfo_t local;
  return signals::wait(f, set, info ? info : &local, Deadline::never());
}

int sigtimedwait(const sigset_t* set, siginfo_t* info, const timespec* ts) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::sigtimedwait(set, info, ts));
  Deadline d = Deadline::never();
  if (ts) {
    if (ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000 || ts->tv_sec < 0) return -EINVAL;
    d = Deadline::after(*ts);
  }
  siginfo_t local;
  return signals::wait(f, set, info ? info : &local, d);
}

int sigwait(const sigset_t* set, int* sig) {
  Fiber* f = sig_fiber();
  if (!f) return -real::sigwait(set, sig);
  siginfo_t si;
  int r;
  do {
    r = signals::wait(f, set, &si, Deadline::never());
  } while (r == -EINTR);  // as glibc: sigwait is not interrupted
  if (r < 0) return r;
  *sig = r;
  return 0;
}

int sigsuspend(const sigset_t* mask) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::sigsuspend(mask));
  return signals::suspend(f, mask);
}

int pause() {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::pause());
  return signals::suspend(f, nullptr);
}

int sigpause(int sig_or_mask, int is_sig) {
  sigset_t set;
  if (is_sig) {
    if (int r = do_sigprocmask(SIG_BLOCK, nullptr, &set)) return r;
    if (sigdelset(&set, sig_or_mask) < 0) return -EINVAL;
  } else {
    sigemptyset(&set);
    for (int s = 1; s < 32; ++s) {
      if (sig_or_mask & (1u << (s - 1))) sigaddset(&set, s);
    }
  }
  return rt::sigsuspend(&set);
}

int sigpending(sigset_t* set) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::sigpending(set));
  signals::pending(f, set);
  return 0;
}

int sigaltstack(const stack_t* ss, stack_t* old) {
  Fiber* f = sig_fiber();
  if (!f) return neg_errno(real::sigaltstack(ss, old));
  return signals::altstack(f, ss, old);
}

int signalfd(int fd, const sigset_t* mask, int flags) {
  int r = real::signalfd(fd, mask, flags);
  if (r < 0) return -errno;
  signals::note_program_signalfd(mask);
  return r;
}

// -- exec and friends --

int execve(const char* path, char* const argv[], char* const envp[]) {
  ExecCall c{};
  c.kind = ExecCall::kExecve;
  c.path = path;
  c.argv = argv;
  c.envp = envp;
  return exec_result(c);
}

int execvpe(const char* file, char* const argv[], char* const envp[]) {
  ExecCall c{};
  c.kind = ExecCall::kExecvpe;
  c.path = file;
  c.argv = argv;
  c.envp = envp;
  return exec_result(c);
}

int fexecve(int fd, char* const argv[], char* const envp[]) {
  ExecCall c{};
  c.kind = ExecCall::kFexecve;
  c.fd = fd;
  c.argv = argv;
  c.envp = envp;
  return exec_result(c);
}

int execveat(int dirfd, const char* path, char* const argv[], char* const envp[], int flags) {
  ExecCall c{};
  c.kind = ExecCall::kExecveat;
  c.fd = dirfd;
  c.path = path;
  c.argv = argv;
  c.envp = envp;
  c.flags = flags;
  return exec_result(c);
}

int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions, const posix_spawnattr_t* attr,
                char* const argv[], char* const envp[], bool search) {
  ExecCall c{};
  c.kind = search ? ExecCall::kSpawnp : ExecCall::kSpawn;
  c.pid = pid;
  c.path = path;
  c.actions = actions;
  c.attr = attr;
  c.argv = argv;
  c.envp = envp;
  short flags = 0;
  if (attr && posix_spawnattr_getflags(attr, &flags) == 0 && (flags & POSIX_SPAWN_SETSIGMASK)) {
    return -static_cast<int>(run_exec_call(&c));  // the child's mask is given
  }
  return -static_cast<int>(exec_call(c));
}

int system(const char* command) {
  ExecCall c{};
  c.kind = ExecCall::kSystem;
  c.path = command;
  return exec_result(c);
}

int popen(const char* command, const char* mode, FILE** stream) {
  ExecCall c{};
  c.kind = ExecCall::kPopen;
  c.path = command;
  c.mode = mode;
  exec_call(c);
  if (!c.stream) return -errno;
  *stream = c.stream;
  return 0;
}

// -- credentials --

int set_credentials(Credential which, unsigned a, unsigned b, unsigned c) {
  return setxid(Xid{which, a, b, c, 0, nullptr, false});
}

int setgroups(size_t n, const gid_t* groups) { return setxid(Xid{Credential::kUid, 0, 0, 0, n, groups, true}); }

// -- leaving a handler with longjmp --

void longjmp(Longjmp which, struct __jmp_buf_tag env[1], int val) {
  Fiber* f = Fiber::current();
  if (f && sched::active() && f->sig.handler_depth > 0) {
    signals::before_longjmp(f, env->__jmpbuf, env->__mask_was_saved != 0);
  }
  switch (which) {
    case Longjmp::kLongjmp: real::longjmp(env, val); break;
    case Longjmp::kSiglongjmp: real::siglongjmp(env, val); break;
    case Longjmp::kUnderscore: real::_longjmp(env, val); break;
    case Longjmp::kChecked: real::__longjmp_chk(env, val); break;
  }
  __builtin_unreachable();
}

}  // namespace rt
}  // namespace unblock
