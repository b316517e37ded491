#include "runtime/own_fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "shim/log.h"
#include "shim/raw_syscall.h"

namespace unblock::own_fds {
namespace {

// A set of descriptor numbers in [base, base + N), one bit each. Any
// thread; a bit is set after the descriptor is made and cleared before it
// is closed.
template <int N>
struct Bits {
  std::atomic<int> base{-1};
  std::atomic<uint64_t> words[N / 64];

  long index(long fd) const {
    long b = base.load(std::memory_order_relaxed);
    if (b < 0 || fd < b || fd - b >= N) return -1;
    return fd - b;
  }
  bool set(int fd) {
    long i = index(fd);
    if (i < 0) return false;
    words[i / 64].fetch_or(uint64_t{1} << (i % 64), std::memory_order_release);
    return true;
  }
  bool clear(int fd) {
    long i = index(fd);
    if (i < 0) return false;
    words[i / 64].fetch_and(~(uint64_t{1} << (i % 64)), std::memory_order_release);
    return true;
  }
  bool test(int fd) const {
    long i = index(fd);
    return i >= 0 && (words[i / 64].load(std::memory_order_acquire) >> (i % 64) & 1);
  }
  // The first member at or after `from`, or -1.
  long next(long from) const {
    long b = base.load(std::memory_order_relaxed);
    if (b < 0) return -1;
    for (long i = from > b ? from - b : 0; i < N; ++i) {
      uint64_t w = words[i / 64].load(std::memory_order_acquire) >> (i % 64);
      if (!w) {
        i |= 63;  // the rest of this word is clear
        continue;
      }
      return b + i + __builtin_ctzll(w);
    }
    return -1;
  }
  void close_all() {
    long b = base.load(std::memory_order_relaxed);
    for (int k = 0; b >= 0 && k < N / 64; ++k) {
      uint64_t w = words[k].exchange(0, std::memory_order_acq_rel);
      for (int i = 0; w; ++i, w >>= 1) {
        if (w & 1) raw_syscall(SYS_close, b + k * 64 + i);
      }
    }
  }
};

// The library's own descriptors, moved to base() and up (they take the
// lowest free numbers from there: a few per worker, never near 4,096).
Bits<4096> g_own;
// The epoll engine's duplicates (set_dup_base).
Bits<65536> g_dups;
// Descriptors that could not be moved (a limit below 64) or landed outside
// g_own: a short list.
constexpr int kSlots = 64;
std::atomic<int> g_slots[kSlots];  // 0: free (0 is never ours)
std::atomic<int> g_slot_count{0};   // is_own scans the slots only if some are used
std::atomic<int> g_base{-1};

// Below the epoll engine's duplicates (the top eighth of the limit) and
// never above 1024 - 160: a number the program's first hundreds of
// descriptors do not reach, inside the kernel's smallest fd tables
// (a descriptor at 900,000 under a 1M limit would make the process's
// fd table 8 MiB), and below FD_SETSIZE, so a program using select()
// loses nothing.
int base() {
  int b = g_base.load(std::memory_order_relaxed);
  if (b >= 0) return b;
  rlimit rl{};
  long lim = 1024;
  if (raw_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, reinterpret_cast<long>(&rl)) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    lim = static_cast<long>(rl.rlim_cur);
  }
  if (lim > 1024) lim = 1024;
  b = lim < 64 ? 0 : static_cast<int>(lim - lim / 8 - 32);
  int expect = -1;
  if (g_base.compare_exchange_strong(expect, b, std::memory_order_acq_rel) && b > 0) {
    g_own.base.store(b, std::memory_order_release);
  }
  return g_base.load(std::memory_order_acquire);
}

void record(int fd) {
  if (g_own.set(fd)) return;
  for (auto& s : g_slots) {
    int expect = 0;
    if (s.compare_exchange_strong(expect, fd, std::memory_order_acq_rel)) {
      g_slot_count.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
  }
  static std::atomic<bool> told{false};
  if (!told.exchange(true, std::memory_order_relaxed)) {
    LOG_WARN("own descriptors: %d cannot be recorded; a program's close of it is not refused", fd);
  }
}

long next_slot(long from) {
  long best = -1;
  for (auto& s : g_slots) {
    int fd = s.load(std::memory_order_acquire);
    if (fd > 0 && fd >= from && (best < 0 || fd < best)) best = fd;
  }
  return best;
}

// The next descriptor of the library's at or after `from`, or -1.
long next_own(long from) {
  long best = -1;
  for (long c : {g_own.next(from), g_dups.next(from), next_slot(from)}) {
    if (c >= 0 && (best < 0 || c < best)) best = c;
  }
  return best;
}

}  // namespace

int adopt(int fd) {
  if (fd <= 0) return fd;
  int b = base();
  if (b > 0 && fd < b) {
    long moved = raw_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, b);
    // EBADF: the program closed the number between its making and this (a
    // sweep racing the library's lazy creation); it may be the program's
    // again already. Not ours: the caller's creation failed.
    if (moved == -EBADF) return -1;
    if (moved >= 0) {
      raw_syscall(SYS_close, fd);
      fd = static_cast<int>(moved);
    }
  }
  record(fd);
  return fd;
}

void release(int fd) {
  if (fd <= 0 || g_own.clear(fd)) return;
  for (auto& s : g_slots) {
    int expect = fd;
    if (s.compare_exchange_strong(expect, 0, std::memory_order_acq_rel)) {
      g_slot_count.fetch_sub(1, std::memory_order_acq_rel);
      return;
    }
  }
}

void set_dup_base(int base) {
  int expect = -1;
  g_dups.base.compare_exchange_strong(expect, base, std::memory_order_acq_rel);
}

void mark_dup(int fd) { g_dups.set(fd); }
void unmark_dup(int fd) { g_dups.clear(fd); }

void close_all() {
  g_own.close_all();
  g_dups.close_all();
  for (auto& s : g_slots) {
    int fd = s.exchange(0, std::memory_order_acq_rel);
    if (fd > 0) raw_syscall(SYS_close, fd);
  }
  g_slot_count.store(0, std::memory_order_release);
}

bool is_own(int fd) {
  if (g_own.test(fd) || g_dups.test(fd)) return true;
  if (g_slot_count.load(std::memory_order_acquire) == 0) return false;
  for (auto& s : g_slots) {
    if (s.load(std::memory_order_acquire) == fd) return fd > 0;
  }
  return false;
}

long close_range_except_own(unsigned first, unsigned last, unsigned flags) {
  // Each stretch between two of the library's descriptors with one call.
  long err = 0;
  uint64_t from = first;
  while (from <= last) {
    long own = next_own(static_cast<long>(from));
    uint64_t to = own < 0 || static_cast<uint64_t>(own) > last ? last : static_cast<uint64_t>(own) - 1;
    if (own < 0 || static_cast<uint64_t>(own) > from) {
      long r = raw_syscall(SYS_close_range, static_cast<long>(from), static_cast<long>(to), flags);
      if (r < 0 && !err) err = r;
    }
    if (own < 0 || static_cast<uint64_t>(own) >= last) break;
    from = static_cast<uint64_t>(own) + 1;
  }
  return err;
}

}  // namespace unblock::own_fds
