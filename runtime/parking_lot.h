// The parking lot: where every fiber-aware primitive queues its waiters.
//
// Responsible for: a fixed global table of buckets keyed by the address of
// the object waited on (a mutex word, a condition variable...), each bucket a
// small spinlock and an intrusive FIFO of waiter nodes that live on the
// waiters' own stacks, in the manner of WebKit's ParkingLot and Rust's
// parking_lot. The primitives keep only a few bits of state in the program's
// object; the queue itself is here, so a pthread_mutex_t needs no extra
// memory and any object address can be waited on.
//
// Must not: allocate, call a hooked symbol, hold a bucket lock across a
// park, a context switch or a call into Parker/the scheduler, or run a
// caller's callback that parks. The spinlocks spin briefly and then yield
// with the raw sched_yield system call (runtime/spinlock.h).
//
// Lock order: a bucket lock is a leaf, except that unpark_requeue holds two,
// the lower address first. Parker::unpark (which may take a scheduler inbox
// lock) runs only after the bucket lock is released.
//
// Protocol of one wait (park):
//   1. lock the key's bucket; run validate() (the caller's "should I still
//      sleep?" check, made atomic with respect to unpark_* on the same key);
//      if false, return kInvalid; else append the node; unlock.
//   2. run before_sleep() unlocked (the condition variable releases its mutex
//      here: the waiter is already queued, so no wake-up can be missed).
//   3. Parker::park() until the node's state leaves kQueued, the deadline
//      passes or, if interruptible, a signal handler is due for the thread.
//   4. on timeout/interruption, lock the bucket the node is in now (requeue
//      may have moved it) and remove the node if it is still queued.
//
// Unpark races (documented here once; every caller relies on them):
//   - A node is woken at most once: only code holding the node's bucket lock
//     may take it off a queue, and it marks it kSelected there.
//   - A waiter whose deadline passes (or who is interrupted) at the moment an
//     unparker chose it finds its node already kSelected in step 4. It then
//     reports kUnparked - the wake wins over the timeout - so the wake is
//     never lost: the caller acts on it exactly as on any other wake (tries
//     the lock again, takes the semaphore token, returns 0 from a condition
//     wait) and, where it still cannot proceed, its own protocol passes the
//     turn on (e.g. a mutex waiter re-marks the mutex contended).
//   - Parker permits do not accumulate but may be stale (an unpark meant for
//     a wait that already ended). A waiter only trusts its node's state, never
//     the permit alone, so a stale permit costs one extra loop.
//   - The waiter does not leave park() while its unparker may still touch the
//     node or its Parker: the unparker stores kDone after Parker::unpark()
//     returns, and the waiter waits (briefly spinning) for kDone. So a thread
//     may return, exit and be freed right after it is woken.
//
// Signal handlers: sem_post is async-signal-safe. A handler that interrupts
// this thread inside a parking-lot operation must not take a bucket (or
// scheduler inbox) lock the interrupted code may hold; unpark_one_signal_safe
// detects that case and defers the wake to the end of the interrupted
// operation.
//
// fork: a child gets the parent's queues, full of nodes of threads that do
// not exist in it. The first enqueue registers a pthread_atfork child handler
// that empties every bucket (and bumps fork_generation(), which pthread_once
// uses to recognise an initialisation interrupted by fork, as glibc does).
// That registration is the one call here that could allocate: glibc keeps
// its first 48 fork handlers in static storage (posix/register-atfork.c).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "runtime/parker.h"

namespace unblock {

// A non-owning reference to a callable; never allocates. The callable must
// outlive the call it is passed to (it always is a lambda in the caller's
// frame).
template <typename Sig>
class FnRef;

template <typename R, typename... A>
class FnRef<R(A...)> {
 public:
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FnRef> && std::is_invocable_r_v<R, F&, A...>)
  FnRef(F&& f)  // NOLINT: implicit by design
      : obj_(const_cast<void*>(static_cast<const void*>(&f))), call_(&invoke<std::remove_reference_t<F>>) {}
  R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

 private:
  template <typename F>
  static R invoke(void* f, A... a) {
    return (*static_cast<F*>(f))(std::forward<A>(a)...);
  }

  void* obj_;
  R (*call_)(void*, A...);
};

