// Synchronisation hooks: pthread mutexes, condition variables, rwlocks,
// barriers, pthread_once and unnamed semaphores.
//
// Every call goes to the runtime (runtime/api.h; the end of runtime/sync.cpp owns
// the cancellation points and the handlers due on the way out) - also
// before the runtime starts, on plain OS threads, in a forked child - so an
// object never changes hands between two implementations while it is in
// use. The runtime itself passes process-shared objects and robust/PI/PP
// mutexes to glibc (the decision depends only on the object). These
// functions only translate between calling conventions: the pthread_* ones
// return the error number, the sem_* ones set errno (only on failure) and
// return -1.
//
// Symbol versions: glibc has two pthread_cond_* versions (GLIBC_2.3.2, the
// default, and the old GLIBC_2.2.5 ABI); the rest have one default version.
// libunblock.so defines each name once, unversioned, and a versioned
// reference binds to an unversioned definition, so no .symver is needed.
// The __pthread_* aliases cover binaries linked against the old libpthread
// names.
#include <pthread.h>
#include <semaphore.h>

#include "hooks/hook.h"
#include "runtime/api.h"

using namespace unblock;

namespace {
int sem_result(int r) { return r < 0 ? hooks::fail(-r) : 0; }
}  // namespace

// pthread_barrier_wait's result: PTHREAD_BARRIER_SERIAL_THREAD for one thread.
namespace {
int barrier_result(int r) { return r == rt::kBarrierSerial ? PTHREAD_BARRIER_SERIAL_THREAD : -r; }
}  // namespace

// ---- mutexes ----

UNBLOCK_HOOK int pthread_mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* attr) {
  return -rt::mutex_init(m, attr);
}
UNBLOCK_HOOK int pthread_mutex_destroy(pthread_mutex_t* m) { return -rt::mutex_destroy(m); }
UNBLOCK_HOOK int pthread_mutex_lock(pthread_mutex_t* m) { return -rt::mutex_lock(m); }
UNBLOCK_HOOK int pthread_mutex_trylock(pthread_mutex_t* m) { return -rt::mutex_trylock(m); }
UNBLOCK_HOOK int pthread_mutex_timedlock(pthread_mutex_t* m, const struct timespec* abs) {
  return -rt::mutex_timedlock(m, CLOCK_REALTIME, abs, false);
}
UNBLOCK_HOOK int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock, const struct timespec* abs) {
  return -rt::mutex_timedlock(m, clock, abs, true);
}
UNBLOCK_HOOK int pthread_mutex_unlock(pthread_mutex_t* m) { return -rt::mutex_unlock(m); }
UNBLOCK_HOOK int pthread_mutex_consistent(pthread_mutex_t* m) { return -rt::mutex_consistent(m); }

UNBLOCK_HOOK int unblock_pthread_mutex_consistent_np(pthread_mutex_t* m) __asm__("pthread_mutex_consistent_np");
UNBLOCK_HOOK int unblock_pthread_mutex_consistent_np(pthread_mutex_t* m) { return -rt::mutex_consistent(m); }
UNBLOCK_HOOK int unblock___pthread_mutex_init(pthread_mutex_t* m,
                                              const pthread_mutexattr_t* a) __asm__("__pthread_mutex_init");
UNBLOCK_HOOK int unblock___pthread_mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* a) {
  return -rt::mutex_init(m, a);
}
UNBLOCK_HOOK int unblock___pthread_mutex_destroy(pthread_mutex_t* m) __asm__("__pthread_mutex_destroy");
UNBLOCK_HOOK int unblock___pthread_mutex_destroy(pthread_mutex_t* m) { return -rt::mutex_destroy(m); }
UNBLOCK_HOOK int unblock___pthread_mutex_lock(pthread_mutex_t* m) __asm__("__pthread_mutex_lock");
UNBLOCK_HOOK int unblock___pthread_mutex_lock(pthread_mutex_t* m) { return -rt::mutex_lock(m); }
UNBLOCK_HOOK int unblock___pthread_mutex_trylock(pthread_mutex_t* m) __asm__("__pthread_mutex_trylock");
UNBLOCK_HOOK int unblock___pthread_mutex_trylock(pthread_mutex_t* m) { return -rt::mutex_trylock(m); }
UNBLOCK_HOOK int unblock___pthread_mutex_unlock(pthread_mutex_t* m) __asm__("__pthread_mutex_unlock");
UNBLOCK_HOOK int unblock___pthread_mutex_unlock(pthread_mutex_t* m) { return -rt::mutex_unlock(m); }

// ---- condition variables ----

UNBLOCK_HOOK int pthread_cond_init(pthread_cond_t* c, const pthread_condattr_t* attr) { return -rt::cond_init(c, attr); }
UNBLOCK_HOOK int pthread_cond_destroy(pthread_cond_t* c) { return -rt::cond_destroy(c); }
UNBLOCK_HOOK int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  return -rt::cond_wait(c, m);
}
UNBLOCK_HOOK int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const struct timespec* abs) {
  return -rt::cond_timedwait(c, m, abs);
}
UNBLOCK_HOOK int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock,
                                        const struct timespec* abs) {
  return -rt::cond_clockwait(c, m, clock, abs);
}
UNBLOCK_HOOK int pthread_cond_signal(pthread_cond_t* c) { return -rt::cond_signal(c); }
UNBLOCK_HOOK int pthread_cond_broadcast(pthread_cond_t* c) { return -rt::cond_broadcast(c); }

// ---- reader-writer locks ----

