// Synchronisation hooks: pthread mutexes, condition variables, rwlocks,
// barriers, pthread_once and unnamed semaphores.
//
// Every call goes to runtime/sync.* - also before the runtime starts, on
// plain OS threads, in a forked child - so an object never changes hands
// between two implementations while it is in use. runtime/sync.* itself
// passes process-shared objects and robust/PI/PP mutexes to glibc (the
// decision depends only on the object). These functions only translate
// between calling conventions: the pthread_* ones return the error number,
// the sem_* ones set errno (only on failure) and return -1.
//
// Cancellation points (condition waits, sem_wait and its timed variants)
// act on a pending cancellation request on entry, while the caller still
// holds the mutex, which is the state POSIX requires for the cleanup
// handlers. A request that arrives while the thread is parked ends the wait
// (runtime/sync.h: ECANCELED, after a condition wait re-acquired the mutex)
// and the hook unwinds the thread (cancel::point).
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
#include "runtime/cancel.h"
#include "runtime/sync.h"

using namespace unblock;
using unblock::sync::Barrier;
using unblock::sync::CondVar;
using unblock::sync::Mutex;
using unblock::sync::Once;
using unblock::sync::RwLock;
using unblock::sync::Semaphore;

namespace {

// The hooks below that may wait or are called in loops return through these:
// a handler due for the caller runs first (hooks::deliver_due).
int sem_result(int err) {
  hooks::deliver_due();
  return err ? hooks::fail(err) : 0;
}
int delivered(int r) {
  hooks::deliver_due();
  return r;
}

// A wait ended by the caller's cancellation request: unwind (never returns
// when the request is due, which ECANCELED says).
int acted(int err) {
  if (err == ECANCELED) cancel::point();
  return err;
}

}  // namespace

// ---- mutexes ----

UNBLOCK_HOOK int pthread_mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* attr) {
  return Mutex::init(m, attr);
}
UNBLOCK_HOOK int pthread_mutex_destroy(pthread_mutex_t* m) { return Mutex::destroy(m); }
UNBLOCK_HOOK int pthread_mutex_lock(pthread_mutex_t* m) { return delivered(Mutex::lock(m)); }
UNBLOCK_HOOK int pthread_mutex_trylock(pthread_mutex_t* m) { return delivered(Mutex::trylock(m)); }
UNBLOCK_HOOK int pthread_mutex_timedlock(pthread_mutex_t* m, const struct timespec* abs) {
  return delivered(Mutex::timedlock(m, CLOCK_REALTIME, abs, false));
}
UNBLOCK_HOOK int pthread_mutex_clocklock(pthread_mutex_t* m, clockid_t clock, const struct timespec* abs) {
  return delivered(Mutex::timedlock(m, clock, abs, true));
}
UNBLOCK_HOOK int pthread_mutex_unlock(pthread_mutex_t* m) { return delivered(Mutex::unlock(m)); }
UNBLOCK_HOOK int pthread_mutex_consistent(pthread_mutex_t* m) { return Mutex::consistent(m); }

UNBLOCK_HOOK int unblock_pthread_mutex_consistent_np(pthread_mutex_t* m) __asm__("pthread_mutex_consistent_np");
UNBLOCK_HOOK int unblock_pthread_mutex_consistent_np(pthread_mutex_t* m) { return Mutex::consistent(m); }
UNBLOCK_HOOK int unblock___pthread_mutex_init(pthread_mutex_t* m,
                                              const pthread_mutexattr_t* a) __asm__("__pthread_mutex_init");
