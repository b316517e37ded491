// futex(2) for fibers (see futex.h for who waits where, and docs/DESIGN.md,
// section 6b, for the measurements).
//
// Kernel behaviour reproduced here (Linux 6.x kernel/futex/, checked against
// this machine's kernel by tests/preload/futex/ops.c run plain):
//   - order of checks: a bad timeout (tv_sec < 0, tv_nsec outside
//     [0, 1e9)) is EINVAL before anything else; then a zero bitset, then a
//     misaligned word (EINVAL), then the value (EAGAIN);
//   - a wake of n <= 0 waiters wakes one (the kernel counts after waking);
//     REQUEUE/CMP_REQUEUE reject negative counts and return woken + moved;
//   - WAKE_OP applies its operation, then rejects an unknown comparison with
//     ENOSYS (the word stays changed), an unknown operation before touching it;
//   - FUTEX_WAIT's timeout is relative on CLOCK_MONOTONIC; WAIT_BITSET's is
//     absolute, on CLOCK_REALTIME with FUTEX_CLOCK_REALTIME, else
//     CLOCK_MONOTONIC;
//   - a wait interrupted by a handler: an untimed one is restarted when every
//     handler had SA_RESTART (-ERESTARTSYS; the restart compares the value
//     again), a timed one fails with EINTR (-ERESTART_RESTARTBLOCK becomes
//     EINTR once a handler ran).
// Not reproduced: an unmapped word is a SIGSEGV here, not EFAULT (only the
// first page, NULL, is recognised).
#include "runtime/futex.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <climits>

#include "runtime/api.h"
#include "runtime/fiber.h"
#include "runtime/own_fds.h"
#include "runtime/parking_lot.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::futex {
namespace {

// Private waits sleeping in the kernel right now (plain OS threads, and the
// rare private request a fiber leaves to the kernel). While it is zero a
// private wake is served by the parking lot alone, without a system call.
// The waiter's seq_cst increment before its futex system call pairs with
// the waker's seq_cst fence before reading it (kernel_waiters()): either the
// waker sees the count, or the waiter's kernel value check sees the word the
// waker's program changed before waking.
std::atomic<long> g_kernel_waiters{0};

bool kernel_waiters() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return g_kernel_waiters.load(std::memory_order_relaxed) > 0;
}

// glibc's syscall(), errno left as it was; returns >= 0 or -errno.
long kernel(int op, uint32_t* uaddr, long val, long a4, uint32_t* uaddr2, long val3) {
  int saved = errno;
  long r = real::syscall6(SYS_futex, reinterpret_cast<long>(uaddr), op, val, a4, reinterpret_cast<long>(uaddr2), val3);
  if (r == -1) {
    r = -errno;
    errno = saved;
  }
  return r;
}

// A private wait left to the kernel, counted for the wakers. A plain thread
// that never returns here (unwound by an asynchronous cancellation, or a
// handler's longjmp) leaves the count high: wakes then also ask the kernel,
// which costs a system call and changes nothing else.
long kernel_wait(int op, uint32_t* uaddr, uint32_t val, long a4, uint32_t* uaddr2, uint32_t val3) {
  g_kernel_waiters.fetch_add(1, std::memory_order_seq_cst);
  long r = kernel(op, uaddr, val, a4, uaddr2, val3);
  g_kernel_waiters.fetch_sub(1, std::memory_order_relaxed);
  return r;
}

bool misaligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % sizeof(uint32_t) != 0; }
// What is recognised of the kernel's EFAULT: the first page.
bool null_page(const void* p) { return reinterpret_cast<uintptr_t>(p) < 4096; }

uint32_t load(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

// The parking-lot key of a word: private and process-shared futexes on one
// word are distinct in the kernel (a shared key on private memory carries
// FUT_OFF_MMSHARED), and neither may meet the keys runtime/sync.cpp uses
// (object addresses): words are 4-aligned, so the low bits tell them apart.
const void* key_of(const uint32_t* uaddr, bool priv) {
  return reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(uaddr) | (priv ? 1 : 2));
}

// Whether the page of a word is private anonymous memory (heap, stacks,
// .bss, written .data): only this process can reach such a word, so a
// process-shared futex on it needs no kernel waiter. Answered by the
// page's /proc/self/pagemap entry (bit 63 present, bit 62 swapped, bit 61
// file page or shared anonymous), one pread. A file-backed page, a shared
// mapping, a page not present, or no pagemap: false (the kernel's route).
std::atomic<int> g_pagemap{-2};  // -2 not opened yet, -1 unavailable

