#include "runtime/own_fds.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "shim/raw_syscall.h"

namespace unblock::own_fds {
namespace {

// A handful per worker (ring or epoll set, eventfd, three timerfds) plus a
// few for the process: 64 slots are plenty; past them a descriptor is
// still moved but not protected.
constexpr int kSlots = 64;
std::atomic<int> g_fds[kSlots];  // 0: free (0 is never ours)
std::atomic<int> g_lo{0x7fffffff};
std::atomic<int> g_hi{-1};
std::atomic<int> g_base{-1};

constexpr int kDupBits = 65536;
std::atomic<uint64_t> g_dup_bits[kDupBits / 64];
std::atomic<int> g_dup_base{-1};

// The bit of fd in g_dup_bits, or -1 if outside it.
int dup_bit(int fd) {
  int b = g_dup_base.load(std::memory_order_relaxed);
  if (b < 0 || fd < b || fd - b >= kDupBits) return -1;
  return fd - b;
}

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
  g_base.store(b, std::memory_order_relaxed);
  return b;
}

void record(int fd) {
  for (auto& s : g_fds) {
    int expect = 0;
    if (s.compare_exchange_strong(expect, fd, std::memory_order_acq_rel)) break;
  }
  int lo = g_lo.load(std::memory_order_relaxed);
  while (fd < lo && !g_lo.compare_exchange_weak(lo, fd, std::memory_order_acq_rel)) {
  }
  int hi = g_hi.load(std::memory_order_relaxed);
  while (fd > hi && !g_hi.compare_exchange_weak(hi, fd, std::memory_order_acq_rel)) {
  }
}

}  // namespace

int adopt(int fd) {
  if (fd <= 0) return fd;
  int b = base();
  if (b > 0 && fd < b) {
    long moved = raw_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, b);
    if (moved >= 0) {
      raw_syscall(SYS_close, fd);
      fd = static_cast<int>(moved);
    }
  }
  record(fd);
  return fd;
}

void release(int fd) {
  if (fd <= 0) return;
  for (auto& s : g_fds) {
    int expect = fd;
    if (s.compare_exchange_strong(expect, 0, std::memory_order_acq_rel)) return;
  }
}

void set_dup_base(int base) {
  int expect = -1;
  g_dup_base.compare_exchange_strong(expect, base, std::memory_order_acq_rel);
}

void mark_dup(int fd) {
  int i = dup_bit(fd);
  if (i >= 0) g_dup_bits[i / 64].fetch_or(uint64_t{1} << (i % 64), std::memory_order_release);
}

void unmark_dup(int fd) {
  int i = dup_bit(fd);
  if (i >= 0) g_dup_bits[i / 64].fetch_and(~(uint64_t{1} << (i % 64)), std::memory_order_release);
}

void close_all() {
  for (auto& s : g_fds) {
    int fd = s.exchange(0, std::memory_order_acq_rel);
    if (fd > 0) raw_syscall(SYS_close, fd);
  }
  int b = g_dup_base.load(std::memory_order_relaxed);
  for (int w = 0; b >= 0 && w < kDupBits / 64; ++w) {
    uint64_t bits = g_dup_bits[w].exchange(0, std::memory_order_acq_rel);
    for (int i = 0; bits; ++i, bits >>= 1) {
      if (bits & 1) raw_syscall(SYS_close, b + w * 64 + i);
    }
  }
  g_lo.store(0x7fffffff, std::memory_order_relaxed);
  g_hi.store(-1, std::memory_order_relaxed);
}

bool is_own(int fd) {
  int i = dup_bit(fd);
  if (i >= 0 && (g_dup_bits[i / 64].load(std::memory_order_acquire) >> (i % 64) & 1)) return true;
  if (fd < g_lo.load(std::memory_order_relaxed) || fd > g_hi.load(std::memory_order_relaxed)) return false;
  for (auto& s : g_fds) {
    if (s.load(std::memory_order_acquire) == fd) return true;
  }
  return false;
}

long close_range_except_own(unsigned first, unsigned last, unsigned flags) {
  // The library's descriptors in the range, in order (insertion sort of at
  // most kSlots).
  // Walks the range in ascending order, closing each stretch between two
  // of the library's descriptors with one call. next_own: the next own
  // descriptor at or after `from` (slots and bitmap), or -1.
  auto next_own = [](unsigned from) -> long {
    long best = -1;
    for (auto& s : g_fds) {
      int fd = s.load(std::memory_order_acquire);
      if (fd > 0 && static_cast<unsigned>(fd) >= from && (best < 0 || fd < best)) best = fd;
    }
    long b = g_dup_base.load(std::memory_order_relaxed);
    if (b >= 0) {
      long i = static_cast<long>(from) > b ? static_cast<long>(from) - b : 0;
      for (; i < kDupBits && (best < 0 || b + i < best); ++i) {
        uint64_t word = g_dup_bits[i / 64].load(std::memory_order_acquire) >> (i % 64);
        if (!word) {
          i |= 63;  // the rest of this word is clear
          continue;
        }
        if (word & 1) {
          best = b + i;
          break;
        }
      }
    }
    return best;
  };
  long err = 0;
  uint64_t from = first;
  while (from <= last) {
    long own = next_own(static_cast<unsigned>(from));
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