UNBLOCK_HOOK int unblock___pthread_mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* a) {
  return Mutex::init(m, a);
}
UNBLOCK_HOOK int unblock___pthread_mutex_destroy(pthread_mutex_t* m) __asm__("__pthread_mutex_destroy");
UNBLOCK_HOOK int unblock___pthread_mutex_destroy(pthread_mutex_t* m) { return Mutex::destroy(m); }
UNBLOCK_HOOK int unblock___pthread_mutex_lock(pthread_mutex_t* m) __asm__("__pthread_mutex_lock");
UNBLOCK_HOOK int unblock___pthread_mutex_lock(pthread_mutex_t* m) { return delivered(Mutex::lock(m)); }
UNBLOCK_HOOK int unblock___pthread_mutex_trylock(pthread_mutex_t* m) __asm__("__pthread_mutex_trylock");
UNBLOCK_HOOK int unblock___pthread_mutex_trylock(pthread_mutex_t* m) { return delivered(Mutex::trylock(m)); }
UNBLOCK_HOOK int unblock___pthread_mutex_unlock(pthread_mutex_t* m) __asm__("__pthread_mutex_unlock");
UNBLOCK_HOOK int unblock___pthread_mutex_unlock(pthread_mutex_t* m) { return delivered(Mutex::unlock(m)); }

// ---- condition variables ----

UNBLOCK_HOOK int pthread_cond_init(pthread_cond_t* c, const pthread_condattr_t* attr) { return CondVar::init(c, attr); }
UNBLOCK_HOOK int pthread_cond_destroy(pthread_cond_t* c) { return CondVar::destroy(c); }
UNBLOCK_HOOK int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  cancel::point();
  return delivered(acted(CondVar::wait(c, m)));
}
UNBLOCK_HOOK int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const struct timespec* abs) {
  cancel::point();
  return delivered(acted(CondVar::timedwait(c, m, abs)));
}
UNBLOCK_HOOK int pthread_cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock,
                                        const struct timespec* abs) {
  cancel::point();
  return delivered(acted(CondVar::clockwait(c, m, clock, abs)));
}
UNBLOCK_HOOK int pthread_cond_signal(pthread_cond_t* c) { return delivered(CondVar::signal(c)); }
UNBLOCK_HOOK int pthread_cond_broadcast(pthread_cond_t* c) { return delivered(CondVar::broadcast(c)); }

// ---- reader-writer locks ----

UNBLOCK_HOOK int pthread_rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr) {
  return RwLock::init(l, attr);
}
UNBLOCK_HOOK int pthread_rwlock_destroy(pthread_rwlock_t* l) { return RwLock::destroy(l); }
UNBLOCK_HOOK int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  return delivered(RwLock::rdlock(l, CLOCK_REALTIME, nullptr, false));
}
UNBLOCK_HOOK int pthread_rwlock_tryrdlock(pthread_rwlock_t* l) { return delivered(RwLock::tryrdlock(l)); }
UNBLOCK_HOOK int pthread_rwlock_timedrdlock(pthread_rwlock_t* l, const struct timespec* abs) {
  return delivered(RwLock::rdlock(l, CLOCK_REALTIME, abs, true));
}
UNBLOCK_HOOK int pthread_rwlock_clockrdlock(pthread_rwlock_t* l, clockid_t clock, const struct timespec* abs) {
  return delivered(RwLock::rdlock(l, clock, abs, true));
}
UNBLOCK_HOOK int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  return delivered(RwLock::wrlock(l, CLOCK_REALTIME, nullptr, false));
}
UNBLOCK_HOOK int pthread_rwlock_trywrlock(pthread_rwlock_t* l) { return delivered(RwLock::trywrlock(l)); }
UNBLOCK_HOOK int pthread_rwlock_timedwrlock(pthread_rwlock_t* l, const struct timespec* abs) {
  return delivered(RwLock::wrlock(l, CLOCK_REALTIME, abs, true));
}
UNBLOCK_HOOK int pthread_rwlock_clockwrlock(pthread_rwlock_t* l, clockid_t clock, const struct timespec* abs) {
  return delivered(RwLock::wrlock(l, clock, abs, true));
}
UNBLOCK_HOOK int pthread_rwlock_unlock(pthread_rwlock_t* l) { return delivered(RwLock::unlock(l)); }