bool private_anonymous(const uint32_t* uaddr) {
  int fd = g_pagemap.load(std::memory_order_acquire);
  if (fd == -2) {
    long r = raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/pagemap"), O_RDONLY | O_CLOEXEC);
    int want = r < 0 ? -1 : own_fds::adopt(static_cast<int>(r));
    int expected = -2;
    if (!g_pagemap.compare_exchange_strong(expected, want, std::memory_order_acq_rel)) {
      if (want >= 0) {
        own_fds::release(want);
        raw_syscall(SYS_close, want);
      }
      want = expected;
    }
    fd = want;
  }
  if (fd < 0) return false;
  uint64_t entry = 0;
  long off = static_cast<long>(reinterpret_cast<uintptr_t>(uaddr) / 4096 * sizeof entry);
  if (raw_syscall(SYS_pread64, fd, reinterpret_cast<long>(&entry), sizeof entry, off) != sizeof entry) return false;
  bool present = entry >> 63 & 1, swapped = entry >> 62 & 1, file_or_shared = entry >> 61 & 1;
  return (present || swapped) && !file_or_shared;
}

// The kernel wakes before it counts: asking for n <= 0 wakes one.
size_t wake_limit(uint32_t n) { return static_cast<int>(n) <= 0 ? 1 : static_cast<size_t>(static_cast<int>(n)); }

// sys_futex's timeout check (timespec64_valid).
bool valid_timeout(const timespec* ts) { return ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000; }

// Beyond this many seconds (~31 years) a timeout cannot expire while the
// program runs; it is kept as "timed" for the EINTR rule but needs no timer.
constexpr time_t kFarSeconds = 1000000000;

Deadline relative_deadline(const timespec* ts) {
  if (ts->tv_sec > kFarSeconds) return Deadline::never();
  timespec now;
  real::clock_gettime(CLOCK_MONOTONIC, &now);
  timespec abs{now.tv_sec + ts->tv_sec, now.tv_nsec + ts->tv_nsec};
  if (abs.tv_nsec >= 1000000000) {
    abs.tv_nsec -= 1000000000;
    ++abs.tv_sec;
  }
  return Deadline::at(CLOCK_MONOTONIC, abs);
}

Deadline absolute_deadline(clockid_t clock, const timespec* ts) {
  if (ts->tv_sec > kFarSeconds * 4) return Deadline::never();
  return Deadline::at(clock, *ts);
}

// A fiber's private wait on the parking lot.
long wait_fiber(Fiber* f, const void* key, uint32_t* uaddr, uint32_t val, const Deadline& d, bool timed,
               uint32_t bitset) {
  sched::stats().futex_waits.fetch_add(1, std::memory_order_relaxed);
  const uintptr_t tag = bitset;
  for (;;) {
    // The value is compared under the bucket lock: a waker that changed the
    // word and then woke either made us see its value here or finds us queued.
    parking_lot::ParkOutcome r = parking_lot::park(
        key, [&] { return load(uaddr) == val; }, [] { return true; }, [](bool) {}, d, WaitReason::kFutex,
        /*interruptible=*/true, &tag, /*cancellable=*/false, /*uncancellable=*/true);
    switch (r.status) {
      case parking_lot::ParkStatus::kUnparked: return 0;
      case parking_lot::ParkStatus::kInvalid: return -EAGAIN;
      case parking_lot::ParkStatus::kTimedOut: return -ETIMEDOUT;
      case parking_lot::ParkStatus::kInterrupted:
        // The EINTR contract of runtime/signals.h; not a cancellation point.
        if (signals::run_pending(f) && !timed) continue;  // -ERESTARTSYS under SA_RESTART
        return -EINTR;
      case parking_lot::ParkStatus::kAborted: return 0;  // before_sleep never fails
    }
  }
}

