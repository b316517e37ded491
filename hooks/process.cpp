// Process hooks: fork and vfork.
//
// io_uring rings and carrier threads do not survive fork. A forked child
// keeps running the calling fiber on its single OS thread, with the fiber's
// own TCB (so its errno, TLS and pthread_self() are unchanged), and the
// runtime marks itself unavailable: from then on every hook passes straight
// through and the child is an ordinary process. vfork() is served by fork():
// a vfork child shares the parent's memory, so hooks running in it could
// corrupt the parent's runtime state.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hooks/hook.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "shim/raw_syscall.h"

using namespace unblock;

UNBLOCK_HOOK pid_t fork() {
  Fiber* f = hooks::fiber_for_call();
  if (!f) return real::fork();
  pid_t pid = real::fork();
  if (pid == 0) {
    sched::forget_after_fork();
    // The child's OS thread takes the fiber's signal mask.
    errno_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &f->sigmask, nullptr, 8);
  }
  return pid;
}

UNBLOCK_HOOK pid_t vfork() { return fork(); }
