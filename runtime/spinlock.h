// A small test-and-test-and-set lock for short critical sections that never
// suspend (queues, pools). After brief spinning it yields the CPU with the raw
// sched_yield syscall - never a hooked symbol. Any thread or fiber; must not
// be held across a park or a context switch.
#pragma once

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "shim/raw_syscall.h"

namespace unblock {

class SpinLock {
 public:
  void lock() {
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
  bool try_lock() { return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire); }
  void unlock() { locked_.store(false, std::memory_order_release); }  // pairs with lock()'s acquire

 private:
  std::atomic<bool> locked_{false};
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
