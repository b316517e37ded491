// Thread hooks: pthread_create/join/tryjoin/timedjoin/clockjoin/detach/exit/
// cancel, pthread_getattr_np, scheduling parameters, thread names (and
// prctl's PR_SET_NAME/PR_GET_NAME), key create/delete, sched_yield and the
// resource-limit calls. The runtime serves each (runtime/threads.cpp, behind
// runtime/api.h); these functions only translate its results: the pthread_*
// ones return the error number, the others set errno and return -1.
//
// pthread_self() and pthread_equal() are not hooked: a fiber's FS base is its
// own TCB, so glibc's versions already return the fiber's identity.
// pthread_getspecific/setspecific likewise work on the fiber's own TCB.
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/resource.h>

#include "hooks/hook.h"
#include "runtime/api.h"

using namespace unblock;

namespace {
int to_libc(int r) { return r < 0 ? hooks::fail(-r) : r; }
}  // namespace

UNBLOCK_HOOK int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  return -rt::thread_create(thread, attr, start, arg);
}

UNBLOCK_HOOK int setrlimit(__rlimit_resource_t resource, const struct rlimit* limit) {
  return to_libc(rt::setrlimit(resource, limit));
}

UNBLOCK_HOOK int setrlimit64(__rlimit_resource_t resource, const struct rlimit64* limit) {
  return to_libc(rt::setrlimit64(resource, limit));
}

UNBLOCK_HOOK int prlimit(pid_t pid, enum __rlimit_resource resource, const struct rlimit* limit, struct rlimit* old) {
  return to_libc(rt::prlimit(pid, resource, limit, old));
}

UNBLOCK_HOOK int prlimit64(pid_t pid, enum __rlimit_resource resource, const struct rlimit64* limit,
                           struct rlimit64* old) {
  return to_libc(rt::prlimit64(pid, resource, limit, old));
}

UNBLOCK_HOOK int pthread_setschedparam(pthread_t thread, int policy, const struct sched_param* param) {
  return -rt::thread_setschedparam(thread, policy, param);
}

UNBLOCK_HOOK int pthread_getschedparam(pthread_t thread, int* policy, struct sched_param* param) {
  return -rt::thread_getschedparam(thread, policy, param);
}

UNBLOCK_HOOK int sched_setscheduler(pid_t pid, int policy, const struct sched_param* param) {
  return to_libc(rt::sched_setscheduler(pid, policy, param));
}

UNBLOCK_HOOK int sched_getscheduler(pid_t pid) { return to_libc(rt::sched_getscheduler(pid)); }

UNBLOCK_HOOK int sched_setparam(pid_t pid, const struct sched_param* param) {
  return to_libc(rt::sched_setparam(pid, param));
}

UNBLOCK_HOOK int sched_getparam(pid_t pid, struct sched_param* param) { return to_libc(rt::sched_getparam(pid, param)); }

UNBLOCK_HOOK int pthread_setschedprio(pthread_t thread, int prio) { return -rt::thread_setschedprio(thread, prio); }

UNBLOCK_HOOK int pthread_join(pthread_t thread, void** ret) { return -rt::thread_join(thread, ret); }

UNBLOCK_HOOK int pthread_tryjoin_np(pthread_t thread, void** ret) { return -rt::thread_tryjoin(thread, ret); }

UNBLOCK_HOOK int pthread_clockjoin_np(pthread_t thread, void** ret, clockid_t clock, const struct timespec* abstime) {
  return -rt::thread_clockjoin(thread, ret, clock, abstime);
}

UNBLOCK_HOOK int pthread_timedjoin_np(pthread_t thread, void** ret, const struct timespec* abstime) {
  return -rt::thread_timedjoin(thread, ret, abstime);
}

UNBLOCK_HOOK int pthread_detach(pthread_t thread) { return -rt::thread_detach(thread); }

UNBLOCK_HOOK void pthread_exit(void* value) { rt::thread_exit(value); }

UNBLOCK_HOOK int pthread_cancel(pthread_t thread) { return -rt::thread_cancel(thread); }

UNBLOCK_HOOK int pthread_getattr_np(pthread_t thread, pthread_attr_t* attr) { return -rt::thread_getattr(thread, attr); }

UNBLOCK_HOOK int pthread_getcpuclockid(pthread_t thread, clockid_t* clock) {
  return -rt::thread_getcpuclockid(thread, clock);
}

UNBLOCK_HOOK int pthread_setname_np(pthread_t thread, const char* name) { return -rt::thread_setname(thread, name); }

UNBLOCK_HOOK int pthread_getname_np(pthread_t thread, char* buf, size_t len) {
  return -rt::thread_getname(thread, buf, len);
}

UNBLOCK_HOOK int prctl(int option, ...) {
  va_list ap;
  va_start(ap, option);
  unsigned long a2 = va_arg(ap, unsigned long);
  unsigned long a3 = va_arg(ap, unsigned long);
  unsigned long a4 = va_arg(ap, unsigned long);
  unsigned long a5 = va_arg(ap, unsigned long);
  va_end(ap);
  long r = rt::prctl(option, a2, a3, a4, a5);
  return r < 0 ? hooks::fail(static_cast<int>(-r)) : static_cast<int>(r);
}

UNBLOCK_HOOK int pthread_key_create(pthread_key_t* key, void (*dtor)(void*)) { return -rt::key_create(key, dtor); }

UNBLOCK_HOOK int pthread_key_delete(pthread_key_t key) { return -rt::key_delete(key); }

UNBLOCK_HOOK int sched_yield() { return to_libc(rt::yield()); }

// <pthread.h> redirects pthread_yield to sched_yield; binaries linked
// against the old symbol still call it by name.
UNBLOCK_HOOK int unblock_pthread_yield() __asm__("pthread_yield");
UNBLOCK_HOOK int unblock_pthread_yield() { return sched_yield(); }
