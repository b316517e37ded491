// A small test-and-test-and-set lock for short critical sections that never
// suspend (queues, pools). After brief spinning it yields the CPU with the raw
// sched_yield syscall - never a hooked symbol. Any thread or fiber; must not
// be held across a park or a context switch.
//
// Every runtime lock has a rank (runtime/lockrank.h, the lock order written
// down once); builds with UNBLOCK_LOCKRANK check it on every lock().
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "runtime/lockrank.h"
#include "shim/raw_syscall.h"

namespace unblock {

class SpinLock {
 public:
  constexpr SpinLock() = default;
  constexpr explicit SpinLock(LockRank rank) {
#if UNBLOCK_LOCKRANK
    rank_ = rank;
#else
    (void)rank;
#endif
  }

  void lock() {
#if UNBLOCK_LOCKRANK
    lockrank::acquire(rank_, this);  // before spinning: a wrong order is reported, not deadlocked on
#endif
    for (int spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
          __builtin_ia32_pause();
        } else {
          unblock::raw_syscall(SYS_sched_yield);
          spins = 0;
        }
      }
    }
  }
  // A try never waits, so it cannot close a cycle: not checked, but held.
  bool try_lock() {
    bool ok = !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
#if UNBLOCK_LOCKRANK
    if (ok) lockrank::acquired_by_try(rank_, this);
#endif
    return ok;
  }
  void unlock() {
#if UNBLOCK_LOCKRANK
    lockrank::release(rank_, this);
#endif
    locked_.store(false, std::memory_order_release);  // pairs with lock()'s acquire
  }

 private:
  std::atomic<bool> locked_{false};
#if UNBLOCK_LOCKRANK
  LockRank rank_ = LockRank::kUnranked;
#endif
};

class SpinGuard {
 public:
  explicit SpinGuard(SpinLock& l) : l_(l) { l_.lock(); }
  ~SpinGuard() { l_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& l_;
};

}  // namespace unblock
