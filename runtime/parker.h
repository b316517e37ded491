// Parker: how one thread of the program sleeps and is woken.
//
// A "thread of the program" is either a fiber (every thread the program
// created once the runtime runs, and main) or a plain OS thread the library
// did not create. Both have exactly one Parker; Parker::current() finds the
// caller's. Everything that waits (sync primitives, joins, sleeps, I/O) is
// built on park()/unpark():
//
//   permit semantics, like LockSupport: unpark() makes one permit available
//   (they do not accumulate); park() consumes it or sleeps until one arrives,
//   the deadline passes, or - if interruptible - a signal handler ran for
//   this thread. Callers always re-check their condition in a loop.
//
// A fiber parks by switching back to its worker's scheduler (the worker keeps
// running other fibers); a timed park is an io_uring timeout. A plain thread
// parks on a futex.
#pragma once

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

namespace unblock {

class Fiber;

// Why a thread is parked; printed by fiber dumps.
enum class WaitReason : uint8_t {
  kNone,
  kMutex,
  kCond,
  kRwlock,
  kSemaphore,
  kBarrier,
  kOnce,
  kJoin,
  kSleep,
  kSignal,
  kIo,
  kYield,
  kFutex,
  kOther,
};
const char* wait_reason_name(WaitReason r);

// An absolute deadline on a given clock, or none.
struct Deadline {
  clockid_t clock = CLOCK_MONOTONIC;
  bool infinite = true;
  timespec abs{};

  static Deadline never() { return Deadline{}; }
  // ts is absolute on `clock` (CLOCK_REALTIME or CLOCK_MONOTONIC).
  static Deadline at(clockid_t clock, const timespec& ts) { return Deadline{clock, false, ts}; }
  // Relative: now (CLOCK_MONOTONIC) + ns (>= 0).
  static Deadline after_ns(int64_t ns);
  // Relative: now (CLOCK_MONOTONIC) + rel (0 <= tv_nsec < 1e9, tv_sec >= 0),
  // saturating to the last second as the kernel's timespec64_add_safe does,
  // so that a timeout of any size neither overflows nor turns negative.
  static Deadline after(const timespec& rel);
  bool passed() const;
  // Nanoseconds left (<= 0 when passed); INT64_MAX when infinite.
  int64_t remaining_ns() const;
  // The time left as the kernel writes it back (select, recvmmsg): zero
  // once passed, any size otherwise. Not for an infinite deadline.
  timespec left() const;
};

enum class ParkResult : uint8_t { kWoken, kTimedOut, kInterrupted };

class Parker {
 public:
  // The calling fiber's or plain thread's parker. Never null.
  // Any context except a signal handler. Does not allocate.
  static Parker* current();

  // Sleeps until a permit, the deadline, or (if interruptible) a signal
  // handler run for this thread. Owner only. May suspend a fiber.
  // Cancellation (runtime/cancel.h): an interruptible park, or one asked to
  // be cancellable, also returns kInterrupted when the owner's cancellation
  // request is due; the caller then ends its wait and calls cancel::point().
  // uncancellable: interruptible by signal handlers only (a raw futex wait,
  // which is no cancellation point).
  ParkResult park(const Deadline& deadline, WaitReason why, bool interruptible = false, bool cancellable = false,
                  bool uncancellable = false);
  ParkResult park(WaitReason why) { return park(Deadline::never(), why); }

  // Gives the permit and wakes the owner if it sleeps. Any thread or fiber.
  void unpark();

  // The parker a plain OS thread (not a fiber) uses, found from its
  // pthread_t (it lives in that thread's static TLS). Any thread.
  static Parker* of_os_thread(pthread_t t);

  // True if the owner is a fiber (false: plain OS thread).
  bool is_fiber() const { return fiber_ != nullptr; }
  Fiber* fiber() const { return fiber_; }

  // Used by the runtime when a fiber is created / a plain thread first parks.
  void bind(Fiber* f) { fiber_ = f; }

  // Interruption: set by signal delivery, consumed by the next interruptible park.
  // interrupt() wakes a sleeping plain thread; any thread.
  void interrupt();
  bool take_interrupt() { return interrupted_.exchange(false, std::memory_order_acq_rel); }
  // seq_cst: pairs with the scheduler's re-check of a parking fiber
  // (wake_pending) after its context is saved. Any thread.
  bool interrupt_pending() const { return interrupted_.load(std::memory_order_seq_cst); }
  // Sets the interruption without waking anyone: for a fiber that is not
  // parked or is held by the caller (signal delivery before a resume, a
  // masked wait about to start). seq_cst: pairs with the park's take_interrupt.
  void mark_interrupted() { interrupted_.store(true, std::memory_order_seq_cst); }

  // The permit, for the scheduler's park of a fiber: take_permit() consumes
  // it (true if there was one); has_permit() peeks (seq_cst: pairs with
  // unpark's exchange). Owner's scheduler only, and wakers' checks.
  bool take_permit() { return permit_.exchange(0, std::memory_order_acq_rel) == 1; }
  bool has_permit() const { return permit_.load(std::memory_order_seq_cst) != 0; }
  // The owner gives itself a permit without a wake: the wait it is about
  // to continue sees a spurious wake-up and re-checks its condition (a
  // borrowed signal delivery, runtime/signal_delivery.cpp). Owner only.
  void give_own_permit() { permit_.store(1, std::memory_order_seq_cst); }

 private:
  std::atomic<uint32_t> permit_{0};      // 1 = a permit is available (futex word for plain threads)
  std::atomic<bool> interrupted_{false};
  Fiber* fiber_ = nullptr;
};

}  // namespace unblock
