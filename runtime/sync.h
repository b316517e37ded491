// Fiber-aware POSIX synchronisation, in place on the program's objects.
//
// Responsible for: pthread mutexes (normal, adaptive, recursive,
// errorcheck), condition variables, reader-writer locks, unnamed semaphores,
// barriers and pthread_once, implemented on the parking lot so that a fiber
// that blocks parks (its worker runs other fibers) and a plain OS thread
// sleeps on its futex; both kinds may use one object at the same time.
//
// Every operation works directly on the program's pthread_mutex_t /
// pthread_cond_t / pthread_rwlock_t / sem_t / pthread_barrier_t /
// pthread_once_t, in glibc 2.36's layout, so that statically initialised
// objects (PTHREAD_*_INITIALIZER*), objects initialised by glibc itself, and
// objects used by glibc and then by us all stay correct. The few bits of
// state we add live where glibc's quiescent state has zeros (see each class).
//
// Process-shared objects, robust and priority-protect mutexes (and anything
// this code does not recognise, e.g. a destroyed mutex) are passed to the
// real glibc function, so they keep interoperating with other processes; the
// decision depends only on the object's memory and never changes while it
// is in use. (A fiber blocking in such a glibc call blocks its carrier until
// the monitor hands the worker off.) Process-private priority-inheritance
// mutexes are ours: see Mutex.
//
// Must not: allocate, call a hooked symbol (only unblock::real:: and glibc
// functions the library does not hook), set errno. Every function returns 0
// or a positive errno value, as the pthread functions do; the sem_* hooks
// turn that into -1/errno.
//
// Unless stated otherwise a function: may be called from a fiber or a plain
// OS thread, before or after the runtime starts; may suspend the caller (a
// fiber parks, a plain thread sleeps) where the POSIX function blocks; does
// not allocate (except that the first call into a real:: function resolves
// it, which may); is not async-signal-safe (Semaphore::post is).
//
// Signals: only semaphore waits park interruptibly. sem_wait fails with
// EINTR as glibc's does (always for the timed variants; the untimed one
// keeps waiting if every handler that ran asked for SA_RESTART). Every other
// wait is never cut short: a handler runs on top of the parked wait (a
// plain thread's in the kernel's futex wait, a fiber's by the signals
// module), and the wait goes on, as glibc's futex waits do.
//
// Cancellation (runtime/cancel.h): condition and semaphore waits are
// cancellation points. A due request of the caller ends such a wait with
// ECANCELED - never a result of the POSIX call: the caller (the hook) then
// calls cancel::point(), which unwinds. A condition wait re-acquires the
// mutex first, as POSIX requires for the cleanup handlers.
//
// Not supported (as with any futex-free design): a signal handler that
// itself blocks on one of these primitives while its thread is parked in
// another (none of them but sem_post is async-signal-safe).
#pragma once

#include <pthread.h>
#include <semaphore.h>
#include <time.h>

namespace unblock::sync {

// Mutex words: __lock (offset 0) is the lock word with glibc's own values
// (0 unlocked, 1 locked, 2 locked and waiters may be parked - its waiters
// park on the mutex's address); __owner (8) the owner's thread id (glibc's
// pd->tid, unique per fiber); __count (4) the recursion depth; __nusers (12)
// as glibc keeps it (pthread_mutex_destroy answers EBUSY from it); __kind
// (16) the type bits. Ours: __kind & ~(type | elision flags | PI) == 0.
//
// Process-private priority-inheritance mutexes are ours too, keeping glibc's
// PI error codes (EPERM from any non-owner unlock, EDEADLK from an
// errorcheck trylock) but without priority inheritance: glibc's PI mutexes
// make the kernel look the owner up by the thread id in the lock word, and a
// fiber's id is not a kernel task, so a contended PI lock taken by fibers
// would sleep forever (FUTEX_LOCK_PI fails with ESRCH, and glibc then waits
// for a timeout that pthread_mutex_lock does not have). Robust,
// priority-protect and process-shared mutexes are glibc's.
class Mutex {
 public:
  static bool ours(const pthread_mutex_t* m);
  static int init(pthread_mutex_t* m, const pthread_mutexattr_t* attr);
  static int destroy(pthread_mutex_t* m);
  static int lock(pthread_mutex_t* m);
  static int trylock(pthread_mutex_t* m);
  // pthread_mutex_timedlock (clock = CLOCK_REALTIME, check_clock = false) and
  // pthread_mutex_clocklock (check_clock = true).
  static int timedlock(pthread_mutex_t* m, clockid_t clock, const timespec* abs, bool check_clock);
  static int unlock(pthread_mutex_t* m);
  static int consistent(pthread_mutex_t* m);

  // What the kernel does for an exiting thread's robust mutexes (it never
  // sees a fiber exit): every robust mutex on the list whose lock word names
  // `tid` is marked FUTEX_OWNER_DIED and one waiter is woken, so the next
  // locker gets EOWNERDEAD. robust_head: the dying thread's TCB field
  // pd->robust_head; tid: its thread id. For the runtime's fiber exit path,
  // on the dying fiber or after it; does not allocate or suspend.
  static void owner_exited(void* robust_head, int tid);

