// Signal hooks: the sigaction family (and the BSD/System V/XSI wrappers glibc
// implements with its internal sigaction, which a hook of sigaction alone
// would miss), masks, sending (pthread_kill, pthread_sigqueue, raise, kill,
// sigqueue), waiting (sigwait*, sigsuspend, pause, sigpause), sigpending,
// sigaltstack, signalfd; the calls whose effect depends on the OS thread's
// real mask (exec*, posix_spawn*, system, popen); the setxid family; and
// longjmp/siglongjmp out of a handler.
//
// The runtime serves each (runtime/signal_calls.cpp, behind runtime/api.h);
// these functions only translate its results and the calling conventions
// (BSD int masks, execl-style argument lists).
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "hooks/hook.h"
#include "runtime/api.h"

using namespace unblock;

extern "C" char** environ;
extern "C" void __longjmp_chk(struct __jmp_buf_tag env[1], int val) __attribute__((noreturn));

namespace {

int to_libc(int r) { return r < 0 ? hooks::fail(-r) : r; }

sighandler_t handler_result(int r, sighandler_t old) {
  if (r < 0) {
    errno = -r;
    return SIG_ERR;
  }
  return old;
}

// BSD masks of the first 32 signals, as int.
void bsd_to_set(int mask, sigset_t* set) {
  sigemptyset(set);
  for (int s = 1; s < 32; ++s) {
    if (mask & (1u << (s - 1))) sigaddset(set, s);
  }
}
int set_to_bsd(const sigset_t* set) {
  int r = 0;
  for (int s = 1; s < 32; ++s) {
    if (sigismember(set, s)) r |= 1 << (s - 1);
  }
  return r;
}
int bsd_mask(int how, int mask) {
  sigset_t set, old;
  bsd_to_set(mask, &set);
  if (int r = rt::sigprocmask(how, &set, &old)) return hooks::fail(-r);
  return set_to_bsd(&old);
}

}  // namespace

// ---- dispositions -----------------------------------------------------------------

UNBLOCK_HOOK int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return to_libc(rt::sigaction(sig, act, old));
}
UNBLOCK_HOOK int __sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  return to_libc(rt::sigaction(sig, act, old));
}

namespace {
sighandler_t bsd_signal_common(int sig, sighandler_t handler) {
  sighandler_t old = SIG_DFL;
  return handler_result(rt::signal_bsd(sig, handler, &old), old);
}
sighandler_t sysv_signal_common(int sig, sighandler_t handler) {
  sighandler_t old = SIG_DFL;
  return handler_result(rt::signal_sysv(sig, handler, &old), old);
}
}  // namespace

