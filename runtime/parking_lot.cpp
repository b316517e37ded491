// The parking lot (see parking_lot.h for the protocol and its races).
#include "runtime/parking_lot.h"
#include "shim/raw_syscall.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "runtime/fiber.h"
#include "runtime/spinlock.h"
#include "runtime/inspect.h"

namespace unblock::parking_lot {
namespace {

// A waiter node, on the waiter's stack for the duration of park().
//
// state: kQueued (in a bucket queue) -> kSelected (taken off by an unparker,
// under the bucket lock; token/requeued are final) -> kDone (the unparker has
// finished Parker::unpark() and will not touch the node or its Parker again).
// A node that removes itself (timeout, interruption, abort) stays kQueued.
enum NodeState : uint32_t { kQueued = 0, kSelected = 1, kDone = 2 };

struct Waiter {
  std::atomic<const void*> key{nullptr};  // changes only under both bucket locks (requeue)
  Waiter* next = nullptr;
  Parker* parker = nullptr;
  uintptr_t tag = 0;
  uintptr_t token = 0;
  bool requeued = false;
  std::atomic<uint32_t> state{kQueued};
};

struct alignas(64) Bucket {
  SpinLock lock{LockRank::kParkingBucket};
  Waiter* head = nullptr;
  Waiter* tail = nullptr;

