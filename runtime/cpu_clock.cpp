#include "runtime/cpu_clock.h"
#include "shim/raw_syscall.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "shim/real.h"

namespace unblock::cpu {
namespace {

uint64_t g_tsc0 = 0;
uint64_t g_mono0 = 0;

uint64_t mono_ns() {
  timespec ts;
  real::clock_gettime(CLOCK_MONOTONIC, &ts);  // libc's: the vDSO
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  errno_syscall(SYS_clock_gettime, clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// ns per TSC tick, measured since init(); at least ~100 us of it.
double ns_per_tick() {
  uint64_t t = ticks();
  while (t - g_tsc0 < 200'000) t = ticks();
  uint64_t m = mono_ns();
  return static_cast<double>(m - g_mono0) / static_cast<double>(t - g_tsc0);
}

uint64_t to_ns(uint64_t t, double r) { return static_cast<uint64_t>(static_cast<double>(t) * r); }

void add(std::atomic<uint64_t>& a, uint64_t v) { a.store(a.load(std::memory_order_relaxed) + v, std::memory_order_relaxed); }

uint64_t reported(Fiber* f, uint64_t v) {
  uint64_t seen = f->cpu_seen.load(std::memory_order_relaxed);
  while (v > seen) {
    if (f->cpu_seen.compare_exchange_weak(seen, v, std::memory_order_relaxed)) return v;
  }
  return seen > v ? seen : v;
}

}  // namespace

void init() {
  g_mono0 = mono_ns();
  g_tsc0 = ticks();
}

uint64_t os_thread_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

void start_carrier(Carrier* c) {
  c->cpu_sync_ns.store(os_thread_ns(), std::memory_order_relaxed);
  c->cpu_since_ticks.store(0, std::memory_order_relaxed);
  uint64_t now = ticks();
  c->cpu_sync_tick = now;
  c->cpu_mark.store(now, std::memory_order_relaxed);
}

void settle_long(Carrier* c, Fiber* f, uint64_t now, uint64_t run) {
  double r = ns_per_tick();
  uint64_t cpu = os_thread_ns();
  uint64_t given = to_ns(c->cpu_since_ticks.load(std::memory_order_relaxed), r);
  uint64_t since = cpu - c->cpu_sync_ns.load(std::memory_order_relaxed);
  uint64_t share = since > given ? since - given : 0;
  uint64_t wall = to_ns(run, r);
  if (share > wall) share = wall;
  add(f->cpu_ns, share);
  c->cpu_sync_ns.store(cpu, std::memory_order_relaxed);
  c->cpu_since_ticks.store(0, std::memory_order_relaxed);
  c->cpu_sync_tick = now;
  c->cpu_mark.store(now, std::memory_order_relaxed);
}

void before_sleep(Carrier* c) {
  uint64_t now = ticks();
  if (now - c->cpu_sync_tick < kResetTicks) return;
  c->cpu_sync_ns.store(os_thread_ns(), std::memory_order_relaxed);
  c->cpu_since_ticks.store(0, std::memory_order_relaxed);
  c->cpu_sync_tick = now;
}

void after_sleep(Carrier* c) { c->cpu_mark.store(ticks(), std::memory_order_relaxed); }

void account_switch(Carrier* c, Fiber* f) {
  uint64_t now = ticks();
  uint64_t run = now - c->cpu_mark.load(std::memory_order_relaxed);
  if (__builtin_expect(run < kLongRunTicks, 1)) {
    add(f->cpu_ticks, run);
    add(c->cpu_since_ticks, run);
    c->cpu_mark.store(now, std::memory_order_relaxed);
    return;
  }
  settle_long(c, f, now, run);
}

uint64_t fiber_ns(Fiber* f) {
  Fiber* self = Fiber::current();
  if (f == self) {
    // Our own run so far: settle it if it is long (we are on its carrier).
    Carrier* c = f->carrier;
    uint64_t now = ticks();
    uint64_t run = now - c->cpu_mark.load(std::memory_order_relaxed);
    if (run >= kLongRunTicks) {
      settle_long(c, f, now, run);
      run = 0;
    }
    double r = ns_per_tick();
    return reported(f, f->cpu_ns.load(std::memory_order_relaxed) +
                           to_ns(f->cpu_ticks.load(std::memory_order_relaxed) + run, r));
  }
  double r = ns_per_tick();
  uint64_t v = f->cpu_ns.load(std::memory_order_relaxed) + to_ns(f->cpu_ticks.load(std::memory_order_relaxed), r);
  Carrier* c = f->carrier;
  if (c && f->run_state.load(std::memory_order_acquire) == static_cast<int>(RunState::kRunning) && c->current == f) {
    // Running elsewhere: its carrier's CPU time since the last check, less
    // what was given out since, bounded by the run's length. (Read while
    // that carrier may move its marks: an estimate, kept monotonic below.)
    uint64_t run = ticks() - c->cpu_mark.load(std::memory_order_relaxed);
    clockid_t clk = static_cast<clockid_t>((~static_cast<unsigned>(c->tid) << 3) | 4 | 2);
    uint64_t cpu = clock_ns(clk);
    uint64_t given = to_ns(c->cpu_since_ticks.load(std::memory_order_relaxed), r);
    uint64_t since = cpu - c->cpu_sync_ns.load(std::memory_order_relaxed);
    uint64_t share = since > given && since - given < (1ull << 62) ? since - given : 0;
    uint64_t wall = to_ns(run, r);
    v += share < wall ? share : wall;
  }
  return reported(f, v);
}

void split(uint64_t ns, timeval* user, timeval* sys) {
  rusage ru{};
  errno_syscall(SYS_getrusage, RUSAGE_THREAD, &ru);
  double u = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec;
  double s = ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
  uint64_t user_ns = u + s > 0 ? static_cast<uint64_t>(static_cast<double>(ns) * (u / (u + s))) : ns;
  uint64_t sys_ns = ns - user_ns;
  user->tv_sec = static_cast<time_t>(user_ns / 1000000000u);
  user->tv_usec = static_cast<suseconds_t>(user_ns % 1000000000u / 1000u);
  sys->tv_sec = static_cast<time_t>(sys_ns / 1000000000u);
  sys->tv_usec = static_cast<suseconds_t>(sys_ns % 1000000000u / 1000u);
}

}  // namespace unblock::cpu