long wait(Fiber* f, int op, uint32_t* uaddr, uint32_t val, const timespec* ts, uint32_t* uaddr2, uint32_t bitset) {
  // A plain thread sleeps in the kernel, which also answers every error.
  if (!f) {
    if (op & FUTEX_PRIVATE_FLAG) return kernel_wait(op, uaddr, val, reinterpret_cast<long>(ts), uaddr2, bitset);
    return kernel(op, uaddr, val, reinterpret_cast<long>(ts), uaddr2, bitset);
  }
  int cmd = op & FUTEX_CMD_MASK;
  if (ts && !valid_timeout(ts)) return -EINVAL;
  if (!bitset) return -EINVAL;
  if (misaligned(uaddr)) return -EINVAL;
  if (null_page(uaddr)) return -EFAULT;
  Deadline d = Deadline::never();
  if (ts) {
    d = cmd == FUTEX_WAIT ? relative_deadline(ts)
                          : absolute_deadline((op & FUTEX_CLOCK_REALTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC, ts);
  }
  return wait_fiber(f, key_of(uaddr, op & FUTEX_PRIVATE_FLAG), uaddr, val, d, ts != nullptr, bitset);
}

long wake(int op, uint32_t* uaddr, uint32_t n, uint32_t bitset) {
  if (!bitset) return -EINVAL;
  if (misaligned(uaddr)) return -EINVAL;
  size_t limit = wake_limit(n);
  bool priv = op & FUTEX_PRIVATE_FLAG;
  size_t woken =
      parking_lot::unpark_some(key_of(uaddr, priv), limit, [&](uintptr_t tag) { return (tag & bitset) != 0; });
  if (woken < limit && (!priv || kernel_waiters())) {
    long k = kernel(op, uaddr, static_cast<long>(limit - woken), 0, nullptr, bitset);
    if (k > 0) woken += k;
  }
  return static_cast<long>(woken);
}

long requeue(int op, uint32_t* uaddr, uint32_t nwake, uint32_t nrequeue, uint32_t* uaddr2, uint32_t cmpval) {
  int nw = static_cast<int>(nwake), nr = static_cast<int>(nrequeue);
  if (nw < 0 || nr < 0) return -EINVAL;
  if (misaligned(uaddr) || misaligned(uaddr2)) return -EINVAL;
  bool cmp = (op & FUTEX_CMD_MASK) == FUTEX_CMP_REQUEUE;
  if (cmp && null_page(uaddr)) return -EFAULT;
  parking_lot::RequeueInfo info{0, 0};
  bool priv = op & FUTEX_PRIVATE_FLAG;
  if (!parking_lot::unpark_requeue_some(
          key_of(uaddr, priv), key_of(uaddr2, priv), nw, nr, [&] { return !cmp || load(uaddr) == cmpval; }, &info)) {
    return -EAGAIN;
  }
  size_t woken = info.woken, moved = info.requeued;
  if ((woken < static_cast<size_t>(nw) || moved < static_cast<size_t>(nr)) && (!priv || kernel_waiters())) {
    // The value was compared once, under the lot's locks; the kernel's part
    // is a plain requeue of what is left.
    long k = kernel(FUTEX_REQUEUE | (op & FUTEX_PRIVATE_FLAG), uaddr, nw - static_cast<long>(woken),
                    nr - static_cast<long>(moved), uaddr2, 0);
    if (k > 0) woken += k;
  }
  return static_cast<long>(woken + moved);
}

// FUTEX_WAKE_OP's operation on *uaddr2 (kernel: futex_atomic_op_inuser).
// Returns the old value in *old, or -ENOSYS for an unknown operation.
long apply_op(uint32_t* uaddr2, uint32_t encoded, int* old) {
  unsigned opc = (encoded >> 28) & 7;
  int oparg = static_cast<int>(encoded << 8) >> 20;  // bits 12..23, sign-extended
  if (encoded & (FUTEX_OP_OPARG_SHIFT << 28)) oparg = 1 << (oparg & 31);
  uint32_t a = static_cast<uint32_t>(oparg);
  switch (opc) {
    case FUTEX_OP_SET: *old = static_cast<int>(__atomic_exchange_n(uaddr2, a, __ATOMIC_SEQ_CST)); return 0;
    case FUTEX_OP_ADD: *old = static_cast<int>(__atomic_fetch_add(uaddr2, a, __ATOMIC_SEQ_CST)); return 0;
    case FUTEX_OP_OR: *old = static_cast<int>(__atomic_fetch_or(uaddr2, a, __ATOMIC_SEQ_CST)); return 0;
    case FUTEX_OP_ANDN: *old = static_cast<int>(__atomic_fetch_and(uaddr2, ~a, __ATOMIC_SEQ_CST)); return 0;
    case FUTEX_OP_XOR: *old = static_cast<int>(__atomic_fetch_xor(uaddr2, a, __ATOMIC_SEQ_CST)); return 0;
    default: return -ENOSYS;
  }
}

// 1 or 0: the comparison's result; -ENOSYS for an unknown comparison.
long compare(uint32_t encoded, int old) {
  int cmparg = static_cast<int>(encoded << 20) >> 20;  // bits 0..11, sign-extended
  switch ((encoded >> 24) & 15) {
    case FUTEX_OP_CMP_EQ: return old == cmparg;
    case FUTEX_OP_CMP_NE: return old != cmparg;
    case FUTEX_OP_CMP_LT: return old < cmparg;
    case FUTEX_OP_CMP_LE: return old <= cmparg;
    case FUTEX_OP_CMP_GT: return old > cmparg;
    case FUTEX_OP_CMP_GE: return old >= cmparg;
    default: return -ENOSYS;
  }
}

long wake_op(int op, uint32_t* uaddr, uint32_t n1, uint32_t n2, uint32_t* uaddr2, uint32_t encoded) {
  bool priv = op & FUTEX_PRIVATE_FLAG;
  if (misaligned(uaddr) || misaligned(uaddr2)) return -EINVAL;
  if (null_page(uaddr2)) return -EFAULT;
  size_t lim1 = wake_limit(n1), lim2 = wake_limit(n2);
  bool second = false;
  size_t woken1 = 0, woken2 = 0;
  long r = parking_lot::unpark_pair(
      key_of(uaddr, priv), key_of(uaddr2, priv),
      [&](size_t* max1, size_t* max2) -> long {
        int old = 0;
        if (long e = apply_op(uaddr2, encoded, &old)) return e;
        long c = compare(encoded, old);
        if (c < 0) return c;
        second = c > 0;
        *max1 = lim1;
        *max2 = second ? lim2 : 0;
        return 0;
      },
      &woken1, &woken2);
  if (r < 0) return r;
  if (!priv || kernel_waiters()) {
    if (woken1 < lim1) {
      long k = kernel(FUTEX_WAKE | (op & FUTEX_PRIVATE_FLAG), uaddr, static_cast<long>(lim1 - woken1), 0, nullptr, 0);
      if (k > 0) woken1 += k;
    }
    if (second && woken2 < lim2) {
      long k = kernel(FUTEX_WAKE | (op & FUTEX_PRIVATE_FLAG), uaddr2, static_cast<long>(lim2 - woken2), 0, nullptr, 0);
      if (k > 0) woken2 += k;
    }
  }
  return static_cast<long>(woken1 + woken2);
}

bool is_wait(int cmd) {
  return cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET || cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2 ||
         cmd == FUTEX_WAIT_REQUEUE_PI;
}

}  // namespace

