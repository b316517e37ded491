// Fiber-aware synchronisation primitives (see sync.h for layouts and rules).
//
// The glibc 2.36 facts this file relies on (read in nptl/ and sysdeps/nptl/
// of glibc-2.36: pthread_mutex_{init,lock,timedlock,trylock,unlock,destroy}.c,
// pthread_cond_{init,wait,destroy}.c, pthread_rwlock_{init,common,tryrdlock}.c,
// sem_{init,post,waitcommon,timedwait,clockwait}.c, pthread_barrier_*.c,
// pthread_once.c, internaltypes.h, pthreadP.h, futex-internal.[ch]) are
// restated next to the code that depends on them.
#include "runtime/sync.h"
#include "shim/raw_syscall.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

#include "runtime/api.h"
#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/parking_lot.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "runtime/threads.h"
#include "runtime/tls.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::sync {
namespace {

using parking_lot::ParkOutcome;
using parking_lot::ParkStatus;

template <typename T>
std::atomic_ref<T> ref(T& x) {
  return std::atomic_ref<T>(x);
}

bool valid_nsec(const timespec* ts) { return ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// glibc's futex_abstimed_supported_clockid().
bool supported_clock(clockid_t c) { return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC; }

Deadline deadline_of(clockid_t clock, const timespec* abs) {
  return abs ? Deadline::at(clock, *abs) : Deadline::never();
}

// What glibc's futex wait answers before sleeping on an absolute timeout
// (__futex_abstimed_wait_common: tv_sec < 0 is ETIMEDOUT; the kernel
// rejects a bad tv_nsec with EINVAL). 0: go ahead and wait.
int futex_timeout_check(const timespec* abs) {
  if (!abs) return 0;
  if (abs->tv_sec < 0) return ETIMEDOUT;
  if (!valid_nsec(abs)) return EINVAL;
  return 0;
}

// An interruptible park (semaphores only) came back kInterrupted: a signal
// handler is due for this thread. A fiber runs its handlers here (the EINTR
// contract of runtime/signals.h); a plain OS thread's handler already ran in
// the kernel's futex wait, which also applied SA_RESTART (an untimed wait
// was restarted in the kernel, so we never see it). Returns true when every
// handler asked for SA_RESTART.
bool after_interrupt() {
  Fiber* f = Fiber::current();
  if (f && sched::active()) return signals::run_pending(f);
  return false;
}

void cpu_relax() { __builtin_ia32_pause(); }

// ---------------------------------------------------------------- Mutex ----

// __kind bits (pthreadP.h): type in bits 0-1 (NORMAL/TIMED 0, RECURSIVE 1,
// ERRORCHECK 2, ADAPTIVE 3); ROBUST 16, PRIO_INHERIT 32, PRIO_PROTECT 64,
// PSHARED 128; ELISION 256 and NO_ELISION 512 only tune glibc's lock
// elision. pthread_mutex_destroy stores -1.
constexpr int kTypeMask = 3;
constexpr int kRecursive = PTHREAD_MUTEX_RECURSIVE_NP;
constexpr int kErrorcheck = PTHREAD_MUTEX_ERRORCHECK_NP;
constexpr int kAdaptive = PTHREAD_MUTEX_ADAPTIVE_NP;
constexpr int kElisionFlags = 256 | 512;
constexpr int kPiBit = 32;

// Robust futexes (linux/futex.h, glibc's pthreadP.h).
constexpr unsigned kFutexWaiters = 0x80000000u, kFutexOwnerDied = 0x40000000u, kFutexTidMask = 0x3fffffffu;

constexpr int kUnlocked = 0, kLocked = 1, kContended = 2;

int mutex_kind(const pthread_mutex_t* m) {
  return ref(const_cast<int&>(m->__data.__kind)).load(std::memory_order_relaxed);
}
int mutex_type(const pthread_mutex_t* m) { return mutex_kind(m) & kTypeMask; }
// A process-private priority-inheritance mutex (ours, see Mutex in sync.h):
// glibc checks the owner on every unlock of these, whatever the type.
bool mutex_pi(const pthread_mutex_t* m) { return mutex_kind(m) & kPiBit; }

// Spin briefly before parking: the owner may be running on another CPU and
// about to release. Kept short because a fiber owner on this worker cannot
// run while we spin.
constexpr int kMutexSpins = 40;
constexpr int kAdaptiveSpins = 100;

// Acquires the lock word (Drepper's three-state mutex over the parking lot:
// a waiter marks the word contended and parks while it stays contended; an
// unlock that finds it contended unparks one waiter). Returns 0, or
// ETIMEDOUT/EINVAL for a timed lock, as glibc's __futex_clocklock64.
int lock_word_slow(pthread_mutex_t* m, clockid_t clock, const timespec* abs, int spins) {
  auto word = ref(m->__data.__lock);
  for (int i = 0; i < spins; ++i) {
    int v = word.load(std::memory_order_relaxed);
    if (v == kContended) break;  // others are queued: join them
    if (v == kUnlocked && word.compare_exchange_weak(v, kLocked, std::memory_order_acquire)) return 0;
    cpu_relax();
  }
  Deadline d = deadline_of(clock, abs);
  // acquire: pairs with the release exchange in unlock.
  while (word.exchange(kContended, std::memory_order_acquire) != kUnlocked) {
    if (int e = futex_timeout_check(abs)) return e;
    // Not interruptible: a handler runs on top of the wait, which goes on.
    ParkOutcome r = parking_lot::park(
        m, [&] { return word.load(std::memory_order_relaxed) == kContended; }, d, WaitReason::kMutex, false);
    if (r.status == ParkStatus::kTimedOut) return ETIMEDOUT;
  }
  return 0;
}

int lock_word(pthread_mutex_t* m, clockid_t clock, const timespec* abs, int type) {
  int expected = kUnlocked;
  if (ref(m->__data.__lock).compare_exchange_strong(expected, kLocked, std::memory_order_acquire)) return 0;
  return lock_word_slow(m, clock, abs, type == kAdaptive ? kAdaptiveSpins : kMutexSpins);
}

void record_owner(pthread_mutex_t* m, int tid, int type, bool count_user) {
  ref(m->__data.__owner).store(tid, std::memory_order_relaxed);
  if (type == kRecursive) m->__data.__count = 1;
  if (count_user) ++m->__data.__nusers;
}

// The common lock path of lock/timedlock (glibc's order of checks).
int mutex_acquire(pthread_mutex_t* m, clockid_t clock, const timespec* abs) {
  int type = mutex_type(m);
  int tid = current_thread_id();
  if (type == kRecursive || type == kErrorcheck) {
    if (ref(m->__data.__owner).load(std::memory_order_relaxed) == tid) {
      if (type == kErrorcheck) return EDEADLK;
      if (m->__data.__count + 1 == 0) return EAGAIN;
      ++m->__data.__count;
      return 0;
    }
  }
  if (int e = lock_word(m, clock, abs, type)) return e;
  record_owner(m, tid, type, true);
  return 0;
}

// Unlock; count_user: also count a user out (__nusers), as every unlock
// except a condition wait's does.
int mutex_release(pthread_mutex_t* m, bool count_user) {
  int type = mutex_type(m);
  if (type == kRecursive || type == kErrorcheck || mutex_pi(m)) {
    int tid = current_thread_id();
    if (ref(m->__data.__owner).load(std::memory_order_relaxed) != tid) return EPERM;
    if (type != kRecursive && ref(m->__data.__lock).load(std::memory_order_relaxed) == kUnlocked) return EPERM;
    if (type == kRecursive && --m->__data.__count != 0) return 0;
  }
  ref(m->__data.__owner).store(0, std::memory_order_relaxed);
  if (count_user) --m->__data.__nusers;
  // release: pairs with the acquiring exchange/CAS. After this exchange *m
  // may be destroyed by its next owner: only its address is used below.
  if (ref(m->__data.__lock).exchange(kUnlocked, std::memory_order_release) == kContended) {
    parking_lot::unpark_one(m);
  }
  return 0;
}

// ------------------------------------------------------------- CondVar ----

// __wrefs bits (pthread_cond_wait.c).
constexpr unsigned kCondShared = 1, kCondMonotonic = 2, kCondDestroying = 4, kCondRef = 8;

std::atomic_ref<unsigned> cond_wrefs(pthread_cond_t* c) { return ref(c->__data.__wrefs); }
bool cond_shared(pthread_cond_t* c) { return cond_wrefs(c).load(std::memory_order_relaxed) & kCondShared; }
std::atomic_ref<unsigned long long> cond_hint(pthread_cond_t* c) { return ref(c->__data.__wseq.__value64); }

// A waiter stops referencing the condition (glibc's
// __condvar_confirm_wakeup). After this, c may be destroyed.
void cond_release_refs(pthread_cond_t* c, unsigned n) {
  unsigned* w = &c->__data.__wrefs;
  // release: pairs with destroy's acquire (its fetch_or/loads), so the
  // waiter's uses of c happen before the memory is reused.
  unsigned old = ref(*w).fetch_sub(n * kCondRef, std::memory_order_release);
  if ((old >> 3) == n && (old & kCondDestroying)) {
    if (old & kCondShared) {
      // A process-shared condition is destroyed by glibc, which waits on
      // the futex.
      raw_syscall(SYS_futex, reinterpret_cast<long>(w), FUTEX_WAKE, INT_MAX);
    } else {
      parking_lot::unpark_all(w);
    }
  }
}

// True if glibc must run the whole wait: a process-shared condition with a
// mutex that is not ours (another process may be waiting or signalling).
bool cond_forwarded(pthread_cond_t* c, pthread_mutex_t* m) { return cond_shared(c) && !Mutex::ours(m); }

int cond_wait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock, const timespec* abs) {
  bool mutex_ours = Mutex::ours(m);
  if (mutex_ours) {
    if (int e = Mutex::check_owner_for_wait(m)) return e;
  }
  bool shared = cond_shared(c);
  // seq_cst: the count must be visible to a signaller that acquires m after
  // we release it (before_sleep) - or that reads it without m, best effort.
  cond_wrefs(c).fetch_add(kCondRef, std::memory_order_seq_cst);
  uintptr_t tag = 0;
  if (mutex_ours && !shared) {
    tag = reinterpret_cast<uintptr_t>(m);
    cond_hint(c).store(tag, std::memory_order_relaxed);
  }
  int unlock_err = 0;
  ParkOutcome r = parking_lot::park(
      c, [] { return true; },
      [&] {
        unlock_err = mutex_ours ? Mutex::unlock_for_wait(m) : real::pthread_mutex_unlock(m);
        return unlock_err == 0;
      },
      [](bool) {}, deadline_of(clock, abs), WaitReason::kCond, false, &tag, /*cancellable=*/true);
  if (unlock_err) {
    // The wait never started (e.g. EPERM from a robust mutex). A signal that
    // picked us meanwhile belongs to someone else: pass it on.
    if (r.status == ParkStatus::kUnparked) parking_lot::unpark_one(c);
    cond_release_refs(c, 1);
    return unlock_err;
  }
  // A requeued waiter's reference was dropped by the broadcaster.
  if (!r.requeued) cond_release_refs(c, 1);
  // Do not touch c from here on: it may already be destroyed.
  int err = mutex_ours ? Mutex::relock_after_wait(m) : real::pthread_mutex_lock(m);
  if (err) return err;
  // Cancelled while waiting (not signalled: a signal that chose us wins and
  // the request waits for the next cancellation point, so no signal is
  // consumed by a cancelled waiter). The mutex is held again, as POSIX wants
  // it for the cleanup handlers.
  if (r.status == ParkStatus::kInterrupted) return ECANCELED;
  // A requeued waiter was woken by the broadcast already; if its deadline
  // passed while it queued for the mutex, that is not a timeout of the
  // condition wait (glibc's waiter would be blocked in the mutex then).
  return r.status == ParkStatus::kTimedOut && !r.requeued ? ETIMEDOUT : 0;
}

// -------------------------------------------------------------- RwLock ----

constexpr unsigned kRwWrPhase = 1;        // glibc's write-phase bit: ignored, cleared
constexpr unsigned kRwWriter = 2;         // write-locked (glibc PTHREAD_RWLOCK_WRLOCKED)
constexpr unsigned kRwReadersParked = 4;  // glibc PTHREAD_RWLOCK_RWAITING's position
constexpr unsigned kRwOneReader = 8;      // glibc PTHREAD_RWLOCK_READER_SHIFT 3
constexpr unsigned kRwWritersParked = 1u << 31;
constexpr unsigned kRwReaderMask = 0x7ffffff8u;
constexpr uintptr_t kHandoff = 1;  // token: the write lock was handed to the woken writer

unsigned readers_of(unsigned s) { return (s & kRwReaderMask) >> 3; }

std::atomic_ref<unsigned> rw_state(pthread_rwlock_t* l) { return ref(l->__data.__readers); }
const void* rw_reader_key(pthread_rwlock_t* l) { return &l->__data.__readers; }
const void* rw_writer_key(pthread_rwlock_t* l) { return &l->__data.__writers; }
bool rw_shared(const pthread_rwlock_t* l) { return l->__data.__shared != 0; }
// glibc: only ..._NONRECURSIVE_NP stops new readers while a writer waits;
// any kind but PREFER_READER hands the lock from writer to writer.
bool rw_no_new_readers(const pthread_rwlock_t* l) {
  return l->__data.__flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP;
}
bool rw_writer_handoff(const pthread_rwlock_t* l) { return l->__data.__flags != PTHREAD_RWLOCK_PREFER_READER_NP; }

// Whether a reader must wait in state s.
bool reader_blocked(unsigned s, bool no_new_readers) {
  return (s & kRwWriter) || (no_new_readers && (s & kRwWritersParked) && readers_of(s) > 0);
}

// Wakes every parked reader, clearing the flag under the bucket lock.
size_t wake_readers(pthread_rwlock_t* l) {
  auto st = rw_state(l);
  return parking_lot::unpark_all(rw_reader_key(l), 0,
                                 [&](size_t) { st.fetch_and(~kRwReadersParked, std::memory_order_relaxed); });
}

// Wakes one parked writer (clears the flag when none remains). Returns
// whether one was woken.
bool wake_writer(pthread_rwlock_t* l) {
  auto st = rw_state(l);
  return parking_lot::unpark_one(rw_writer_key(l), [&](parking_lot::UnparkInfo info) -> uintptr_t {
    if (!info.have_more) st.fetch_and(~kRwWritersParked, std::memory_order_relaxed);
    return 0;
  });
}

void rw_write_unlock(pthread_rwlock_t* l) {
  auto st = rw_state(l);
  ref(l->__data.__cur_writer).store(0, std::memory_order_relaxed);
  if (rw_writer_handoff(l) && (st.load(std::memory_order_relaxed) & kRwWritersParked)) {
    // Hand the write lock straight to a parked writer: the lock word keeps
    // kRwWriter, so no reader (nor barging writer) gets in between.
    bool handed = false;
    parking_lot::unpark_one(rw_writer_key(l), [&](parking_lot::UnparkInfo info) -> uintptr_t {
      if (!info.have_more) st.fetch_and(~kRwWritersParked, std::memory_order_relaxed);
      handed = info.unparked;
      return info.unparked ? kHandoff : 0;
    });
    if (handed) return;
  }
  // release: pairs with the acquire CAS of the next reader or writer.
  unsigned s = st.fetch_and(~(kRwWriter | kRwWrPhase), std::memory_order_release);
  if (s & kRwReadersParked) {
    if (wake_readers(l) > 0) return;
  }
  if (st.load(std::memory_order_relaxed) & kRwWritersParked) {
    if (!wake_writer(l) && (st.load(std::memory_order_relaxed) & kRwReadersParked)) wake_readers(l);
  }
}

void rw_read_unlock(pthread_rwlock_t* l) {
  auto st = rw_state(l);
  unsigned s = st.load(std::memory_order_relaxed);
  unsigned n;
  do {
    if (readers_of(s) == 0) return;  // not read-locked: glibc would corrupt its state; we ignore it
    n = (s - kRwOneReader) & ~kRwWrPhase;
    // release: pairs with the acquire CAS of the next writer.
  } while (!st.compare_exchange_weak(s, n, std::memory_order_release, std::memory_order_relaxed));
  if (readers_of(n) == 0 && !(n & kRwWriter) && (n & kRwWritersParked)) {
    // Last reader out: let a writer in. If none was really parked, readers
    // that waited only because of the (stale) writers flag may go.
    if (!wake_writer(l) && (st.load(std::memory_order_relaxed) & kRwReadersParked)) wake_readers(l);
  }
}

// ------------------------------------------------------------ Semaphore ----

// internaltypes.h, 64-bit atomics: struct new_sem { uint64_t data; int
// private; int pad; }; value in the low 32 bits of data, registered waiters
// in the high 32 (SEM_NWAITERS_SHIFT); private is FUTEX_PRIVATE (0) or
// FUTEX_SHARED (128). sem_post fails with EOVERFLOW at SEM_VALUE_MAX.
struct SemLayout {
  uint64_t data;
  int priv;
  int pad;
};
static_assert(sizeof(SemLayout) <= sizeof(sem_t));
constexpr uint64_t kSemValueMask = 0xffffffffu;
constexpr uint64_t kSemWaiter = uint64_t{1} << 32;
constexpr int kFutexShared = 128;

SemLayout* sem_of(sem_t* s) { return reinterpret_cast<SemLayout*>(s); }
bool sem_shared(sem_t* s) { return sem_of(s)->priv != 0; }

// glibc's __new_sem_wait_fast with definitive_result.
bool sem_try_take(SemLayout* s) {
  auto d = ref(s->data);
  uint64_t v = d.load(std::memory_order_relaxed);
  while (v & kSemValueMask) {
    // acquire: pairs with post's release.
    if (d.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  }
  return false;
}

int sem_wait_slow(sem_t* sem, clockid_t clock, const timespec* abs) {
  SemLayout* s = sem_of(sem);
  auto d = ref(s->data);
  uint64_t v = d.fetch_add(kSemWaiter, std::memory_order_relaxed) + kSemWaiter;
  Deadline dl = deadline_of(clock, abs);
  for (;;) {
    if (v & kSemValueMask) {
      // Take a token and stop being a waiter in one step.
      if (d.compare_exchange_weak(v, v - 1 - kSemWaiter, std::memory_order_acquire, std::memory_order_relaxed)) {
        return 0;
      }
      continue;
    }
    int err = 0;
    if (abs && abs->tv_sec < 0) err = ETIMEDOUT;  // glibc's futex wait: no sleep for tv_sec < 0
    if (!err) {
      ParkOutcome r = parking_lot::park(
          s, [&] { return (d.load(std::memory_order_relaxed) & kSemValueMask) == 0; }, dl, WaitReason::kSemaphore,
          true);
      if (r.status == ParkStatus::kTimedOut) err = ETIMEDOUT;
      // The kernel restarts an untimed futex wait whose handlers all have
      // SA_RESTART, and fails a timed one with EINTR (glibc then returns it).
      if (r.status == ParkStatus::kInterrupted) {
        bool restart = after_interrupt();
        if (cancel::due_tp(tls::current_tp())) {
          err = ECANCELED;  // the caller acts on it (cancel::point)
        } else if (!(restart && !abs)) {
          err = EINTR;
        }
      }
    }
    if (err) {
      d.fetch_sub(kSemWaiter, std::memory_order_relaxed);
      return err;
    }
    v = d.load(std::memory_order_relaxed);
  }
}

// -------------------------------------------------------------- Barrier ----

// internaltypes.h: struct pthread_barrier; BARRIER_IN_THRESHOLD UINT_MAX/2;
// shared is FUTEX_PRIVATE (0) or FUTEX_SHARED (128).
struct BarrierLayout {
  unsigned in;
  unsigned current_round;
  unsigned count;
  int shared;
  unsigned out;
};
static_assert(sizeof(BarrierLayout) <= sizeof(pthread_barrier_t));
BarrierLayout* barrier_of(pthread_barrier_t* b) { return reinterpret_cast<BarrierLayout*>(b); }

// ----------------------------------------------------------------- Once ----

constexpr int kOnceInProgress = 1, kOnceDone = 2;

}  // namespace

// ---------------------------------------------------------------- Mutex ----

bool Mutex::ours(const pthread_mutex_t* m) { return (mutex_kind(m) & ~(kTypeMask | kElisionFlags | kPiBit)) == 0; }

int Mutex::init(pthread_mutex_t* m, const pthread_mutexattr_t* attr) {
  int type = PTHREAD_MUTEX_NORMAL;
  if (attr) {
    int pshared = PTHREAD_PROCESS_PRIVATE, robust = PTHREAD_MUTEX_STALLED, protocol = PTHREAD_PRIO_NONE;
    pthread_mutexattr_getpshared(attr, &pshared);
    pthread_mutexattr_getrobust(attr, &robust);
    pthread_mutexattr_getprotocol(attr, &protocol);
    if (pshared != PTHREAD_PROCESS_PRIVATE || robust != PTHREAD_MUTEX_STALLED ||
        (protocol != PTHREAD_PRIO_NONE && protocol != PTHREAD_PRIO_INHERIT)) {
      return real::pthread_mutex_init(m, attr);  // glibc's kinds, glibc's checks (ENOTSUP...)
    }
    pthread_mutexattr_gettype(attr, &type);
    if (protocol == PTHREAD_PRIO_INHERIT) type |= kPiBit;
  }
  // As glibc: clear the object, then store the kind.
  memset(m, 0, sizeof *m);
  ref(m->__data.__kind).store(type & (kTypeMask | kPiBit), std::memory_order_relaxed);
  return 0;
}

int Mutex::destroy(pthread_mutex_t* m) {
  if (!ours(m)) return real::pthread_mutex_destroy(m);
  // As glibc: busy while a user holds (or waits in a condition with) it.
  if (m->__data.__nusers != 0) return EBUSY;
  ref(m->__data.__kind).store(-1, std::memory_order_relaxed);
  return 0;
}

int Mutex::lock(pthread_mutex_t* m) {
  if (!ours(m)) return real::pthread_mutex_lock(m);
  return mutex_acquire(m, CLOCK_REALTIME, nullptr);
}

int Mutex::timedlock(pthread_mutex_t* m, clockid_t clock, const timespec* abs, bool check_clock) {
  if (!ours(m)) {
    return check_clock ? real::pthread_mutex_clocklock(m, clock, abs) : real::pthread_mutex_timedlock(m, abs);
  }
  // glibc checks the clock up front, the timeout only when about to block.
  if (check_clock && !supported_clock(clock)) return EINVAL;
  return mutex_acquire(m, clock, abs);
}

int Mutex::trylock(pthread_mutex_t* m) {
  if (!ours(m)) return real::pthread_mutex_trylock(m);
  int type = mutex_type(m);
  int tid = current_thread_id();
  int owner = ref(m->__data.__owner).load(std::memory_order_relaxed);
  if (type == kRecursive && owner == tid) {
    if (m->__data.__count + 1 == 0) return EAGAIN;
    ++m->__data.__count;
    return 0;
  }
  // glibc: only the priority-inheritance kind reports EDEADLK from trylock.
  if (type == kErrorcheck && mutex_pi(m) && owner == tid) return EDEADLK;
  int expected = kUnlocked;
  if (!ref(m->__data.__lock).compare_exchange_strong(expected, kLocked, std::memory_order_acquire)) return EBUSY;
  record_owner(m, tid, type, true);
  return 0;
}

int Mutex::unlock(pthread_mutex_t* m) {
  if (!ours(m)) return real::pthread_mutex_unlock(m);
  return mutex_release(m, true);
}

int Mutex::consistent(pthread_mutex_t* m) { return real::pthread_mutex_consistent(m); }

void Mutex::owner_exited(void* robust_head, int tid) {
  // struct robust_list_head (linux/futex.h): { list.next; futex_offset;
  // list_op_pending }. Entries point at a mutex's __list.__next; bit 0 of
  // an entry marks a PI futex. What the kernel's exit_robust_list and
  // handle_futex_death do for an exiting task, for a fiber's TCB.
  struct Head {
    void* next;
    long futex_offset;
    void* pending;
  };
  auto* head = static_cast<Head*>(robust_head);
  if (!head || !head->next) return;
  // glibc's value (offsetof __lock - offsetof __list.__next), in case a TCB
  // was never given one.
  constexpr long kGlibcOffset = -static_cast<long>(offsetof(__pthread_mutex_s, __list.__next));
  long offset = head->futex_offset ? head->futex_offset : kGlibcOffset;
  auto death = [&](uintptr_t entry, bool pending) {
    bool pi = entry & 1;
    auto* word = reinterpret_cast<unsigned*>((entry & ~uintptr_t{1}) + offset);
    auto w = ref(*word);
    unsigned v = w.load(std::memory_order_relaxed);
    for (;;) {
      if (pending && !pi && v == 0) {
        raw_syscall(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE, 1);
        return;
      }
      if ((v & kFutexTidMask) != static_cast<unsigned>(tid)) return;
      unsigned dead = (v & kFutexWaiters) | kFutexOwnerDied;
      if (w.compare_exchange_weak(v, dead, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
    }
    // Robust waiters sleep on a shared futex (glibc: the kernel never wakes
    // them with FUTEX_PRIVATE_FLAG).
    if (!pi && (v & kFutexWaiters)) raw_syscall(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE, 1);
  };
  uintptr_t pending = reinterpret_cast<uintptr_t>(head->pending);
  uintptr_t entry = reinterpret_cast<uintptr_t>(head->next);
  for (int limit = 2048; (entry & ~uintptr_t{1}) != reinterpret_cast<uintptr_t>(head) && limit > 0; --limit) {
    uintptr_t next = reinterpret_cast<uintptr_t>(*reinterpret_cast<void**>(entry & ~uintptr_t{1}));
    if (entry != pending) death(entry, false);
    entry = next;
  }
  if (pending) death(pending, true);
  head->next = head;
  head->pending = nullptr;
}

int Mutex::check_owner_for_wait(pthread_mutex_t* m) {
  // glibc's __pthread_mutex_unlock_usercnt: only recursive and errorcheck
  // mutexes check the owner.
  int type = mutex_type(m);
  if (type != kRecursive && type != kErrorcheck && !mutex_pi(m)) return 0;
  if (ref(m->__data.__owner).load(std::memory_order_relaxed) != current_thread_id()) return EPERM;
  if (type != kRecursive && ref(m->__data.__lock).load(std::memory_order_relaxed) == kUnlocked) return EPERM;
  return 0;
}

int Mutex::unlock_for_wait(pthread_mutex_t* m) { return mutex_release(m, false); }

int Mutex::relock_after_wait(pthread_mutex_t* m) {
  int type = mutex_type(m);
  int tid = current_thread_id();
  if (type == kRecursive && ref(m->__data.__owner).load(std::memory_order_relaxed) == tid) {
    // A recursive mutex held more than once was never released by the wait
    // (glibc's behaviour): take back the level the wait gave up.
    ++m->__data.__count;
    return 0;
  }
  // Like glibc's __pthread_mutex_cond_lock: acquire as "contended" so that
  // our unlock wakes the waiters a broadcast requeued onto the mutex.
  auto word = ref(m->__data.__lock);
  while (word.exchange(kContended, std::memory_order_acquire) != kUnlocked) {
    parking_lot::park(
        m, [&] { return word.load(std::memory_order_relaxed) == kContended; }, Deadline::never(), WaitReason::kMutex,
        false);
  }
  record_owner(m, tid, type, false);
  return 0;
}

// ------------------------------------------------------------- CondVar ----

int CondVar::init(pthread_cond_t* c, const pthread_condattr_t* attr) {
  unsigned flags = 0;
  if (attr) {
    int pshared = PTHREAD_PROCESS_PRIVATE;
    clockid_t clock = CLOCK_REALTIME;
    pthread_condattr_getpshared(attr, &pshared);
    pthread_condattr_getclock(attr, &clock);
    if (pshared != PTHREAD_PROCESS_PRIVATE) flags |= kCondShared;
    if (clock != CLOCK_REALTIME) flags |= kCondMonotonic;  // glibc: anything else is MONOTONIC
  }
  memset(c, 0, sizeof *c);
  cond_wrefs(c).store(flags, std::memory_order_relaxed);
  return 0;
}

int CondVar::destroy(pthread_cond_t* c) {
  if (cond_shared(c)) return real::pthread_cond_destroy(c);
  // As glibc: wait until every woken waiter stopped touching the object.
  auto w = cond_wrefs(c);
  // acquire: pairs with the waiters' release in cond_release_refs.
  unsigned v = w.fetch_or(kCondDestroying, std::memory_order_acquire);
  while ((v >> 3) != 0) {
    parking_lot::park(
        &c->__data.__wrefs, [&] { return (w.load(std::memory_order_relaxed) >> 3) != 0; }, Deadline::never(),
        WaitReason::kCond, false);
    v = w.load(std::memory_order_acquire);
  }
  return 0;
}

int CondVar::wait(pthread_cond_t* c, pthread_mutex_t* m) {
  if (cond_forwarded(c, m)) return real::pthread_cond_wait(c, m);
  return cond_wait(c, m, CLOCK_REALTIME, nullptr);
}

int CondVar::timedwait(pthread_cond_t* c, pthread_mutex_t* m, const timespec* abs) {
  // glibc: tv_nsec first (before the mutex is released), then the clock
  // stored at init.
  if (!valid_nsec(abs)) return EINVAL;
  if (cond_forwarded(c, m)) return real::pthread_cond_timedwait(c, m, abs);
  clockid_t clock = (cond_wrefs(c).load(std::memory_order_relaxed) & kCondMonotonic) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
  return cond_wait(c, m, clock, abs);
}

int CondVar::clockwait(pthread_cond_t* c, pthread_mutex_t* m, clockid_t clock, const timespec* abs) {
  if (!valid_nsec(abs)) return EINVAL;
  if (!supported_clock(clock)) return EINVAL;
  if (cond_forwarded(c, m)) return real::pthread_cond_clockwait(c, m, clock, abs);
  return cond_wait(c, m, clock, abs);
}

int CondVar::signal(pthread_cond_t* c) {
  if (cond_shared(c)) real::pthread_cond_signal(c);  // its waiters in other processes; ours below
  // As glibc: nothing to do without waiters. seq_cst pairs with the waiters'
  // increment.
  if ((cond_wrefs(c).load(std::memory_order_seq_cst) >> 3) == 0) return 0;
  parking_lot::unpark_one(c);
  return 0;
}

int CondVar::broadcast(pthread_cond_t* c) {
  bool shared = cond_shared(c);
  if (shared) real::pthread_cond_broadcast(c);
  if ((cond_wrefs(c).load(std::memory_order_seq_cst) >> 3) == 0) return 0;
  auto* m = reinterpret_cast<pthread_mutex_t*>(cond_hint(c).load(std::memory_order_relaxed));
  if (shared || !m) {
    parking_lot::unpark_all(c);
    return 0;
  }
  // Wake one waiter and move the others that use the same mutex onto the
  // mutex's queue: they would only block on it after waking. Each requeued
  // waiter's reference to c is dropped here, since it leaves without
  // touching c again. m is dereferenced only if a waiter with that very
  // mutex was found, so a stale hint is harmless.
  bool wake_destroyer = false;
  parking_lot::unpark_requeue(c, m, [&](const parking_lot::RequeueInfo& info) {
    if (!info.requeued) return;
    // The woken waiter re-locks as "contended"; if m is held now, make sure
    // its owner's unlock will wake the requeued ones.
    auto word = ref(m->__data.__lock);
    int v = word.load(std::memory_order_relaxed);
    while (v == kLocked && !word.compare_exchange_weak(v, kContended, std::memory_order_relaxed)) {
    }
    unsigned n = static_cast<unsigned>(info.requeued);
    unsigned old = cond_wrefs(c).fetch_sub(n * kCondRef, std::memory_order_release);
    wake_destroyer = (old >> 3) == n && (old & kCondDestroying);
  });
  if (wake_destroyer) parking_lot::unpark_all(&c->__data.__wrefs);
  return 0;
}

// -------------------------------------------------------------- RwLock ----

int RwLock::init(pthread_rwlock_t* l, const pthread_rwlockattr_t* attr) {
  int kind = PTHREAD_RWLOCK_DEFAULT_NP, pshared = PTHREAD_PROCESS_PRIVATE;
  if (attr) {
    pthread_rwlockattr_getkind_np(attr, &kind);
    pthread_rwlockattr_getpshared(attr, &pshared);
  }
  memset(l, 0, sizeof *l);
  l->__data.__flags = static_cast<unsigned>(kind);
  l->__data.__shared = pshared != PTHREAD_PROCESS_PRIVATE;  // glibc: a private lock has 0
  return 0;
}

int RwLock::destroy(pthread_rwlock_t* l) { return 0; }  // glibc does nothing either

int RwLock::rdlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool check) {
  if (rw_shared(l)) {
    // glibc's timed variant is the clock variant on CLOCK_REALTIME.
    return check ? real::pthread_rwlock_clockrdlock(l, clock, abs) : real::pthread_rwlock_rdlock(l);
  }
  // glibc: an invalid clock or tv_nsec is EINVAL even if the lock is free,
  // then EDEADLK for the writer itself.
  if (check && abs && (!supported_clock(clock) || !valid_nsec(abs))) return EINVAL;
  if (ref(l->__data.__cur_writer).load(std::memory_order_relaxed) == current_thread_id()) return EDEADLK;
  bool nr = rw_no_new_readers(l);
  auto st = rw_state(l);
  Deadline d = deadline_of(clock, abs);
  for (;;) {
    unsigned s = st.load(std::memory_order_relaxed);
    if (!reader_blocked(s, nr)) {
      if (readers_of(s) == kRwReaderMask >> 3) return EAGAIN;
      // acquire: pairs with the release of the last writer's unlock.
      if (st.compare_exchange_weak(s, (s & ~kRwWrPhase) + kRwOneReader, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
        return 0;
      }
      continue;
    }
    if (!(s & kRwReadersParked) && !st.compare_exchange_weak(s, s | kRwReadersParked, std::memory_order_relaxed)) {
      continue;
    }
    ParkOutcome r = parking_lot::park(
        rw_reader_key(l),
        [&] {
          unsigned v = st.load(std::memory_order_relaxed);
          return (v & kRwReadersParked) && reader_blocked(v, nr);
        },
        [] { return true; },
        [&](bool last) {
          if (last) st.fetch_and(~kRwReadersParked, std::memory_order_relaxed);
        },
        d, WaitReason::kRwlock, false);
    if (r.status == ParkStatus::kTimedOut) return ETIMEDOUT;
  }
}

int RwLock::wrlock(pthread_rwlock_t* l, clockid_t clock, const timespec* abs, bool check) {
  if (rw_shared(l)) {
    return check ? real::pthread_rwlock_clockwrlock(l, clock, abs) : real::pthread_rwlock_wrlock(l);
  }
  if (check && abs && (!supported_clock(clock) || !valid_nsec(abs))) return EINVAL;
  int tid = current_thread_id();
  if (ref(l->__data.__cur_writer).load(std::memory_order_relaxed) == tid) return EDEADLK;
  auto st = rw_state(l);
  Deadline d = deadline_of(clock, abs);
  for (;;) {
    unsigned s = st.load(std::memory_order_relaxed);
    if ((s & (kRwWriter | kRwReaderMask)) == 0) {
      // acquire: pairs with the release of the previous unlock.
      if (st.compare_exchange_weak(s, (s & ~kRwWrPhase) | kRwWriter, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
        ref(l->__data.__cur_writer).store(tid, std::memory_order_relaxed);
        return 0;
      }
      continue;
    }
    if (!(s & kRwWritersParked) && !st.compare_exchange_weak(s, s | kRwWritersParked, std::memory_order_relaxed)) {
      continue;
    }
    bool gave_up_last = false;
    ParkOutcome r = parking_lot::park(
        rw_writer_key(l),
        [&] {
          unsigned v = st.load(std::memory_order_relaxed);
          return (v & kRwWritersParked) && (v & (kRwWriter | kRwReaderMask));
        },
        [] { return true; },
        [&](bool last) {
          if (last) {
            st.fetch_and(~kRwWritersParked, std::memory_order_relaxed);
            gave_up_last = true;
          }
        },
        d, WaitReason::kRwlock, false);
    if (r.status == ParkStatus::kUnparked && r.token == kHandoff) {
      // The previous writer kept kRwWriter set for us. The bucket lock
      // (taken by both sides) orders its critical section before ours.
      std::atomic_thread_fence(std::memory_order_acquire);
      ref(l->__data.__cur_writer).store(tid, std::memory_order_relaxed);
      return 0;
    }
    if (gave_up_last) {
      // Readers may have parked only because a writer was waiting.
      unsigned v = st.load(std::memory_order_relaxed);
      if ((v & kRwReadersParked) && !(v & kRwWriter)) wake_readers(l);
    }
    if (r.status == ParkStatus::kTimedOut) return ETIMEDOUT;
  }
}

int RwLock::tryrdlock(pthread_rwlock_t* l) {
  if (rw_shared(l)) return real::pthread_rwlock_tryrdlock(l);
  bool nr = rw_no_new_readers(l);
  auto st = rw_state(l);
  unsigned s = st.load(std::memory_order_relaxed);
  for (;;) {
    // glibc: busy when write-locked, or (non-recursive kind) a writer waits.
    if ((s & kRwWriter) || (nr && (s & kRwWritersParked))) return EBUSY;
    if (readers_of(s) == kRwReaderMask >> 3) return EAGAIN;
    if (st.compare_exchange_weak(s, (s & ~kRwWrPhase) + kRwOneReader, std::memory_order_acquire,
                                 std::memory_order_relaxed)) {
      return 0;
    }
  }
}

int RwLock::trywrlock(pthread_rwlock_t* l) {
  if (rw_shared(l)) return real::pthread_rwlock_trywrlock(l);
  auto st = rw_state(l);
  unsigned s = st.load(std::memory_order_relaxed);
  for (;;) {
    if (s & (kRwWriter | kRwReaderMask)) return EBUSY;
    if (st.compare_exchange_weak(s, (s & ~kRwWrPhase) | kRwWriter, std::memory_order_acquire,
                                 std::memory_order_relaxed)) {
      ref(l->__data.__cur_writer).store(current_thread_id(), std::memory_order_relaxed);
      return 0;
    }
  }
}

int RwLock::unlock(pthread_rwlock_t* l) {
  if (rw_shared(l)) return real::pthread_rwlock_unlock(l);
  // glibc: the writer is whoever __cur_writer names; anyone else is a reader.
  if (ref(l->__data.__cur_writer).load(std::memory_order_relaxed) == current_thread_id()) {
    rw_write_unlock(l);
  } else {
    rw_read_unlock(l);
  }
  return 0;
}

// ------------------------------------------------------------ Semaphore ----

int Semaphore::init(sem_t* sem, int pshared, unsigned value) {
  if (value > SEM_VALUE_MAX) return EINVAL;
  SemLayout* s = sem_of(sem);
  // As glibc: data and private only.
  ref(s->data).store(value, std::memory_order_relaxed);
  s->priv = pshared ? kFutexShared : 0;
  // sem_post may run in a signal handler, where resolving the real symbol
  // (dlsym) must not happen first.
  if (pshared) real::sem_post_slow();
  return 0;
}

int Semaphore::destroy(sem_t* s) { return 0; }  // glibc does nothing either

int Semaphore::wait(sem_t* s) {
  if (sem_shared(s)) return real::sem_wait(s) == 0 ? 0 : errno;
  if (sem_try_take(sem_of(s))) return 0;
  return sem_wait_slow(s, CLOCK_REALTIME, nullptr);
}

int Semaphore::trywait(sem_t* s) {
  if (sem_shared(s)) return real::sem_trywait(s) == 0 ? 0 : errno;
  return sem_try_take(sem_of(s)) ? 0 : EAGAIN;
}

int Semaphore::timedwait(sem_t* s, clockid_t clock, const timespec* abs, bool check_clock) {
  if (sem_shared(s)) {
    int r = check_clock ? real::sem_clockwait(s, clock, abs) : real::sem_timedwait(s, abs);
    return r == 0 ? 0 : errno;
  }
  // glibc: the clock (sem_clockwait), then tv_nsec, before taking a token.
  if (check_clock && !supported_clock(clock)) return EINVAL;
  if (!valid_nsec(abs)) return EINVAL;
  if (sem_try_take(sem_of(s))) return 0;
  return sem_wait_slow(s, clock, abs);
}

int Semaphore::post(sem_t* sem) {
  if (sem_shared(sem)) return real::sem_post(sem) == 0 ? 0 : errno;
  SemLayout* s = sem_of(sem);
  auto d = ref(s->data);
  uint64_t v = d.load(std::memory_order_relaxed);
  do {
    if ((v & kSemValueMask) == SEM_VALUE_MAX) return EOVERFLOW;
    // release: pairs with the waiters' acquire CAS.
  } while (!d.compare_exchange_weak(v, v + 1, std::memory_order_release, std::memory_order_relaxed));
  // Only the address is used from here on (the semaphore may be destroyed
  // by the waiter we wake).
  if (v >> 32) parking_lot::unpark_one_signal_safe(s);
  return 0;
}

int Semaphore::getvalue(sem_t* sem, int* value) {
  if (sem_shared(sem)) return real::sem_getvalue(sem, value) == 0 ? 0 : errno;
  *value = static_cast<int>(ref(sem_of(sem)->data).load(std::memory_order_relaxed) & kSemValueMask);
  return 0;
}

// -------------------------------------------------------------- Barrier ----

int Barrier::init(pthread_barrier_t* bar, const pthread_barrierattr_t* attr, unsigned count) {
  // glibc: EINVAL for 0 and for counts at or above BARRIER_IN_THRESHOLD.
  if (count == 0 || count >= UINT_MAX / 2) return EINVAL;
  int pshared = PTHREAD_PROCESS_PRIVATE;
  if (attr) pthread_barrierattr_getpshared(attr, &pshared);
  BarrierLayout* b = barrier_of(bar);
  b->in = 0;
  b->out = 0;
  b->count = count;
  b->current_round = 0;
  b->shared = pshared == PTHREAD_PROCESS_PRIVATE ? 0 : kFutexShared;
  return 0;
}

int Barrier::destroy(pthread_barrier_t* bar) {
  if (barrier_of(bar)->shared) return real::pthread_barrier_destroy(bar);
  // Woken waiters never touch the barrier again, so there is nothing to
  // wait for (glibc waits for its leaving threads to confirm).
  return 0;
}

int Barrier::wait(pthread_barrier_t* bar) {
  BarrierLayout* b = barrier_of(bar);
  if (b->shared) return real::pthread_barrier_wait(bar);
  // Arrival and round completion happen under the bucket lock of the
  // barrier, inside validate(), so rounds are exact even when more than
  // `count` threads use the barrier at once. A waiter's tag is its round,
  // and the last arrival wakes exactly that round.
  bool last = false;
  uintptr_t round = 0;
  // Only the round's last arrival wakes a waiter (no timeout, no interruption).
  parking_lot::park(
      b,
      [&] {
        unsigned in = ++b->in;
        unsigned cur = b->current_round;
        round = cur;
        if (in - cur >= b->count) {
          b->current_round = in;
          last = true;
          return false;
        }
        return true;
      },
      [] { return true; }, [](bool) {}, Deadline::never(), WaitReason::kBarrier, false, &round);
  if (last) {
    parking_lot::unpark_all_tagged(b, round);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  return 0;
}

// ----------------------------------------------------------------- Once ----

int Once::run(pthread_once_t* once, void (*init)()) {
  auto w = ref(*once);
  // acquire: pairs with the release store of kOnceDone.
  if (w.load(std::memory_order_acquire) & kOnceDone) return 0;
  parking_lot::ensure_fork_handler();
  for (;;) {
    int val = w.load(std::memory_order_acquire);
    int mine;
    do {
      if (val & kOnceDone) return 0;
      mine = static_cast<int>((parking_lot::fork_generation() << 2) | kOnceInProgress);
    } while (!w.compare_exchange_weak(val, mine, std::memory_order_acquire, std::memory_order_relaxed));
    if ((val & kOnceInProgress) && val == mine) {
      // Another thread of this process runs the routine: wait for it.
      parking_lot::park(
          once, [&] { return w.load(std::memory_order_relaxed) == mine; }, Deadline::never(), WaitReason::kOnce, false);
      continue;
    }
    // Ours to run (fresh, or begun before a fork by a thread that is gone).
    struct Reset {
      pthread_once_t* once;
      bool armed = true;
      ~Reset() {
        if (!armed) return;
        // Unwound out of the routine (exception, pthread_exit, cancellation):
        // let another caller run it, as glibc's clear_once_control does.
        ref(*once).store(0, std::memory_order_release);
        parking_lot::unpark_all(once);
      }
    } reset{once};
    // The routine may throw, or be cancelled, through this frame.
    cancel::prime_personality();
    init();
    reset.armed = false;
    // release: pairs with the acquire loads above.
    w.store(kOnceDone, std::memory_order_release);
    parking_lot::unpark_all(once);
    return 0;
  }
}

}  // namespace unblock::sync

// ---- runtime/api.h: the synchronisation calls -------------------------------------
//
// The call protocol around the primitives above, for every thread - also
// before the runtime starts, on plain OS threads, in a forked child. The
// cancellation points (condition waits, sem_wait and its timed variants) act
// on a pending request on entry, while the caller still holds the mutex,
// which is the state POSIX requires for the cleanup handlers; a request that
// arrives while the thread is parked ends the wait (ECANCELED, after a
// condition wait re-acquired the mutex) and the thread unwinds here
// (cancel::point). Every call that may wait or is called in loops delivers
// the handlers due for the caller on its way out (threads::deliver_due).
// In this file so that the primitives inline into them: the fast paths
// (flatten: uncontended lock/unlock/trylock, sem post/trywait) cost the
// hook's call and nothing more than before the API existed.

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
[[gnu::flatten]] int mutex_lock(pthread_mutex_t* m) { return delivered(Mutex::lock(m)); }
[[gnu::flatten]] int mutex_trylock(pthread_mutex_t* m) { return delivered(Mutex::trylock(m)); }
int mutex_timedlock(pthread_mutex_t* m, clockid_t clock, const timespec* abs, bool check_clock) {
  return delivered(Mutex::timedlock(m, clock, abs, check_clock));
}
[[gnu::flatten]] int mutex_unlock(pthread_mutex_t* m) { return delivered(Mutex::unlock(m)); }
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
[[gnu::flatten]] int sem_trywait(sem_t* s) { return delivered(Semaphore::trywait(s)); }
int sem_timedwait(sem_t* s, clockid_t clock, const timespec* abs, bool check_clock) {
  cancel::point();
  return delivered(acted(Semaphore::timedwait(s, clock, abs, check_clock)));
}
[[gnu::flatten]] int sem_post(sem_t* s) { return delivered(Semaphore::post(s)); }
int sem_getvalue(sem_t* s, int* value) { return delivered(Semaphore::getvalue(s, value)); }

}  // namespace unblock::rt
