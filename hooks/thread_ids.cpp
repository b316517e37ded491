// Thread-id hooks: gettid, tgkill, sched_setaffinity/getaffinity,
// pthread_setaffinity_np/getaffinity_np, setpriority/getpriority. A fiber
// has its own thread id and the calls that take one accept it; the runtime
// serves them (runtime/thread_ids.cpp); these functions only translate its
// results. syscall() with these numbers: hooks/futex.cpp.
#include <sched.h>
#include <sys/resource.h>

#include "hooks/hook.h"
#include "runtime/api.h"

using namespace unblock;

namespace {
int to_libc(int r) { return r < 0 ? hooks::fail(-r) : r; }
}  // namespace

UNBLOCK_HOOK pid_t gettid(void) { return rt::gettid(); }

UNBLOCK_HOOK int tgkill(pid_t tgid, pid_t tid, int sig) { return to_libc(rt::tgkill(tgid, tid, sig)); }

UNBLOCK_HOOK int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* mask) {
  return to_libc(rt::sched_setaffinity(pid, size, mask));
}

UNBLOCK_HOOK int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* mask) {
  return to_libc(rt::sched_getaffinity(pid, size, mask));
}

UNBLOCK_HOOK int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t* mask) {
  return -rt::thread_setaffinity(t, size, mask);
}

UNBLOCK_HOOK int pthread_getaffinity_np(pthread_t t, size_t size, cpu_set_t* mask) {
  return -rt::thread_getaffinity(t, size, mask);
}

UNBLOCK_HOOK int setpriority(__priority_which_t which, id_t who, int prio) {
  return to_libc(rt::setpriority(which, who, prio));
}

UNBLOCK_HOOK int getpriority(__priority_which_t which, id_t who) {
  int r = rt::getpriority(which, who);
  if (r < 0) return hooks::fail(-r);
  return 20 - r;  // glibc's conversion of the syscall's form
}
