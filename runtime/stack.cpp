#include "runtime/stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "runtime/fiber.h"
#include "runtime/signals.h"
#include "runtime/spinlock.h"
#include "runtime/tls.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

namespace unblock::stacks {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kKeepResident = 16 * 1024;  // top of a pooled stack left mapped
constexpr int kPoolMax = 4096;               // regions kept for reuse

struct PoolEntry {
  StackRegion r;
  PoolEntry* next;
};

SpinLock g_pool_lock{LockRank::kStackPool};
// Pooled regions are threaded through a small header kept in the region
// itself (its lowest stack page), so the pool never allocates.
PoolEntry* g_pool = nullptr;
int g_pool_size = 0;
std::atomic<int> g_guard_mode{0};  // 0 unknown, 1 madvise guard, 2 mprotect

size_t round_page(size_t n) { return (n + kPage - 1) & ~(kPage - 1); }

// Above this a guard is made with mprotect even where MADV_GUARD_INSTALL
// exists: guard markers live in page tables (a 1 GiB guard would cost 2 MiB
// of them), an mprotect'ed range costs one VMA whatever its size.
constexpr size_t kMaxMarkerGuard = 2 * 1024 * 1024;

bool install_guard(char* base, size_t len) {
  int mode = g_guard_mode.load(std::memory_order_relaxed);
  if (mode != 2 && len <= kMaxMarkerGuard) {
    if (madvise(base, len, MADV_GUARD_INSTALL) == 0) {
      g_guard_mode.store(1, std::memory_order_relaxed);
      return true;
    }
    g_guard_mode.store(2, std::memory_order_relaxed);
  }
  return mprotect(base, len, PROT_NONE) == 0;
}

}  // namespace

bool allocate(size_t stack_size, StackRegion* out, size_t requested_guard) {
  size_t guard = round_page(config::get().guard_size);
  if (requested_guard > guard) guard = round_page(requested_guard);
  size_t size = guard + round_page(stack_size + tls::reserve());
  {
    SpinGuard g(g_pool_lock);
    for (PoolEntry** p = &g_pool; *p; p = &(*p)->next) {
      if ((*p)->r.size == size && (*p)->r.guard == guard) {
        *out = (*p)->r;
        *p = (*p)->next;
        --g_pool_size;
        return true;
      }
    }
  }
  int saved = errno;
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                 -1, 0);
  if (m == MAP_FAILED) {
    errno = saved;
    return false;
  }
  char* base = static_cast<char*>(m);
  if (!install_guard(base, guard)) {
    munmap(m, size);
    errno = saved;
    return false;
  }
  errno = saved;
  *out = StackRegion{base, size, guard};
  return true;
}

void release(const StackRegion& r) {
  int saved = errno;
  char* low = r.stack_low();
  // The program may have changed the protection of its stack: a JVM makes
  // guard zones at the low end of every thread stack it runs on. Give the
  // next user (and the pool header written at `low`) a plain stack again.
  mprotect(low, static_cast<size_t>(r.top() - low), PROT_READ | PROT_WRITE);
  // Return the pages below the resident top to the kernel; a reused stack
  // starts cheap and a burst of deep recursion does not pin memory forever.
  char* keep = r.top() - kKeepResident - tls::reserve();
  keep = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(keep) & ~(kPage - 1));
  if (keep > low + kPage) madvise(low + kPage, keep - (low + kPage), MADV_DONTNEED);
  auto* e = reinterpret_cast<PoolEntry*>(low);
  {
    SpinGuard g(g_pool_lock);
    if (g_pool_size < kPoolMax) {
      e->r = r;
      e->next = g_pool;
      g_pool = e;
      ++g_pool_size;
      errno = saved;
      return;
    }
  }
  munmap(r.base, r.size);
  errno = saved;
}

namespace {

void overflow_handler(int sig, siginfo_t* info, void* uctx) {
  Fiber* f = Fiber::current();
  char* addr = static_cast<char*>(info->si_addr);
  if (f && f->region.base && addr >= f->region.base && addr < f->region.stack_low()) {
    log::always("stack overflow in thread %p (stack %zu bytes; raise it with pthread_attr_setstacksize "
                "or UNBLOCK_STACK_SIZE)",
                reinterpret_cast<void*>(f->tp), static_cast<size_t>(f->region.top() - f->region.stack_low()));
  } else if (signals::forward_fault(sig, info, uctx)) {
    return;  // the program's own handler took it
  } else if (info->si_code <= 0 && signals::fault_ignored(sig)) {
    return;  // sent (kill, raise, sigqueue), not a fault, and ignored: as the kernel ignores it
  }
  // Die of the same signal: restore the default action and return, so the
  // faulting instruction runs again and the kernel ends the process (with a
  // core dump if enabled), exactly as without the library. A signal that
  // was sent rather than raised by a fault (si_code <= 0: raise, kill,
  // sigqueue; Python's faulthandler._sigsegv) has no instruction to run
  // again: it is sent again, to this thread, and the default action ends
  // the process. (Returning alone let such a process live on: a forked
  // worker of CPython's ProcessPoolExecutor that "crashed" that way
  // returned a result.)
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  signals::raw_sigaction(sig, &dfl, nullptr);
  if (info->si_code <= 0) {
    raw_syscall(SYS_tgkill, raw_syscall(SYS_getpid), raw_syscall(SYS_gettid), sig);
  }
}

}  // namespace

void install_overflow_reporter() {
  struct sigaction sa{};
  sa.sa_sigaction = overflow_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  signals::install_fault_handler(SIGSEGV, &sa);
  signals::install_fault_handler(SIGBUS, &sa);
}

void setup_altstack() {
  constexpr size_t kAltSize = 64 * 1024;
  stack_t cur{};
  // Keep an alternate stack the program already gave this thread.
  if (raw_syscall(SYS_sigaltstack, 0, reinterpret_cast<long>(&cur)) == 0 && !(cur.ss_flags & SS_DISABLE)) return;
  void* m = mmap(nullptr, kAltSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return;
  stack_t ss{};
  ss.ss_sp = m;
  ss.ss_size = kAltSize;
  raw_syscall(SYS_sigaltstack, reinterpret_cast<long>(&ss), 0);
}

}  // namespace unblock::stacks
