#include "runtime/monitor.h"
#include "shim/raw_syscall.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "runtime/control.h"
#include "runtime/inspect.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::monitor {
namespace {

std::atomic<int> g_busy{0};           // workers not sleeping in the kernel (set at start)
std::atomic<uint32_t> g_wake_word{0};  // the monitor sleeps on it when all are idle
std::atomic<bool> g_monitor_sleeping{false};
std::atomic<int> g_tid{0};

bool has_waiting_work(Worker* w) {
  // The eventfd read is always in flight, hence > 1.
  return w->inbox_count.load(std::memory_order_relaxed) > 0 || w->run_count.load(std::memory_order_relaxed) > 0 ||
         w->engine.inflight() > 1;
}

// UNBLOCK_STALL_MS: a thread kept worker w in the program's code too long.
// Counted every time, logged once per call site (the user-space address of
// the system call it is in; one site for "running": a loop).
void report_stall(Worker* w, uint64_t state) {
  sched::stats().stalls.fetch_add(1, std::memory_order_relaxed);
  Carrier* c = sched::carrier_at(static_cast<int>(state >> 1) - 1);
  if (!c) return;
  char what[160], where[256] = "";
  uintptr_t pc = 0;
  inspect::describe_os_thread(c->tid, what, sizeof what, &pc);
  static uintptr_t reported[64];
  static int nreported = 0;
  uintptr_t key = pc ? pc : 1;
  for (int i = 0; i < nreported; ++i) {
    if (reported[i] == key) return;
  }
  if (nreported < 64) reported[nreported++] = key;
  sched::stats().stall_reports.fetch_add(1, std::memory_order_relaxed);
  struct Who {
    Carrier* c;
    int tid;
    char name[16];
    const void* fiber;
    uintptr_t lo, hi;
  } who{c, 0, {}, nullptr, 0, 0};
  sched::for_each_fiber(
      [](Fiber* f, void* arg) {
        auto* x = static_cast<Who*>(arg);
        if (f && !x->tid && f->carrier == x->c && f->run_state.load(std::memory_order_relaxed) == static_cast<int>(RunState::kRunning)) {
          x->tid = f->tid;
          memcpy(x->name, f->name, sizeof x->name);
          x->name[15] = 0;
          x->fiber = f;
          x->lo = f->region.base ? reinterpret_cast<uintptr_t>(f->region.stack_low()) : 0;
          x->hi = f->region.base ? reinterpret_cast<uintptr_t>(f->region.top()) : 0;
        }
      },
      &who);
  if (pc) inspect::symbol_of(pc, where, sizeof where);
  log::always("stall: thread %d \"%s\" kept worker %d over %ld ms: %s%s%s (reported once per call site)", who.tid,
              who.name[0] ? who.name : program_invocation_short_name, w->index, config::get().stall_ms, what,
              pc ? " at " : "", where);
  // Its stack, one log line per frame.
  inspect::Buffer stack;
  if (who.fiber) inspect::stall_stack(c->tid, who.fiber, who.lo, who.hi, &stack);
  stack.append("", 1);
  for (char* p = const_cast<char*>(stack.data()); p && *p;) {
    char* nl = strchr(p, '\n');
    if (nl) *nl = 0;
    log::always("%s", p);
    p = nl ? nl + 1 : nullptr;
  }
}

void* monitor_main(void*) {
  g_tid.store(static_cast<int>(errno_syscall(SYS_gettid)), std::memory_order_relaxed);
  long period_us = config::get().handoff_us / 2;
  if (period_us < 50) period_us = 50;
  const int checks_needed = 2;
  const long stall_us = config::get().stall_ms * 1000;
  bool logged_refusal = false;
  bool logged_busy = false;
  for (;;) {
    if (g_busy.load(std::memory_order_seq_cst) == 0) {
      uint32_t seen = g_wake_word.load(std::memory_order_acquire);
      g_monitor_sleeping.store(true, std::memory_order_seq_cst);
      if (g_busy.load(std::memory_order_seq_cst) == 0) {
        raw_syscall(SYS_futex, reinterpret_cast<long>(&g_wake_word), FUTEX_WAIT | FUTEX_PRIVATE_FLAG, seen);
      }
      g_monitor_sleeping.store(false, std::memory_order_relaxed);
    }
    timespec ts{period_us / 1000000, (period_us % 1000000) * 1000};
    errno_syscall(SYS_nanosleep, &ts, nullptr);
    inspect::tick_park_clock();
    {
      // Worker 0 in the program's code without a switch since the last
      // tick cannot reap the control socket's poll: look at the socket here.
      Worker* w0 = sched::worker_at(0);
      bool stuck0 = (w0->owner_state.load(std::memory_order_acquire) & Worker::kUserBit) &&
                    w0->switches.load(std::memory_order_relaxed) == w0->seen_switches;
      control::on_monitor_tick(stuck0, period_us);
    }
    int n = sched::worker_count();
    for (int i = 0; i < n; ++i) {
      Worker* w = sched::worker_at(i);
      Sample now;
      now.state = w->owner_state.load(std::memory_order_acquire);
      now.progress = w->progress.load(std::memory_order_relaxed);
      now.switches = w->switches.load(std::memory_order_relaxed);
      now.waiting = has_waiting_work(w);
      if (stall_us > 0) {
        // A stall: one thread kept the worker (no switch) in the program's code.
        if (!(now.state & Worker::kUserBit) || now.switches != w->stall_switches) {
          w->stall_switches = now.switches;
          w->stall_since_ns = inspect::park_clock_ns();
          w->stall_counted = false;
        } else if (inspect::park_clock_ns() - w->stall_since_ns >= stall_us * 1000 && !w->stall_counted) {
          w->stall_counted = true;
          report_stall(w, now.state);
        }
      }
      Verdict v = judge(w, now, checks_needed);
      if (v == Verdict::kWait) continue;
      bool busy = v == Verdict::kHandOffBusy;
      if (sched::hand_off(w, now.state)) {
        w->stuck_checks = 0;
        if (busy) {
          sched::stats().busy_handoffs.fetch_add(1, std::memory_order_relaxed);
          if (!logged_busy) {
            logged_busy = true;
            LOG_WARN("worker %d: a thread kept it for over %ld us, entering the runtime without yielding, while "
                     "others waited; handed off (busy_handoffs in UNBLOCK_STATS)",
                     i, config::get().handoff_us);
          }
        }
        if (log::enabled(log::Level::kInfo)) {
          // Which call kept it: the stuck OS thread's system call, or "running".
          Carrier* c = sched::carrier_at(static_cast<int>(now.state >> 1) - 1);
          char what[160], where[256] = "";
          uintptr_t pc = 0;
          inspect::describe_os_thread(c ? c->tid : 0, what, sizeof what, &pc);
          if (pc) inspect::symbol_of(pc, where, sizeof where);
          LOG_INFO("worker %d handed to another carrier (%s): its OS thread %d was %s%s%s", i,
                   busy ? "its thread loops without yielding" : "its thread is busy outside the runtime",
                   c ? c->tid : 0, what, pc ? " at " : "", where);
        }
      } else if (!logged_refusal && sched::stats().handoff_refused.load() > 0) {
        logged_refusal = true;
        LOG_WARN("hand-off refused: UNBLOCK_MAX_THREADS=%d extra threads in use", config::get().max_threads);
      }
    }
  }
  return nullptr;
}

}  // namespace