  // For condition waits (our mutexes only): the caller must own m (EPERM
  // otherwise, as glibc's condition wait answers for errorcheck/recursive).
  static int check_owner_for_wait(pthread_mutex_t* m);
  // Releases m without counting a user out (__nusers), as glibc's condition
  // wait does. Never suspends.
  static int unlock_for_wait(pthread_mutex_t* m);
  // Re-acquires m after a condition wait, always leaving it marked contended
  // (waiters requeued from the condition may be parked on it).
  static int relock_after_wait(pthread_mutex_t* m);
};

// Condition variables. __wrefs (offset 36) keeps glibc's meaning: bit 0
// process-shared, bit 1 CLOCK_MONOTONIC, bit 2 "a destroyer waits", bits 3+
// the number of waiters still touching the object. Waiters park on the
// condition's address. __wseq (offset 0) holds the mutex the latest waiter
// used - a hint for broadcast's requeue, checked against every waiter's own.
// A process-shared condition waited on with a process-shared (or robust/PI)
// mutex is glibc's; one waited on with one of our mutexes (a process-local
// combination) is ours, and signal/broadcast then serve both.
class CondVar {
 public:
  static int init(pthread_cond_t* c, const pthread_condattr_t* attr);
  static int destroy(pthread_cond_t* c);
  static int wait(pthread_cond_t* c, pthread_mutex_t* m);
  // pthread_cond_timedwait: the clock chosen at init.
  static int timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abs);
  static int clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock, const timespec* abs);
  static int signal(pthread_cond_t* c);
  static int broadcast(pthread_cond_t* c);
};

// Reader-writer locks. __readers (offset 0) is the state word with glibc's
// bit positions: bit 1 write-locked, bit 2 readers parked (glibc: readers
// waiting), bits 3..30 the reader count, plus bit 31 writers parked (glibc
// uses bit 31 only transiently, to detect reader overflow); glibc's bit 0
// (write phase) carries no meaning for us and is cleared by our updates, so
// both of glibc's idle states (0 and 1) read as unlocked. __cur_writer (24)
// is the writing thread's id (EDEADLK detection, as glibc). Readers park on
// the lock's address, writers on &__writers (offset 4). __flags (48) selects
// the policy as in glibc: PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP stops
// new readers while a writer waits; both PREFER_WRITER kinds hand the lock
// from writer to waiting writer; the default prefers readers.
class RwLock {
 public:
  static int init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr);
  static int destroy(pthread_rwlock_t* l);
  // abs == nullptr: untimed. check (timed/clock variants): validate
  // clock and abs up front, as glibc does.
  static int rdlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool check);
  static int wrlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool check);
  static int tryrdlock(pthread_rwlock_t* l);
  static int trywrlock(pthread_rwlock_t* l);
  static int unlock(pthread_rwlock_t* l);
};

// Unnamed semaphores, glibc's 64-bit layout: data (offset 0) = value in the
// low 32 bits, registered waiters in the high 32; private (8) = 0 for a
// process-private semaphore, 128 (FUTEX_SHARED) for a shared one. Waiters
// park on the semaphore's address.
class Semaphore {
 public:
  static int init(sem_t* s, int pshared, unsigned value);
  static int destroy(sem_t* s);
  static int wait(sem_t* s);
  static int trywait(sem_t* s);
  // sem_timedwait (clock = CLOCK_REALTIME, check_clock = false) and
  // sem_clockwait (check_clock = true).
  static int timedwait(sem_t* s, clockid_t clock, const timespec* abs, bool check_clock);
  // Async-signal-safe (see parking_lot::unpark_one_signal_safe).
  static int post(sem_t* s);
  static int getvalue(sem_t* s, int* value);
};

// Barriers, glibc's layout {in, current_round, count, shared, out}: arrivals
// of the current round are in - current_round, and the last arrival sets
// current_round = in (glibc's idle state has in == current_round). All
// updates happen under the parking-lot bucket lock of the barrier's address.
// shared (12) = 128 for a process-shared barrier.
class Barrier {
 public:
  static int init(pthread_barrier_t* b, const pthread_barrierattr_t* attr, unsigned count);
  static int destroy(pthread_barrier_t* b);
  static int wait(pthread_barrier_t* b);
};

// pthread_once with glibc's values: 0 not run, 2 done, in progress
// (generation << 2) | 1, where the generation changes in every forked child
// so that a child can restart an initialisation its parent's other thread
// had begun. Waiters park on the once object. The init routine may itself
// park; if it exits by unwinding (C++ exception, pthread_exit) the object is
// reset and another caller runs the routine, as with glibc.
class Once {
 public:
  static int run(pthread_once_t* once, void (*init)());
};

}  // namespace unblock::sync
