#include "runtime/parker.h"
#include "shim/real.h"
#include "shim/raw_syscall.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/tls.h"
#include "shim/raw_syscall.h"

namespace unblock {
namespace {

// A plain OS thread's parker lives in its own TLS; a fiber's in its Fiber.
thread_local Parker tl_os_parker __attribute__((tls_model("initial-exec")));

constexpr int64_t kNsPerSec = 1000000000;

timespec now(clockid_t clock) {
  timespec ts;
  real::clock_gettime(clock, &ts);
  return ts;
}

}  // namespace

const char* wait_reason_name(WaitReason r) {
  switch (r) {
    case WaitReason::kNone: return "running";
    case WaitReason::kMutex: return "mutex";
    case WaitReason::kCond: return "condition";
    case WaitReason::kRwlock: return "rwlock";
    case WaitReason::kSemaphore: return "semaphore";
    case WaitReason::kBarrier: return "barrier";
    case WaitReason::kOnce: return "once";
    case WaitReason::kJoin: return "join";
    case WaitReason::kSleep: return "sleep";
    case WaitReason::kSignal: return "signal wait";
    case WaitReason::kIo: return "I/O";
    case WaitReason::kYield: return "yield";
    case WaitReason::kFutex: return "futex";
    case WaitReason::kOther: return "other";
  }
  return "?";
}

Deadline Deadline::after_ns(int64_t ns) { return after(timespec{ns / kNsPerSec, ns % kNsPerSec}); }

Deadline Deadline::after(const timespec& rel) {
  timespec t = now(CLOCK_MONOTONIC);
  Deadline d;
  d.clock = CLOCK_MONOTONIC;
  d.infinite = false;
  if (rel.tv_sec > LONG_MAX - t.tv_sec - 1) {
    d.abs = timespec{LONG_MAX, 0};
    return d;
  }
  d.abs = timespec{t.tv_sec + rel.tv_sec, t.tv_nsec + rel.tv_nsec};
  if (d.abs.tv_nsec >= kNsPerSec) {
    d.abs.tv_nsec -= kNsPerSec;
    ++d.abs.tv_sec;
  }
  return d;
}

int64_t Deadline::remaining_ns() const {
  if (infinite) return INT64_MAX;
  timespec t = now(clock);
  int64_t sec = abs.tv_sec - t.tv_sec;
  if (sec > INT64_MAX / kNsPerSec - 1) return INT64_MAX;
  return sec * kNsPerSec + (abs.tv_nsec - t.tv_nsec);
}

timespec Deadline::left() const {
  timespec t = now(clock);
  timespec d{abs.tv_sec - t.tv_sec, abs.tv_nsec - t.tv_nsec};
  if (d.tv_nsec < 0) {
    d.tv_nsec += kNsPerSec;
    --d.tv_sec;
  }
  return d.tv_sec < 0 ? timespec{0, 0} : d;
}

bool Deadline::passed() const { return !infinite && remaining_ns() <= 0; }

Parker* Parker::current() {
  Fiber* f = tl_fiber;
  return f ? &f->parker : &tl_os_parker;
}

Parker* Parker::of_os_thread(pthread_t t) {
  // initial-exec TLS sits at the same offset from every thread pointer.
  long off = reinterpret_cast<char*>(&tl_os_parker) - static_cast<char*>(tls::current_tp());
  return reinterpret_cast<Parker*>(reinterpret_cast<char*>(t) + off);
}

ParkResult Parker::park(const Deadline& d, WaitReason why, bool interruptible, bool cancellable, bool uncancellable) {
  if (!uncancellable) cancellable |= interruptible;
  // In a forked child the runtime is gone: a fiber parks like a plain thread.
  if (fiber_ && sched::active()) return sched::park(fiber_, d, why, interruptible, cancellable);
  for (;;) {
    if (permit_.exchange(0, std::memory_order_acq_rel) == 1) return ParkResult::kWoken;
    if (interruptible && take_interrupt()) return ParkResult::kInterrupted;
    // A plain thread's canceller leaves a permit after setting the request
    // (hooks/thread.cpp), so this check cannot miss it.
    if (cancellable && cancel::due_tp(tls::current_tp())) return ParkResult::kInterrupted;
    if (!d.infinite && d.passed()) return ParkResult::kTimedOut;
    // FUTEX_WAIT_BITSET takes an absolute time on CLOCK_MONOTONIC, or on
    // CLOCK_REALTIME with FUTEX_CLOCK_REALTIME.
    int op = FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG;
    if (!d.infinite && d.clock == CLOCK_REALTIME) op |= FUTEX_CLOCK_REALTIME;
    long r = raw_syscall(SYS_futex, reinterpret_cast<long>(&permit_), op, 0,
                         d.infinite ? 0 : reinterpret_cast<long>(&d.abs), 0, FUTEX_BITSET_MATCH_ANY);
    if (r == -EINTR && interruptible) {
      // A handler ran on this thread: that is the interruption.
      return permit_.exchange(0, std::memory_order_acq_rel) == 1 ? ParkResult::kWoken : ParkResult::kInterrupted;
    }
  }
}

void Parker::unpark() {
  // seq_cst: pairs with the parked side's check after publishing kParked
  // (fibers) or with the futex value check (plain threads).
  if (permit_.exchange(1, std::memory_order_seq_cst) == 1) return;
  if (fiber_ && sched::active()) {
    sched::wake(fiber_);
  } else {
    raw_syscall(SYS_futex, reinterpret_cast<long>(&permit_), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1);
  }
}

void Parker::interrupt() {
  interrupted_.store(true, std::memory_order_seq_cst);
  if (fiber_ && sched::active()) {
    sched::wake(fiber_);
  } else {
    raw_syscall(SYS_futex, reinterpret_cast<long>(&permit_), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1);
  }
}

}  // namespace unblock