UNBLOCK_HOOK sighandler_t signal(int sig, sighandler_t handler) { return bsd_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t bsd_signal(int sig, sighandler_t handler) { return bsd_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t ssignal(int sig, sighandler_t handler) { return bsd_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t sysv_signal(int sig, sighandler_t handler) { return sysv_signal_common(sig, handler); }
UNBLOCK_HOOK sighandler_t __sysv_signal(int sig, sighandler_t handler) { return sysv_signal_common(sig, handler); }

UNBLOCK_HOOK int siginterrupt(int sig, int interrupt) { return to_libc(rt::siginterrupt(sig, interrupt)); }

UNBLOCK_HOOK sighandler_t sigset(int sig, sighandler_t disp) {
  sighandler_t old = SIG_DFL;
  return handler_result(rt::sigset(sig, disp, &old), old);
}

UNBLOCK_HOOK int sighold(int sig) { return to_libc(rt::sigmask_one(SIG_BLOCK, sig)); }
UNBLOCK_HOOK int sigrelse(int sig) { return to_libc(rt::sigmask_one(SIG_UNBLOCK, sig)); }

UNBLOCK_HOOK int sigignore(int sig) {
  struct sigaction act {};
  act.sa_handler = SIG_IGN;
  sigemptyset(&act.sa_mask);
  return to_libc(rt::sigaction(sig, &act, nullptr));
}

// ---- masks ------------------------------------------------------------------------

UNBLOCK_HOOK int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  return -rt::thread_sigmask(how, set, old);
}

UNBLOCK_HOOK int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  return to_libc(rt::sigprocmask(how, set, old));
}

UNBLOCK_HOOK int sigblock(int mask) { return bsd_mask(SIG_BLOCK, mask); }
UNBLOCK_HOOK int sigsetmask(int mask) { return bsd_mask(SIG_SETMASK, mask); }
UNBLOCK_HOOK int siggetmask(void) { return bsd_mask(SIG_BLOCK, 0); }

// ---- sending ----------------------------------------------------------------------

UNBLOCK_HOOK int pthread_kill(pthread_t t, int sig) { return -rt::thread_kill(t, sig); }

UNBLOCK_HOOK int pthread_sigqueue(pthread_t t, int sig, const union sigval value) {
  return -rt::thread_sigqueue(t, sig, value);
}

UNBLOCK_HOOK int raise(int sig) { return to_libc(rt::raise(sig)); }
UNBLOCK_HOOK int gsignal(int sig) { return to_libc(rt::raise(sig)); }

UNBLOCK_HOOK int kill(pid_t pid, int sig) { return to_libc(rt::kill(pid, sig)); }

UNBLOCK_HOOK int sigqueue(pid_t pid, int sig, const union sigval value) {
  return to_libc(rt::sigqueue(pid, sig, value));
}

// ---- waiting ----------------------------------------------------------------------

UNBLOCK_HOOK int sigwaitinfo(const sigset_t* set, siginfo_t* info) { return to_libc(rt::sigwaitinfo(set, info)); }

UNBLOCK_HOOK int sigtimedwait(const sigset_t* set, siginfo_t* info, const struct timespec* ts) {
  return to_libc(rt::sigtimedwait(set, info, ts));
}

UNBLOCK_HOOK int sigwait(const sigset_t* set, int* sig) { return -rt::sigwait(set, sig); }

UNBLOCK_HOOK int sigsuspend(const sigset_t* mask) { return to_libc(rt::sigsuspend(mask)); }
UNBLOCK_HOOK int __sigsuspend(const sigset_t* mask) { return to_libc(rt::sigsuspend(mask)); }

UNBLOCK_HOOK int pause(void) { return to_libc(rt::pause()); }

// sigpause(mask) is the BSD call (an int mask); <signal.h> maps the XSI
// sigpause(sig) to __xpg_sigpause.
UNBLOCK_HOOK int __sigpause(int sig_or_mask, int is_sig) { return to_libc(rt::sigpause(sig_or_mask, is_sig)); }
// <signal.h> may have renamed sigpause to __xpg_sigpause: define both by
// their symbol names.
UNBLOCK_HOOK int unblock_bsd_sigpause(int mask) __asm__("sigpause");
UNBLOCK_HOOK int unblock_bsd_sigpause(int mask) { return to_libc(rt::sigpause(mask, 0)); }
UNBLOCK_HOOK int unblock_xpg_sigpause(int sig) __asm__("__xpg_sigpause");
UNBLOCK_HOOK int unblock_xpg_sigpause(int sig) { return to_libc(rt::sigpause(sig, 1)); }

UNBLOCK_HOOK int sigpending(sigset_t* set) { return to_libc(rt::sigpending(set)); }

UNBLOCK_HOOK int sigaltstack(const stack_t* ss, stack_t* old) { return to_libc(rt::sigaltstack(ss, old)); }

UNBLOCK_HOOK int signalfd(int fd, const sigset_t* mask, int flags) { return to_libc(rt::signalfd(fd, mask, flags)); }

// ---- calls whose child inherits the OS thread's real mask ------------------------------

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

UNBLOCK_HOOK int execve(const char* path, char* const argv[], char* const envp[]) {
  return to_libc(rt::execve(path, argv, envp));
}
UNBLOCK_HOOK int execv(const char* path, char* const argv[]) { return to_libc(rt::execve(path, argv, environ)); }
UNBLOCK_HOOK int execvp(const char* file, char* const argv[]) { return to_libc(rt::execvpe(file, argv, environ)); }
UNBLOCK_HOOK int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return to_libc(rt::execvpe(file, argv, envp));
}

