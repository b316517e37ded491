// The synchronisation calls of runtime/api.h: pthread mutexes, condition
// variables, rwlocks, barriers, pthread_once and unnamed semaphores, served
// by runtime/sync.* for every thread - also before the runtime starts, on
// plain OS threads, in a forked child - so an object never changes hands
// between two implementations while it is in use.
//
// This file owns the call protocol around the primitives: the cancellation
// points (condition waits, sem_wait and its timed variants) act on a pending
// request on entry, while the caller still holds the mutex, which is the
// state POSIX requires for the cleanup handlers; a request that arrives
// while the thread is parked ends the wait (runtime/sync.h: ECANCELED, after
// a condition wait re-acquired the mutex) and the thread unwinds here
// (cancel::point). Every call that may wait or is called in loops delivers
// the handlers due for the caller on its way out (threads::deliver_due).
#include <pthread.h>
#include <semaphore.h>

#include <cerrno>

#include "runtime/api.h"
#include "runtime/cancel.h"
#include "runtime/sync.h"
#include "runtime/threads.h"

namespace unblock::rt {
namespace {

// The result of a call that may wait or is called in loops: due handlers
// run first. err: 0 or a positive errno.
inline int delivered(int err) {
  threads::deliver_due();
  return -err;
}

// A wait ended by the caller's cancellation request: unwind (never returns
// when the request is due, which ECANCELED says).
inline int acted(int err) {
  if (err == ECANCELED) cancel::point();
  return err;
}

}  // namespace

using sync::Barrier;
using sync::CondVar;
using sync::Mutex;
using sync::Once;
using sync::RwLock;
using sync::Semaphore;

int mutex_init(pthread_mutex_t* m, const pthread_mutexattr_t* attr) { return -Mutex::init(m, attr); }
int mutex_destroy(pthread_mutex_t* m) { return -Mutex::destroy(m); }
int mutex_lock(pthread_mutex_t* m) { return delivered(Mutex::lock(m)); }
int mutex_trylock(pthread_mutex_t* m) { return delivered(Mutex::trylock(m)); }
int mutex_timedlock(pthread_mutex_t* m, clockid_t clock, const timespec* abs, bool check_clock) {
  return delivered(Mutex::timedlock(m, clock, abs, check_clock));
}
int mutex_unlock(pthread_mutex_t* m) { return delivered(Mutex::unlock(m)); }
int mutex_consistent(pthread_mutex_t* m) { return -Mutex::consistent(m); }

int cond_init(pthread_cond_t* c, const pthread_condattr_t* attr) { return -CondVar::init(c, attr); }
int cond_destroy(pthread_cond_t* c) { return -CondVar::destroy(c); }
int cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  cancel::point();
  return delivered(acted(CondVar::wait(c, m)));
}
int cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abs) {
  cancel::point();
  return delivered(acted(CondVar::timedwait(c, m, abs)));
}
int cond_clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock, const timespec* abs) {
  cancel::point();
  return delivered(acted(CondVar::clockwait(c, m, clock, abs)));
}
int cond_signal(pthread_cond_t* c) { return delivered(CondVar::signal(c)); }
int cond_broadcast(pthread_cond_t* c) { return delivered(CondVar::broadcast(c)); }

int rwlock_init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr) { return -RwLock::init(l, attr); }
int rwlock_destroy(pthread_rwlock_t* l) { return -RwLock::destroy(l); }
int rwlock_rdlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool timed) {
  return delivered(RwLock::rdlock(l, clock, abs, timed));
}
int rwlock_tryrdlock(pthread_rwlock_t* l) { return delivered(RwLock::tryrdlock(l)); }
int rwlock_wrlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool timed) {
  return delivered(RwLock::wrlock(l, clock, abs, timed));
}
int rwlock_trywrlock(pthread_rwlock_t* l) { return delivered(RwLock::trywrlock(l)); }
int rwlock_unlock(pthread_rwlock_t* l) { return delivered(RwLock::unlock(l)); }

int barrier_init(pthread_barrier_t* b, const pthread_barrierattr_t* attr, unsigned count) {
  return -Barrier::init(b, attr, count);
}
int barrier_destroy(pthread_barrier_t* b) { return -Barrier::destroy(b); }
int barrier_wait(pthread_barrier_t* b) {
  int r = Barrier::wait(b);
  threads::deliver_due();
  if (r == PTHREAD_BARRIER_SERIAL_THREAD) return kBarrierSerial;
  return -r;
}

int once(pthread_once_t* once, void (*init)()) { return delivered(Once::run(once, init)); }

int sem_init(sem_t* s, int pshared, unsigned value) { return delivered(Semaphore::init(s, pshared, value)); }
int sem_destroy(sem_t* s) { return delivered(Semaphore::destroy(s)); }
int sem_wait(sem_t* s) {
  cancel::point();
  return delivered(acted(Semaphore::wait(s)));
}
int sem_trywait(sem_t* s) { return delivered(Semaphore::trywait(s)); }
int sem_timedwait(sem_t* s, clockid_t clock, const timespec* abs, bool check_clock) {
  cancel::point();
  return delivered(acted(Semaphore::timedwait(s, clock, abs, check_clock)));
}
int sem_post(sem_t* s) { return delivered(Semaphore::post(s)); }
int sem_getvalue(sem_t* s, int* value) { return delivered(Semaphore::getvalue(s, value)); }

}  // namespace unblock::rt