namespace parking_lot {

enum class ParkStatus : uint8_t {
  kUnparked,     // taken off the queue by an unparker (carries its token)
  kInvalid,      // validate() said no; never queued
  kTimedOut,     // the deadline passed; the node removed itself
  kInterrupted,  // a signal handler is due for this thread; node removed
  kAborted,      // before_sleep() failed; node removed
};

struct ParkOutcome {
  ParkStatus status;
  uintptr_t token;  // the unparker's token (kUnparked only), else 0
  bool requeued;    // the node was moved by unpark_requeue() before it left
};

struct UnparkInfo {
  bool unparked;   // a waiter was taken off the queue
  bool have_more;  // waiters remain queued on the key
};

struct RequeueInfo {
  size_t woken;     // waiters taken off `from` to be woken
  size_t requeued;  // waiters moved from `from` to `to`
};

// Callbacks that run under the bucket lock must be short and must not park,
// allocate, or call into the parking lot.

// Queues the calling thread on `key` and sleeps (see the protocol above).
//   validate()      under the bucket lock; false: do not sleep (kInvalid).
//   before_sleep()  unlocked, after queueing; false: remove the node and
//                   return kAborted (or kUnparked if an unparker chose it
//                   meanwhile - the caller must then pass that wake on).
//   timed_out(last) under the bucket lock when the node removes itself after
//                   a timeout, an interruption or an abort; `last`: no other
//                   waiter remains on the key it was queued on.
//   tag             if not null, *tag is read after validate() succeeds (so
//                   validate may compute it): an opaque word that
//                   unpark_requeue() and unpark_all_tagged() match.
//   cancellable     a due cancellation request of the caller ends the wait
//                   like an interruption (kInterrupted, node removed; an
//                   unparker that chose the node first wins, as above).
//                   An interruptible wait is cancellable too, unless
//                   uncancellable (signals only: a raw futex wait).
// Where: a fiber or a plain OS thread, not a signal handler. May suspend.
// Does not allocate.
ParkOutcome park(const void* key, FnRef<bool()> validate, FnRef<bool()> before_sleep, FnRef<void(bool)> timed_out,
                 const Deadline& deadline, WaitReason why, bool interruptible, const uintptr_t* tag = nullptr,
                 bool cancellable = false, bool uncancellable = false);

// Shorthand: park with only a validation.
ParkOutcome park(const void* key, FnRef<bool()> validate, const Deadline& deadline, WaitReason why, bool interruptible);

// Wakes the oldest waiter on `key`. callback(info) runs under the bucket lock
// (also when nobody was queued) and returns the token the woken waiter gets.
// Returns info.unparked. Any fiber or thread; does not suspend or allocate.
bool unpark_one(const void* key, FnRef<uintptr_t(UnparkInfo)> callback);
bool unpark_one(const void* key);

// Wakes every waiter on `key`, each with `token`; callback(count) runs under
// the bucket lock before anyone is woken. Returns the count. Any fiber or
// thread; does not suspend or allocate.
size_t unpark_all(const void* key, uintptr_t token = 0);
size_t unpark_all(const void* key, uintptr_t token, FnRef<void(size_t)> callback);

// Wakes every waiter on `key` whose tag is `tag`. Returns the count. Any
// fiber or thread; does not suspend or allocate.
size_t unpark_all_tagged(const void* key, uintptr_t tag);

// Broadcast with requeue: wakes the oldest waiter on `from`; if its tag is
// (uintptr_t)to, every later waiter on `from` with that same tag is moved to
// the queue of `to` (marked requeued; it is woken later by an unpark on `to`,
// or leaves by its own deadline), and every other waiter is woken. If the
// oldest waiter's tag differs, everyone is woken. callback(info) runs under
// both bucket locks before anyone is woken. Any fiber or thread.
RequeueInfo unpark_requeue(const void* from, const void* to, FnRef<void(const RequeueInfo&)> callback);

// Wakes up to `max` waiters on `key`, oldest first, skipping those whose
// tag fails match(tag) (which runs under the bucket lock). Returns the count.
// Any fiber or thread; does not suspend or allocate.
size_t unpark_some(const void* key, size_t max, FnRef<bool(uintptr_t)> match);

// Wakes up to `nwake` waiters on `from` (oldest first, any tag) and moves up
// to `nrequeue` of the next ones to the queue of `to` (marked requeued; when
// from == to they stay where they are and are only counted). validate() runs
// under both bucket locks first; false: nothing happens and false is
// returned. Any fiber or thread; does not suspend or allocate.
bool unpark_requeue_some(const void* from, const void* to, size_t nwake, size_t nrequeue, FnRef<bool()> validate,
                         RequeueInfo* out);

// Under both bucket locks, decide(&n1, &n2) returns a negative value to wake
// nobody (returned as is), else up to n1 waiters on k1 and then up to n2 on
// k2 are woken (any tag); *woken1/*woken2 get the counts and 0 is returned.
// Any fiber or thread; does not suspend or allocate.
long unpark_pair(const void* k1, const void* k2, FnRef<long(size_t*, size_t*)> decide, size_t* woken1,
                 size_t* woken2);

// unpark_one(key) that may be called from a signal handler: if the handler
// interrupted this thread inside a parking-lot operation, the wake is
// deferred until that operation ends. Async-signal-safe (for the calling
// thread's own parking-lot state).
void unpark_one_signal_safe(const void* key);

// Waiters queued on `key` right now (tests, dumps). Any thread.
size_t queued(const void* key);

// Incremented in every forked child (see the file comment).
uint32_t fork_generation();
// Registers the fork child handler if that has not happened yet. Any thread,
// not a signal handler; may allocate once (inside pthread_atfork).
void ensure_fork_handler();

}  // namespace parking_lot
}  // namespace unblock