UNBLOCK_HOOK int unblock___pthread_rwlock_init(pthread_rwlock_t* l,
                                               const pthread_rwlockattr_t* a) __asm__("__pthread_rwlock_init");
UNBLOCK_HOOK int unblock___pthread_rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* a) {
  return RwLock::init(l, a);
}
UNBLOCK_HOOK int unblock___pthread_rwlock_destroy(pthread_rwlock_t* l) __asm__("__pthread_rwlock_destroy");
UNBLOCK_HOOK int unblock___pthread_rwlock_destroy(pthread_rwlock_t* l) { return RwLock::destroy(l); }
UNBLOCK_HOOK int unblock___pthread_rwlock_rdlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_rdlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  return delivered(RwLock::rdlock(l, CLOCK_REALTIME, nullptr, false));
}
UNBLOCK_HOOK int unblock___pthread_rwlock_tryrdlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_tryrdlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_tryrdlock(pthread_rwlock_t* l) { return delivered(RwLock::tryrdlock(l)); }
UNBLOCK_HOOK int unblock___pthread_rwlock_wrlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_wrlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  return delivered(RwLock::wrlock(l, CLOCK_REALTIME, nullptr, false));
}
UNBLOCK_HOOK int unblock___pthread_rwlock_trywrlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_trywrlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_trywrlock(pthread_rwlock_t* l) { return delivered(RwLock::trywrlock(l)); }
UNBLOCK_HOOK int unblock___pthread_rwlock_unlock(pthread_rwlock_t* l) __asm__("__pthread_rwlock_unlock");
UNBLOCK_HOOK int unblock___pthread_rwlock_unlock(pthread_rwlock_t* l) { return delivered(RwLock::unlock(l)); }

// ---- barriers and once ----

UNBLOCK_HOOK int pthread_barrier_init(pthread_barrier_t* b, const pthread_barrierattr_t* attr, unsigned count) {
  return Barrier::init(b, attr, count);
}
UNBLOCK_HOOK int pthread_barrier_destroy(pthread_barrier_t* b) { return Barrier::destroy(b); }
UNBLOCK_HOOK int pthread_barrier_wait(pthread_barrier_t* b) { return delivered(Barrier::wait(b)); }

UNBLOCK_HOOK int pthread_once(pthread_once_t* once, void (*init)(void)) { return delivered(Once::run(once, init)); }
UNBLOCK_HOOK int unblock___pthread_once(pthread_once_t* once, void (*init)(void)) __asm__("__pthread_once");
UNBLOCK_HOOK int unblock___pthread_once(pthread_once_t* once, void (*init)(void)) { return delivered(Once::run(once, init)); }

// ---- semaphores ----

UNBLOCK_HOOK int sem_init(sem_t* s, int pshared, unsigned value) {
  return sem_result(Semaphore::init(s, pshared, value));
}
UNBLOCK_HOOK int sem_destroy(sem_t* s) { return sem_result(Semaphore::destroy(s)); }
UNBLOCK_HOOK int sem_wait(sem_t* s) {
  cancel::point();
  return sem_result(acted(Semaphore::wait(s)));
}
UNBLOCK_HOOK int sem_trywait(sem_t* s) { return sem_result(Semaphore::trywait(s)); }
UNBLOCK_HOOK int sem_timedwait(sem_t* s, const struct timespec* abs) {
  cancel::point();
  return sem_result(acted(Semaphore::timedwait(s, CLOCK_REALTIME, abs, false)));
}
UNBLOCK_HOOK int sem_clockwait(sem_t* s, clockid_t clock, const struct timespec* abs) {
  cancel::point();
  return sem_result(acted(Semaphore::timedwait(s, clock, abs, true)));
}
// Async-signal-safe, as POSIX requires.
UNBLOCK_HOOK int sem_post(sem_t* s) { return sem_result(Semaphore::post(s)); }
UNBLOCK_HOOK int sem_getvalue(sem_t* s, int* value) { return sem_result(Semaphore::getvalue(s, value)); }