UNBLOCK_HOOK int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  COLLECT_ARGS(arg, ap, argv, n)
  va_end(ap);
  return to_libc(rt::execve(path, argv, environ));
}

UNBLOCK_HOOK int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  COLLECT_ARGS(arg, ap, argv, n)
  va_end(ap);
  return to_libc(rt::execvpe(file, argv, environ));
}

UNBLOCK_HOOK int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  COLLECT_ARGS(arg, ap, argv, n)
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return to_libc(rt::execve(path, argv, envp));
}

UNBLOCK_HOOK int fexecve(int fd, char* const argv[], char* const envp[]) {
  return to_libc(rt::fexecve(fd, argv, envp));
}

UNBLOCK_HOOK int execveat(int dirfd, const char* path, char* const argv[], char* const envp[], int flags) {
  return to_libc(rt::execveat(dirfd, path, argv, envp, flags));
}

UNBLOCK_HOOK int posix_spawn(pid_t* pid, const char* path, const posix_spawn_file_actions_t* actions,
                             const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return -rt::posix_spawn(pid, path, actions, attr, argv, envp, false);
}

UNBLOCK_HOOK int posix_spawnp(pid_t* pid, const char* file, const posix_spawn_file_actions_t* actions,
                              const posix_spawnattr_t* attr, char* const argv[], char* const envp[]) {
  return -rt::posix_spawn(pid, file, actions, attr, argv, envp, true);
}

UNBLOCK_HOOK int system(const char* command) { return to_libc(rt::system(command)); }

UNBLOCK_HOOK FILE* popen(const char* command, const char* mode) {
  FILE* stream = nullptr;
  if (int r = rt::popen(command, mode, &stream)) {
    errno = -r;
    return nullptr;
  }
  return stream;
}

// ---- credentials ------------------------------------------------------------------

UNBLOCK_HOOK int setuid(uid_t u) { return to_libc(rt::set_credentials(rt::Credential::kUid, u, 0, 0)); }
UNBLOCK_HOOK int setgid(gid_t g) { return to_libc(rt::set_credentials(rt::Credential::kGid, g, 0, 0)); }
UNBLOCK_HOOK int seteuid(uid_t u) { return to_libc(rt::set_credentials(rt::Credential::kEuid, u, 0, 0)); }
UNBLOCK_HOOK int setegid(gid_t g) { return to_libc(rt::set_credentials(rt::Credential::kEgid, g, 0, 0)); }
UNBLOCK_HOOK int setreuid(uid_t r, uid_t e) { return to_libc(rt::set_credentials(rt::Credential::kReuid, r, e, 0)); }
UNBLOCK_HOOK int setregid(gid_t r, gid_t e) { return to_libc(rt::set_credentials(rt::Credential::kRegid, r, e, 0)); }
UNBLOCK_HOOK int setresuid(uid_t r, uid_t e, uid_t s) {
  return to_libc(rt::set_credentials(rt::Credential::kResuid, r, e, s));
}
UNBLOCK_HOOK int setresgid(gid_t r, gid_t e, gid_t s) {
  return to_libc(rt::set_credentials(rt::Credential::kResgid, r, e, s));
}
UNBLOCK_HOOK int setgroups(size_t n, const gid_t* groups) { return to_libc(rt::setgroups(n, groups)); }

// ---- leaving a handler with longjmp -----------------------------------------------------

UNBLOCK_HOOK void longjmp(struct __jmp_buf_tag env[1], int val) { rt::longjmp(rt::Longjmp::kLongjmp, env, val); }
UNBLOCK_HOOK void siglongjmp(struct __jmp_buf_tag env[1], int val) { rt::longjmp(rt::Longjmp::kSiglongjmp, env, val); }
UNBLOCK_HOOK void _longjmp(struct __jmp_buf_tag env[1], int val) { rt::longjmp(rt::Longjmp::kUnderscore, env, val); }
UNBLOCK_HOOK void __longjmp_chk(struct __jmp_buf_tag env[1], int val) { rt::longjmp(rt::Longjmp::kChecked, env, val); }