UNBLOCK_HOOK int pthread_rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr) {
  return -rt::rwlock_init(l, attr);
}
UNBLOCK_HOOK int pthread_rwlock_destroy(pthread_rwlock_t* l) { return -rt::rwlock_destroy(l); }
UNBLOCK_HOOK int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  return -rt::rwlock_rdlock(l, CLOCK_REALTIME, nullptr, false);
}
UNBLOCK_HOOK int pthread_rwlock_tryrdlock(pthread_rwlock_t* l) { return -rt::rwlock_tryrdlock(l); }
UNBLOCK_HOOK int pthread_rwlock_timedrdlock(pthread_rwlock_t* l, const struct timespec* abs) {
  return -rt::rwlock_rdlock(l, CLOCK_REALTIME, abs, true);
}
UNBLOCK_HOOK int pthread_rwlock_clockrdlock(pthread_rwlock_t* l, clockid_t clock, const struct timespec* abs) {
  return -rt::rwlock_rdlock(l, clock, abs, true);
}
UNBLOCK_HOOK int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  return -rt::rwlock_wrlock(l, CLOCK_REALTIME, nullptr, false);
}
UNBLOCK_HOOK int pthread_rwlock_trywrlock(pthread_rwlock_t* l) { return -rt::rwlock_trywrlock(l); }
UNBLOCK_HOOK int pthread_rwlock_timedwrlock(pthread_rwlock_t* l, const struct timespec* abs) {
  return -rt::rwlock_wrlock(l, CLOCK_REALTIME, abs, true);
}
UNBLOCK_HOOK int pthread_rwlock_clockwrlock(pthread_rwlock_t* l, clockid_t clock, const struct timespec* abs) {
  return -rt::rwlock_wrlock(l, clock, abs, true);
}
UNBLOCK_HOOK int pthread_rwlock_unlock(pthread_rwlock_t* l) { return -rt::rwlock_unlock(l); }

UNBLOCK_HOOK int unblock___pthread_rwlock_init(pthread_rwlock_t* l,
                                               const pthread_rwlockattr_t* a) __asm__("__pthread_rwlock_init");
UNBLOCK_HOOK int unblock___pthread_rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* a) {
  return -rt::rwlock_init(l, a);
}
UNBLOCK_HOOK int unblock___pthread_rwlock_destroy(pthread_rwlock_t* l) __asm__("__pthread_rwlock_destroy");
UNBLOCK_HOOK int unblock___pthread_rwlock_destroy(pthread_rwlock_t* l) { return -rt::rwlock_destroy(l); }
UNBLOCK_HOOK int unblock___pthread_rwlock_rdlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_rdlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  return -rt::rwlock_rdlock(l, CLOCK_REALTIME, nullptr, false);
}
UNBLOCK_HOOK int unblock___pthread_rwlock_tryrdlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_tryrdlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_tryrdlock(pthread_rwlock_t* l) { return -rt::rwlock_tryrdlock(l); }
UNBLOCK_HOOK int unblock___pthread_rwlock_wrlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_wrlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  return -rt::rwlock_wrlock(l, CLOCK_REALTIME, nullptr, false);
}
UNBLOCK_HOOK int unblock___pthread_rwlock_trywrlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_trywrlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_trywrlock(pthread_rwlock_t* l) { return -rt::rwlock_trywrlock(l); }
UNBLOCK_HOOK int unblock___pthread_rwlock_unlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_unlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_unlock(pthread_rwlock_t* l) { return -rt::rwlock_unlock(l); }

// ---- barriers and once ----

UNBLOCK_HOOK int pthread_barrier_init(pthread_barrier_t* b, const pthread_barrierattr_t* attr, unsigned count) {
  return -rt::barrier_init(b, attr, count);
}
UNBLOCK_HOOK int pthread_barrier_destroy(pthread_barrier_t* b) { return -rt::barrier_destroy(b); }
UNBLOCK_HOOK int pthread_barrier_wait(pthread_barrier_t* b) { return barrier_result(rt::barrier_wait(b)); }

UNBLOCK_HOOK int pthread_once(pthread_once_t* once, void (*init)(void)) { return -rt::once(once, init); }
UNBLOCK_HOOK int unblock___pthread_once(pthread_once_t* once, void (*init)(void)) __asm__("__pthread_once");
UNBLOCK_HOOK int unblock___pthread_once(pthread_once_t* once, void (*init)(void)) { return -rt::once(once, init); }

// ---- semaphores ----

UNBLOCK_HOOK int sem_init(sem_t* s, int pshared, unsigned value) {
  return sem_result(rt::sem_init(s, pshared, value));
}
UNBLOCK_HOOK int sem_destroy(sem_t* s) { return sem_result(rt::sem_destroy(s)); }
UNBLOCK_HOOK int sem_wait(sem_t* s) {
  return sem_result(rt::sem_wait(s));
}
UNBLOCK_HOOK int sem_trywait(sem_t* s) { return sem_result(rt::sem_trywait(s)); }
UNBLOCK_HOOK int sem_timedwait(sem_t* s, const struct timespec* abs) {
  return sem_result(rt::sem_timedwait(s, CLOCK_REALTIME, abs, false));
}
UNBLOCK_HOOK int sem_clockwait(sem_t* s, clockid_t clock, const struct timespec* abs) {
  return sem_result(rt::sem_timedwait(s, clock, abs, true));
}
// Async-signal-safe, as POSIX requires.
UNBLOCK_HOOK int sem_post(sem_t* s) { return sem_result(rt::sem_post(s)); }
UNBLOCK_HOOK int sem_getvalue(sem_t* s, int* value) { return sem_result(rt::sem_getvalue(s, value)); }