Verdict judge(Worker* w, const Sample& now, int checks_needed) {
  // A worker is held when no fiber switch happened since the last sample:
  // one fiber has kept its carrier, in the program's code or in a call,
  // while others wait. Runtime entries alone are no progress for them: a
  // hook looping without parking enters the runtime all the time and still
  // never lets the worker's other fibers run (issue 16).
  if (now.switches != w->seen_switches || !now.waiting) {
    w->seen_switches = now.switches;
    w->hold_progress = now.progress;
    w->stuck_checks = 0;
    return Verdict::kWait;
  }
  if (++w->stuck_checks < checks_needed) return Verdict::kWait;
  // Only a carrier in the program's code can be replaced; one inside the
  // runtime at this instant is tried again at the next sample.
  if (!(now.state & Worker::kUserBit)) return Verdict::kWait;
  return now.progress != w->hold_progress ? Verdict::kHandOffBusy : Verdict::kHandOff;
}

void start() {
  inspect::tick_park_clock();
  // Carriers started before the monitor may already have gone idle (each
  // idle period subtracts one): add rather than store, so the count stays
  // exact and the monitor can sleep when every worker sleeps.
  g_busy.fetch_add(sched::worker_count(), std::memory_order_seq_cst);
  // Every signal blocked except glibc's SIGCANCEL/SIGSETXID (setuid() from a
  // thread waits until every thread ran the SIGSETXID handler) and faults.
  // 256k: a stall report unwinds a stack with libdw here (UNBLOCK_STALL_MS).
  if (signals::start_runtime_thread(monitor_main, nullptr, config::get().stall_ms > 0 ? 256 * 1024 : 64 * 1024) != 0) {
    log::always("cannot start the monitor thread: a blocked worker will stall its fibers");
  }
}

int thread_id() { return g_tid.load(std::memory_order_relaxed); }

void kick() {
  g_wake_word.fetch_add(1, std::memory_order_release);
  errno_syscall(SYS_futex, reinterpret_cast<uint32_t*>(&g_wake_word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, nullptr, nullptr,
                0);
}

void worker_idle(bool idle) {
  if (idle) {
    g_busy.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  // Parks stamp themselves with this clock; the monitor may have slept.
  inspect::tick_park_clock();
  // seq_cst: pairs with the monitor's store to g_monitor_sleeping + re-check.
  if (g_busy.fetch_add(1, std::memory_order_seq_cst) == 0 && g_monitor_sleeping.load(std::memory_order_seq_cst)) {
    g_wake_word.fetch_add(1, std::memory_order_release);
    raw_syscall(SYS_futex, reinterpret_cast<long>(&g_wake_word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1);
  }
}

}  // namespace unblock::monitor