long call(Fiber* f, uint32_t* uaddr, int op, uint32_t val, long timeout_or_val2, uint32_t* uaddr2, uint32_t val3) {
  int cmd = op & FUTEX_CMD_MASK;
  bool modelled = (cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET || cmd == FUTEX_WAKE || cmd == FUTEX_WAKE_BITSET ||
                   cmd == FUTEX_REQUEUE || cmd == FUTEX_CMP_REQUEUE || cmd == FUTEX_WAKE_OP) &&
                  (!(op & FUTEX_CLOCK_REALTIME) || cmd == FUTEX_WAIT_BITSET);
  // A fiber's process-shared wait stays in the process only on memory no
  // other process can reach.
  bool shared_wait_in_kernel = f && !(op & FUTEX_PRIVATE_FLAG) && (cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET) &&
                               modelled && !private_anonymous(uaddr);
  if (!modelled || shared_wait_in_kernel) {
    // The kernel's (a shared mapping, PI, or an answer only the kernel
    // gives): a fiber that may sleep there first gives its worker away.
    if (f && is_wait(cmd)) {
      sched::stats().futex_kernel_waits.fetch_add(1, std::memory_order_relaxed);
      sched::begin_blocking(f);
      if ((op & FUTEX_PRIVATE_FLAG) && (cmd == FUTEX_WAIT || cmd == FUTEX_WAIT_BITSET)) {
        return kernel_wait(op, uaddr, val, timeout_or_val2, uaddr2, val3);
      }
    }
    return kPassThrough;
  }
  const auto* ts = reinterpret_cast<const timespec*>(timeout_or_val2);
  switch (cmd) {
    case FUTEX_WAIT: return wait(f, op, uaddr, val, ts, uaddr2, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAIT_BITSET: return wait(f, op, uaddr, val, ts, uaddr2, val3);
    case FUTEX_WAKE: return wake(op, uaddr, val, FUTEX_BITSET_MATCH_ANY);
    case FUTEX_WAKE_BITSET: return wake(op, uaddr, val, val3);
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
      return requeue(op, uaddr, val, static_cast<uint32_t>(timeout_or_val2), uaddr2, val3);
    case FUTEX_WAKE_OP: return wake_op(op, uaddr, val, static_cast<uint32_t>(timeout_or_val2), uaddr2, val3);
  }
  return kPassThrough;
}

}  // namespace unblock::futex

// ---- runtime/api.h: syscall() ---------------------------------------------------------

namespace unblock::rt {

long syscall_other(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  long r = real::syscall6(nr, a1, a2, a3, a4, a5, a6);
  return r == -1 ? -errno : r;
}

long syscall_futex(long a1, long a2, long a3, long a4, long a5, long a6) {
  if (sched::active()) {
    Fiber* f = Fiber::current();
    long r = futex::call(f, reinterpret_cast<uint32_t*>(a1), static_cast<int>(a2), static_cast<uint32_t>(a3), a4,
                         reinterpret_cast<uint32_t*>(a5), static_cast<uint32_t>(a6));
    if (r != futex::kPassThrough) return r;
  }
  return syscall_other(SYS_futex, a1, a2, a3, a4, a5, a6);
}

}  // namespace unblock::rt