  void append(Waiter* w) {
    w->next = nullptr;
    if (tail) {
      tail->next = w;
    } else {
      head = w;
    }
    tail = w;
  }
  // Unlinks w given its predecessor (nullptr: w is the head).
  void unlink(Waiter* prev, Waiter* w) {
    if (prev) {
      prev->next = w->next;
    } else {
      head = w->next;
    }
    if (tail == w) tail = prev;
  }
  bool has_key_after(Waiter* from, const void* key) const {
    for (Waiter* p = from; p; p = p->next) {
      if (p->key.load(std::memory_order_relaxed) == key) return true;
    }
    return false;
  }
};

// 1,024 buckets of one cache line each: 64 KiB of zero-initialised memory,
// touched only where used. A bucket holds the waiters of every key hashed to
// it, so its list is scanned; with this many buckets lists stay short.
constexpr int kBucketBits = 10;
constexpr size_t kBuckets = size_t{1} << kBucketBits;
constinit Bucket g_buckets[kBuckets];

Bucket& bucket_of(const void* key) {
  uint64_t h = reinterpret_cast<uintptr_t>(key) * 0x9E3779B97F4A7C15ull;  // Fibonacci hashing
  return g_buckets[h >> (64 - kBucketBits)];
}

// Locks the buckets of two keys, lower address first (the only place two
// bucket locks are held together; there is no other lock order to respect).
void lock_pair(Bucket& a, Bucket& b) {
  if (&a == &b) {
    a.lock.lock();
  } else if (&a < &b) {
    a.lock.lock();
    b.lock.lock();
  } else {
    b.lock.lock();
    a.lock.lock();
  }
}
void unlock_pair(Bucket& a, Bucket& b) {
  a.lock.unlock();
  if (&a != &b) b.lock.unlock();
}

// Locks the bucket a queued node is in now; its key may change under us
// (requeue holds both locks while it moves the node), so re-check.
Bucket& lock_bucket_of_node(Waiter& w) {
  for (;;) {
    const void* k = w.key.load(std::memory_order_acquire);
    Bucket& b = bucket_of(k);
    b.lock.lock();
    if (w.key.load(std::memory_order_relaxed) == k) return b;
    b.lock.unlock();
  }
}

// The node's unparker is between kSelected and kDone: its Parker::unpark()
// is in progress. That is a few instructions or one futex wake, so spin, and
// yield the CPU (raw syscall) if the unparker's OS thread was preempted.
void wait_done(Waiter& w) {
  // acquire: pairs with the release store of kDone in finish_wake().
  for (int spins = 0; w.state.load(std::memory_order_acquire) != kDone; ++spins) {
    if (spins < 128) {
      __builtin_ia32_pause();
    } else {
      errno_syscall(SYS_sched_yield);
    }
  }
}

// Second half of a wake, after the bucket lock is released.
void finish_wake(Waiter* w) {
  Parker* p = w->parker;
  p->unpark();
  // release: pairs with wait_done()/park()'s acquire loads; after this store
  // the node may vanish.
  w->state.store(kDone, std::memory_order_release);
}

// ---- Deferral of wakes requested from signal handlers ----
//
// tl_depth counts the parking-lot operations this thread is inside (holding
// or about to take a bucket lock, or waking a Parker, which may take a
// scheduler inbox lock). A handler that runs while it is non-zero records
// its wake in tl_deferred; the interrupted operation performs it on exit.
// Each slot packs a key (user-space addresses fit in 48 bits) and a count in
// the top 16 bits, so one atomic exchange takes both. Handlers on one thread
// nest but never run concurrently with the code they interrupt, so
// single-word atomics are enough.
constexpr int kDeferredSlots = 8;
constexpr int kCountShift = 48;
constexpr uint64_t kKeyMask = (uint64_t{1} << kCountShift) - 1;

thread_local int tl_depth __attribute__((tls_model("initial-exec"))) = 0;
thread_local std::atomic<uint64_t> tl_deferred[kDeferredSlots] __attribute__((tls_model("initial-exec")));
thread_local std::atomic<bool> tl_deferred_any __attribute__((tls_model("initial-exec")));

void run_deferred();

class DepthGuard {
 public:
  DepthGuard() {
    ++tl_depth;
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
  ~DepthGuard() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (--tl_depth == 0 && tl_deferred_any.load(std::memory_order_relaxed)) run_deferred();
  }
  DepthGuard(const DepthGuard&) = delete;
  DepthGuard& operator=(const DepthGuard&) = delete;
};

bool defer_wake(const void* key) {
  uint64_t k = reinterpret_cast<uintptr_t>(key);
  if (k & ~kKeyMask) return false;
  for (auto& slot : tl_deferred) {
    uint64_t v = slot.load(std::memory_order_relaxed);
    while (v != 0 && (v & kKeyMask) == k && (v >> kCountShift) < 0xffff) {
      if (slot.compare_exchange_weak(v, v + (uint64_t{1} << kCountShift), std::memory_order_relaxed)) {
        tl_deferred_any.store(true, std::memory_order_relaxed);
        return true;
      }
    }
  }
  for (auto& slot : tl_deferred) {
    uint64_t expected = 0;
    if (slot.compare_exchange_strong(expected, k | (uint64_t{1} << kCountShift), std::memory_order_relaxed)) {
      tl_deferred_any.store(true, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

void run_deferred() {
  while (tl_deferred_any.exchange(false, std::memory_order_relaxed)) {
    for (auto& slot : tl_deferred) {
      uint64_t v = slot.exchange(0, std::memory_order_relaxed);
      if (!v) continue;
      const void* key = reinterpret_cast<const void*>(v & kKeyMask);
      for (uint64_t n = v >> kCountShift; n > 0; --n) unpark_one(key);
    }
  }
}

// ---- fork ----

std::atomic<uint32_t> g_fork_generation{0};
std::atomic<bool> g_fork_handler{false};

void after_fork_child() {
  // Only the forking thread exists; it was not inside a parking-lot
  // operation (fork is not called from one), so every lock is free or held
  // by a thread that is gone. Start from an empty lot.
  for (auto& b : g_buckets) {
    b.lock.unlock();
    b.head = b.tail = nullptr;
  }
  for (auto& slot : tl_deferred) slot.store(0, std::memory_order_relaxed);
  tl_deferred_any.store(false, std::memory_order_relaxed);
  tl_depth = 0;
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

uint32_t fork_generation() { return g_fork_generation.load(std::memory_order_relaxed); }

void ensure_fork_handler() {
  if (g_fork_handler.load(std::memory_order_acquire)) return;
  if (!g_fork_handler.exchange(true, std::memory_order_acq_rel)) pthread_atfork(nullptr, nullptr, after_fork_child);
}

ParkOutcome park(const void* key, FnRef<bool()> validate, const Deadline& deadline, WaitReason why,
                 bool interruptible) {
  return park(
      key, validate, [] { return true; }, [](bool) {}, deadline, why, interruptible, nullptr);
}

ParkOutcome park(const void* key, FnRef<bool()> validate, FnRef<bool()> before_sleep, FnRef<void(bool)> timed_out,
                 const Deadline& deadline, WaitReason why, bool interruptible, const uintptr_t* tag,
                 bool cancellable, bool uncancellable) {
  ensure_fork_handler();
  Parker* parker = Parker::current();
  Waiter w;
  w.key.store(key, std::memory_order_relaxed);
  w.parker = parker;
  {
    DepthGuard depth;
    Bucket& b = bucket_of(key);
    b.lock.lock();
    if (!validate()) {
      b.lock.unlock();
      return {ParkStatus::kInvalid, 0, false};
    }
    if (tag) w.tag = *tag;
    b.append(&w);
    b.lock.unlock();
  }

  // Removes the node if it is still queued (under its current bucket's lock).
  // True: removed; false: an unparker selected it first.
  auto remove_self = [&]() -> bool {
    DepthGuard depth;
    Bucket& b = lock_bucket_of_node(w);
    if (w.state.load(std::memory_order_relaxed) != kQueued) {
      b.lock.unlock();
      return false;
    }
    const void* k = w.key.load(std::memory_order_relaxed);
    Waiter* prev = nullptr;
    for (Waiter* p = b.head; p != &w; p = p->next) prev = p;
    b.unlink(prev, &w);
    bool last = !b.has_key_after(b.head, k);
    timed_out(last);
    b.lock.unlock();
    return true;
  };
  auto selected = [&]() -> ParkOutcome {
    wait_done(w);
    return {ParkStatus::kUnparked, w.token, w.requeued};
  };

  if (!before_sleep()) {
    if (remove_self()) return {ParkStatus::kAborted, 0, w.requeued};
    return selected();
  }
  if (Fiber* f = parker->fiber()) {
    f->wait_obj = key;
    f->wait_op = kWaitNone;
  }
  for (;;) {
    ParkResult r = parker->park(deadline, why, interruptible, cancellable, uncancellable);
    // acquire: pairs with the unparker's kDone release (token, requeued).
    if (w.state.load(std::memory_order_acquire) != kQueued) return selected();
    if (r == ParkResult::kWoken) continue;  // a stale permit
    if (remove_self()) {
      return {r == ParkResult::kTimedOut ? ParkStatus::kTimedOut : ParkStatus::kInterrupted, 0, w.requeued};
    }
    return selected();  // chosen while timing out: the wake wins
  }
}

bool unpark_one(const void* key, FnRef<uintptr_t(UnparkInfo)> callback) {
  DepthGuard depth;
  Bucket& b = bucket_of(key);
  b.lock.lock();
  Waiter* prev = nullptr;
  Waiter* w = b.head;
  while (w && w->key.load(std::memory_order_relaxed) != key) {
    prev = w;
    w = w->next;
  }
  if (w) b.unlink(prev, w);
  UnparkInfo info{w != nullptr, w ? b.has_key_after(w->next, key) : false};
  uintptr_t token = callback(info);
  if (w) {
    w->token = token;
    w->state.store(kSelected, std::memory_order_relaxed);
  }
  b.lock.unlock();
  if (w) finish_wake(w);
  return info.unparked;
}

bool unpark_one(const void* key) {
  return unpark_one(key, [](UnparkInfo) -> uintptr_t { return 0; });
}

size_t unpark_all(const void* key, uintptr_t token) {
  return unpark_all(key, token, [](size_t) {});
}

namespace {

// Wakes the waiters on `key` that match (all, or those tagged `tag`).
size_t unpark_matching(const void* key, bool any_tag, uintptr_t tag, uintptr_t token, FnRef<void(size_t)> callback) {
  DepthGuard depth;
  Bucket& b = bucket_of(key);
  b.lock.lock();
  Waiter* woken_head = nullptr;
  Waiter** woken_tail = &woken_head;
  size_t n = 0;
  Waiter* prev = nullptr;
  for (Waiter* w = b.head; w;) {
    Waiter* next = w->next;
    if (w->key.load(std::memory_order_relaxed) == key && (any_tag || w->tag == tag)) {
      b.unlink(prev, w);
      w->token = token;
      w->state.store(kSelected, std::memory_order_relaxed);
      w->next = nullptr;
      *woken_tail = w;
      woken_tail = &w->next;
      ++n;
    } else {
      prev = w;
    }
    w = next;
  }
  callback(n);
  b.lock.unlock();
  for (Waiter* w = woken_head; w;) {
    Waiter* next = w->next;  // read before finish_wake: the node may vanish after it
    finish_wake(w);
    w = next;
  }
  return n;
}

}  // namespace

size_t unpark_all(const void* key, uintptr_t token, FnRef<void(size_t)> callback) {
  return unpark_matching(key, true, 0, token, callback);
}

size_t unpark_all_tagged(const void* key, uintptr_t tag) {
  return unpark_matching(key, false, tag, 0, [](size_t) {});
}

RequeueInfo unpark_requeue(const void* from, const void* to, FnRef<void(const RequeueInfo&)> callback) {
  DepthGuard depth;
  Bucket& bf = bucket_of(from);
  Bucket& bt = bucket_of(to);
  lock_pair(bf, bt);
  Waiter* woken_head = nullptr;
  Waiter** woken_tail = &woken_head;
  RequeueInfo info{0, 0};
  bool requeue = false;
  bool first = true;
  Waiter* prev = nullptr;
  for (Waiter* w = bf.head; w;) {
    Waiter* next = w->next;
    if (w->key.load(std::memory_order_relaxed) != from) {
      prev = w;
      w = next;
      continue;
    }
    bf.unlink(prev, w);
    if (first) {
      requeue = w->tag == reinterpret_cast<uintptr_t>(to);
      first = false;
    } else if (requeue && w->tag == reinterpret_cast<uintptr_t>(to)) {
      w->requeued = true;
      // release: a waiter that re-reads its key in lock_bucket_of_node()
      // then locks the new bucket (which we hold) and sees the move.
      w->key.store(to, std::memory_order_release);
      bt.append(w);
      ++info.requeued;
      w = next;
      continue;
    }
    w->state.store(kSelected, std::memory_order_relaxed);
    w->token = 0;
    w->next = nullptr;
    *woken_tail = w;
    woken_tail = &w->next;
    ++info.woken;
    w = next;
  }
  callback(info);
  unlock_pair(bf, bt);
  for (Waiter* w = woken_head; w;) {
    Waiter* next = w->next;
    finish_wake(w);
    w = next;
  }
  return info;
}

namespace {

// Takes up to `max` waiters on `key` whose tag passes `match` off the queue
// of `b` (locked by the caller), marks them selected and appends them to the
// list at *tail. Returns the count.
size_t take_locked(Bucket& b, const void* key, size_t max, FnRef<bool(uintptr_t)> match, Waiter*** tail) {
  size_t n = 0;
  Waiter* prev = nullptr;
  for (Waiter* w = b.head; w && n < max;) {
    Waiter* next = w->next;
    if (w->key.load(std::memory_order_relaxed) == key && match(w->tag)) {
      b.unlink(prev, w);
      w->token = 0;
      w->state.store(kSelected, std::memory_order_relaxed);
      w->next = nullptr;
      **tail = w;
      *tail = &w->next;
      ++n;
    } else {
      prev = w;
    }
    w = next;
  }
  return n;
}

void finish_list(Waiter* head) {
  for (Waiter* w = head; w;) {
    Waiter* next = w->next;  // read before finish_wake: the node may vanish after it
    finish_wake(w);
    w = next;
  }
}

}  // namespace

size_t unpark_some(const void* key, size_t max, FnRef<bool(uintptr_t)> match) {
  DepthGuard depth;
  Bucket& b = bucket_of(key);
  Waiter* woken = nullptr;
  Waiter** tail = &woken;
  b.lock.lock();
  size_t n = take_locked(b, key, max, match, &tail);
  b.lock.unlock();
  finish_list(woken);
  return n;
}

bool unpark_requeue_some(const void* from, const void* to, size_t nwake, size_t nrequeue, FnRef<bool()> validate,
                         RequeueInfo* out) {
  DepthGuard depth;
  Bucket& bf = bucket_of(from);
  Bucket& bt = bucket_of(to);
  lock_pair(bf, bt);
  if (!validate()) {
    unlock_pair(bf, bt);
    return false;
  }
  Waiter* woken = nullptr;
  Waiter** tail = &woken;
  RequeueInfo info{0, 0};
  info.woken = take_locked(bf, from, nwake, [](uintptr_t) { return true; }, &tail);
  if (from == to) {
    // Moving a waiter to its own queue changes nothing but its place.
    for (Waiter* w = bf.head; w && info.requeued < nrequeue; w = w->next) {
      if (w->key.load(std::memory_order_relaxed) == from) ++info.requeued;
    }
  } else {
    Waiter* prev = nullptr;
    for (Waiter* w = bf.head; w && info.requeued < nrequeue;) {
      Waiter* next = w->next;
      if (w->key.load(std::memory_order_relaxed) == from) {
        bf.unlink(prev, w);
        w->requeued = true;
        // release: as in unpark_requeue (lock_bucket_of_node re-reads it).
        w->key.store(to, std::memory_order_release);
        bt.append(w);
        ++info.requeued;
      } else {
        prev = w;
      }
      w = next;
    }
  }
  unlock_pair(bf, bt);
  finish_list(woken);
  *out = info;
  return true;
}

long unpark_pair(const void* k1, const void* k2, FnRef<long(size_t*, size_t*)> decide, size_t* woken1,
                 size_t* woken2) {
  DepthGuard depth;
  Bucket& b1 = bucket_of(k1);
  Bucket& b2 = bucket_of(k2);
  lock_pair(b1, b2);
  size_t n1 = 0, n2 = 0;
  long r = decide(&n1, &n2);
  if (r < 0) {
    unlock_pair(b1, b2);
    return r;
  }
  Waiter* woken = nullptr;
  Waiter** tail = &woken;
  auto any = [](uintptr_t) { return true; };
  *woken1 = take_locked(b1, k1, n1, any, &tail);
  *woken2 = take_locked(b2, k2, n2, any, &tail);
  unlock_pair(b1, b2);
  finish_list(woken);
  return 0;
}

void unpark_one_signal_safe(const void* key) {
  if (tl_depth > 0 && defer_wake(key)) return;
  // Not inside an operation of this thread (or, absurdly, more than
  // kDeferredSlots distinct keys deferred at once): wake directly.
  unpark_one(key);
}

size_t queued(const void* key) {
  DepthGuard depth;
  Bucket& b = bucket_of(key);
  SpinGuard g(b.lock);
  size_t n = 0;
  for (Waiter* w = b.head; w; w = w->next) n += w->key.load(std::memory_order_relaxed) == key;
  return n;
}

}  // namespace unblock::parking_lot
