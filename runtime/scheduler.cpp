#include "runtime/scheduler.h"

#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <setjmp.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/alloc.h"
#include "runtime/cancel.h"
#include "runtime/cpu_clock.h"
#include "runtime/control.h"
#include "runtime/monitor.h"
#include "runtime/own_fds.h"
#include "runtime/inspect.h"
#include "runtime/signals.h"
#include "runtime/threads.h"
#include "runtime/tls.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock {

__thread Fiber* tl_fiber __attribute__((tls_model("initial-exec"))) = nullptr;
long g_fiber_slot_offset = 0;

namespace {
thread_local Carrier* tl_carrier __attribute__((tls_model("initial-exec"))) = nullptr;
}

Fiber* Fiber::from_thread(pthread_t t) {
  if (!t) return nullptr;
  return *reinterpret_cast<Fiber**>(reinterpret_cast<char*>(t) + g_fiber_slot_offset);
}

namespace sched {
namespace {

enum State : int { kNotStarted, kStarting, kActive, kUnavailable };

std::atomic<int> g_state{kNotStarted};
SpinLock g_start_lock{LockRank::kSchedStart};
Stats g_stats;

int g_worker_count = 0;
Worker* g_workers = nullptr;
int g_carrier_max = 0;
Carrier** g_carriers = nullptr;
std::atomic<int> g_carrier_count{0};

SpinLock g_spare_lock{LockRank::kSchedSpare};
Carrier* g_spares = nullptr;

std::atomic<unsigned> g_next_worker{0};
std::atomic<int> g_next_tid{0x01000000};
std::atomic<long> g_live{0};  // fibers that have not ended
long g_threads_max = 1L << 30;  // kernel.threads-max, read at start
std::atomic<rlim_t> g_nproc_limit{RLIM_INFINITY};  // RLIMIT_NPROC's soft limit (thread_limit_reached)
unsigned* g_nptl_nthreads = nullptr;  // glibc's thread count, for a forked child's exits (resolved at start)

SpinLock g_registry_lock{LockRank::kSchedRegistry};
Fiber* g_registry = nullptr;

SpinLock g_timer_lock{LockRank::kSchedTimer};
TimerOp* g_free_timers = nullptr;

uint64_t tag(Carrier* c) { return static_cast<uint64_t>(c->index + 1) << 1; }

long futex(std::atomic<uint32_t>* word, int op, uint32_t val) {
  return raw_syscall(SYS_futex, reinterpret_cast<long>(word), op | FUTEX_PRIVATE_FLAG, val);
}

// The calling OS thread's scheduling policy and priority, as a thread it
// creates inherits them.
void read_os_sched(Fiber* f) {
  sched_param p{};
  long pol = errno_syscall(SYS_sched_getscheduler, 0);
  f->sched_policy = pol < 0 ? SCHED_OTHER : static_cast<int>(pol);
  f->sched_priority = errno_syscall(SYS_sched_getparam, 0, &p) == 0 ? p.sched_priority : 0;
}

// kernel.threads-max (a plain thread's clone() fails with EAGAIN there).
long read_threads_max() {
  char buf[32];
  int fd = static_cast<int>(errno_syscall(SYS_openat, AT_FDCWD, "/proc/sys/kernel/threads-max", O_RDONLY | O_CLOEXEC));
  if (fd < 0) return 1L << 30;
  long n = errno_syscall(SYS_read, fd, buf, sizeof buf - 1);
  errno_syscall(SYS_close, fd);
  if (n <= 0) return 1L << 30;
  buf[n] = '\0';
  long v = strtol(buf, nullptr, 10);
  return v > 0 ? v : 1L << 30;
}

// ---- fibers registry ------------------------------------------------------

void registry_add(Fiber* f) {
  SpinGuard g(g_registry_lock);
  f->all_next = g_registry;
  f->all_prev = nullptr;
  if (g_registry) g_registry->all_prev = f;
  g_registry = f;
}

void registry_remove(Fiber* f) {
  SpinGuard g(g_registry_lock);
  if (f->all_prev) f->all_prev->all_next = f->all_next;
  else g_registry = f->all_next;
  if (f->all_next) f->all_next->all_prev = f->all_prev;
}

// ---- timers ---------------------------------------------------------------

void on_timer(Completion* c, int, uint32_t);

TimerOp* timer_alloc() {
  {
    SpinGuard g(g_timer_lock);
    if (TimerOp* t = g_free_timers) {
      g_free_timers = t->next_free;
      t->state.store(TimerOp::kArmed, std::memory_order_relaxed);
      return t;
    }
  }
  auto* t = alloc_objects<TimerOp>();
  if (t) t->on_complete = on_timer;
  return t;
}

void timer_free(TimerOp* t) {
  SpinGuard g(g_timer_lock);
  t->next_free = g_free_timers;
  g_free_timers = t;
}

void on_timer(Completion* c, int, uint32_t) {
  auto* t = static_cast<TimerOp*>(c);
  int expected = TimerOp::kArmed;
  // Pairs with park()'s CAS to kCancelled: exactly one side owns the op.
  if (t->state.compare_exchange_strong(expected, TimerOp::kFired, std::memory_order_acq_rel)) {
    wake(t->fiber);
  } else {
    timer_free(t);
  }
}

// ---- run queues -----------------------------------------------------------

// run_count is written only by the carrier driving w (the monitor and dumps
// only read it): a plain load and store, no locked add (as bump()).
inline void add_run_count(Worker* w, int d) {
  w->run_count.store(w->run_count.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
}

void push_local(Worker* w, Fiber* f) {
  f->next_run = nullptr;
  if (Fiber* tail = w->run_tail) {
    tail->next_run = f;
    tail->next_ctx_hint = f->ctx;
    tail->next_tp_hint = f->tp;
  } else {
    w->run_head = f;
  }
  w->run_tail = f;
  add_run_count(w, 1);
}

// With thousands of runnable fibers each one's memory is cold by its turn:
// its Fiber object, the stack lines its context switch and hooks return
// through, its TCB. Popping f prefetches what the next one will touch - its
// Fiber object, and the context and TCB recorded in f when it was queued -
// so the misses overlap with f's run instead of stalling the switch.
void prefetch_next(const Fiber* f) {
  const Fiber* n = f->next_run;
  if (!n) return;
  __builtin_prefetch(n, 1);
  __builtin_prefetch(reinterpret_cast<const char*>(n) + 64, 1);
  if (auto* sp = static_cast<const char*>(f->next_ctx_hint)) {
    for (int i = 0; i < 512; i += 64) __builtin_prefetch(sp + i, 1);
  }
  if (f->next_tp_hint) tls::prefetch_tcb(f->next_tp_hint);
}

Fiber* pop_local(Worker* w) {
  Fiber* f = w->run_head;
  if (!f) return nullptr;
  if (f == w->reap_mark) w->reap_mark = nullptr;  // its reap's fibers all had their turn (round_reap)
  prefetch_next(f);
  w->run_head = f->next_run;
  if (!w->run_head) w->run_tail = nullptr;
  add_run_count(w, -1);
  return f;
}

// Consecutive runs of run_next before the run queue's head gets a turn. It
// bounds how long fibers waking each other (a semaphore ping-pong) can keep
// the rest of the worker waiting: at least 1 run in (kNextStreak + 1) is the
// queue's head, so a queue of n fibers is served within n * (kNextStreak + 1)
// runs. run_next keeps its slot meanwhile: sending it to the tail would cut
// a chain of lock hand-overs every kNextStreak links and leave the rest of
// the chain one pass through the queue per kNextStreak waiters.
constexpr int kNextStreak = 16;

// The fiber to run next: run_next within its streak, else the queue's head.
Fiber* pop_runnable(Worker* w) {
  Fiber* f = w->run_next;
  if (f && (w->next_streak < kNextStreak || !w->run_head)) {
    w->run_next = nullptr;
    add_run_count(w, -1);
    ++w->next_streak;
    return f;
  }
  w->next_streak = 0;
  return pop_local(w);
}

void set_next(Worker* w, Fiber* f) {
  if (Fiber* old = w->run_next) {
    // Displaced (Go's runnext does the same): it keeps its turn in FIFO order.
    w->run_next = nullptr;
    add_run_count(w, -1);
    push_local(w, old);
  }
  f->next_run = nullptr;
  w->run_next = f;
  add_run_count(w, 1);
}

// next: f was woken by a fiber (see enqueue); it becomes w's
// run_next when the inbox is drained, which happens after every run.
void push_remote(Worker* w, Fiber* f, bool next = false) {
  f->next_run = nullptr;
  {
    SpinGuard g(w->inbox_lock);
    if (next) {
      Fiber* old = w->inbox_next;
      w->inbox_next = f;
      f = old;  // a displaced one joins the inbox in order
    }
    if (f) {
      if (w->inbox_tail) w->inbox_tail->next_run = f;
      else w->inbox_head = f;
      w->inbox_tail = f;
    }
    // seq_cst: pairs with the sleeper's store to `sleeping` and re-check.
    w->inbox_count.fetch_add(1, std::memory_order_seq_cst);
  }
  if (w->sleeping.load(std::memory_order_seq_cst) && w->sleeping.exchange(false, std::memory_order_acq_rel)) {
    w->engine.notify();
  }
}

void drain_inbox(Worker* w) {
  if (w->inbox_count.load(std::memory_order_acquire) == 0) return;
  Fiber* head;
  Fiber* urgent;
  {
    SpinGuard g(w->inbox_lock);
    head = w->inbox_head;
    urgent = w->inbox_next;
    w->inbox_head = w->inbox_tail = w->inbox_next = nullptr;
    w->inbox_count.store(0, std::memory_order_relaxed);
  }
  while (head) {
    Fiber* next = head->next_run;
    push_local(w, head);
    head = next;
  }
  if (urgent) set_next(w, urgent);
}

// True when the calling context is the scheduler of the carrier driving w:
// its own context, or a fiber doing the scheduler's work before a direct
// switch (Carrier::scheduling).
bool on_scheduler_of(Worker* w) {
  Fiber* f = tl_fiber;
  Carrier* c = f ? f->carrier : tl_carrier;
  return c && c->worker == w && (!f || c->scheduling);
}

// True when a fiber's own code (not the scheduler's work) is waking.
bool waking_from_fiber() {
  Fiber* f = tl_fiber;
  return f && !f->carrier->scheduling;
}

// Wakes from completions and timers (the scheduler reaping) and from plain
// threads are served in FIFO order, except for a fiber that asked to be woken
// first (Fiber::wake_urgent: accept). A wake by a fiber - a lock, semaphore or
// condition handed from one fiber to another - runs next on the woken
// fiber's worker: a mutex released to a parked waiter is otherwise passed on
// at one waiter per pass through the whole run queue (each waiter wakes the
// next only once it ran), and with thousands of runnable fibers a few
// thousand parked waiters stay parked for seconds (docs/DESIGN.md, section 4).
void enqueue(Fiber* f) {
  Worker* w = f->worker;
  if (on_scheduler_of(w)) {
    if (f->wake_urgent) set_next(w, f);
    else push_local(w, f);
  } else {
    push_remote(w, f, waking_from_fiber() || f->wake_urgent);
  }
}

Worker* pick_worker() {
  unsigned i = g_next_worker.fetch_add(1, std::memory_order_relaxed);
  return &g_workers[i % g_worker_count];
}

// ---- switching --------------------------------------------------------------
//
// The FS base is the scarce resource: without FSGSBASE each write is an
// arch_prctl system call (3.4 us on a paravirtualised AMD guest). So a fiber
// that parks or yields while its worker has another runnable fiber switches
// straight to it - one FS write, onto the next fiber's TCB - doing the
// scheduler's per-run work (progress, urgent completions, the inbox) itself
// on its own TCB and stack first. Only at a round's end (Carrier::runs_left
// spent: the ring is flushed and completions reaped), when nothing else is
// runnable, or for exit and migration does a fiber go back to its carrier's
// scheduler context (two FS writes, as before). A fiber that parks while
// its own wake is already pending, or yields with nobody else runnable,
// does not switch at all.
//
// The side that resumes finishes the switch-out of the side that left:
// until the jump has saved its context a parking fiber must not be seen as
// kParked. Every jump into a fiber passes in `data` the fiber that left
// (direct switch) or nullptr (the scheduler, which finishes its fibers
// itself); on_resumed() acts on it.

void finish_exit(Carrier* c, Worker* w, Fiber* f);

bool wake_pending(Fiber* f) {
  if (f->parker.has_permit()) return true;
  if (f->park_interruptible && f->parker.interrupt_pending()) return true;
  // Pairs with cancel::request's seq_cst fetch_or before its wake.
  if (f->park_cancellable && cancel::due(f)) return true;
  TimerOp* t = f->timer;
  return t && t->state.load(std::memory_order_seq_cst) == TimerOp::kFired;
}

// What to do once a fiber's context is saved: on the scheduler, or on the
// fiber a direct switch resumed (then only kPark and kYield occur).
void settle(Worker* w, Fiber* f) {
  switch (f->action) {
    case SwitchAction::kPark:
      // Only now is f's context saved; from here a waker may resume it.
      f->run_state.store(static_cast<int>(RunState::kParked), std::memory_order_seq_cst);
      if (wake_pending(f)) wake(f);
      break;
    case SwitchAction::kYield:
      f->run_state.store(static_cast<int>(RunState::kRunnable), std::memory_order_relaxed);
      push_local(w, f);
      break;
    case SwitchAction::kExit:
      finish_exit(f->carrier, w, f);
      break;
    case SwitchAction::kMigrate: {
      // This carrier lost its worker while f ran the program's code; w now
      // belongs to another carrier and must not be touched here.
      Worker* target = pick_worker();
      f->worker->fibers.fetch_sub(1, std::memory_order_relaxed);
      target->fibers.fetch_add(1, std::memory_order_relaxed);
      f->worker = target;
      f->run_state.store(static_cast<int>(RunState::kRunnable), std::memory_order_relaxed);
      push_remote(target, f);
      break;
    }
    case SwitchAction::kNone:
      break;
  }
}

// A dump holds f (dump_hold) while it reads f's saved stack: f goes back to
// the end of w's run queue, untouched, and runs once the hold is released.
// Only while a dump runs. When every runnable fiber is held the scheduler
// would spin through them: the CPU is offered to the dumping thread first.
__attribute__((noinline, cold)) bool held_back(Worker* w, Fiber* f) {
  f->run_state.store(static_cast<int>(RunState::kRunnable), std::memory_order_relaxed);
  push_local(w, f);
  g_stats.dump_held_back.fetch_add(1, std::memory_order_relaxed);
  raw_syscall(SYS_sched_yield);
  return false;
}

// f is about to run on c for w (from the scheduler or a direct switch):
// the bookkeeping before the jump. A signal queued for f while it was
// switched out is handled before f runs the program's code again (one load
// each when there is none; it may replace f->ctx, so read it after this).
// False: a dump holds f, which went back to w's run queue (held_back).
// Inlined into its two callers, so that the result is only the branch on
// dump_hold (callgrind: ~7 instructions more per switch when it was a call).
__attribute__((always_inline)) inline bool begin_run(Carrier* c, Worker* w, Fiber* f) {
  f->carrier = c;
  f->worker = w;
  f->run_state.store(static_cast<int>(RunState::kRunning), std::memory_order_relaxed);
  // Store kRunning, then load dump_hold; the dump stores dump_hold, then
  // runs membarrier() (an IPI that orders this CPU's accesses), then loads
  // run_state (hold_runnable): either this load sees the hold or the dump
  // sees kRunning. The fence only keeps the compiler from swapping the two;
  // the switch path pays no barrier instruction.
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (__builtin_expect(f->dump_hold.load(std::memory_order_relaxed), 0)) return held_back(w, f);
  c->current = f;
  bump(w->switches);
  if (__builtin_expect((f->sig.queue.hint() & ~signals::mask_of(f)) != 0, 0)) signals::before_resume(f);
  return true;
}

// The scheduler's work after one run, done by a fiber about to switch
// straight to the next: then the next runnable fiber, or nullptr.
Fiber* next_direct(Carrier* c, Worker* w) {
  --c->runs_left;
  bump(w->progress);
  c->scheduling = true;
  if (w->engine.urgent_ready()) {
    bump(w->urgent_reaps);
    w->engine.reap();
  }
  drain_inbox(w);
  c->scheduling = false;
  return pop_runnable(w);
}

// Fiber side: hands the carrier to the next runnable fiber of its worker, or
// back to its scheduler. Nothing may use TLS between set_tp and the jump:
// the next TCB is current by then.
void switch_out(Fiber* f, SwitchAction a) {
  Carrier* c = f->carrier;
  f->action = a;
  f->direct_sends = 0;
  if ((a == SwitchAction::kPark || a == SwitchAction::kYield) && c->runs_left > 0) {
    Worker* w = c->worker;
    Fiber* n = next_direct(c, w);
    if (!n) {
      // Nobody else to run: a yield goes on, and so does a park whose wake
      // came meanwhile (park() re-checks it).
      if (a == SwitchAction::kYield || wake_pending(f)) return;
    } else {
      cpu::account_switch(c, f);  // f's run ends here
      if (begin_run(c, w, n)) {
        bump(w->direct_switches);
        tls::pass_malloc_cache(n->tp, f->tp);
        bump(w->fs_writes);
        tls::set_tp(n->tp);
        ctx::Transfer t = ctx::jump(n->ctx, f);
        on_resumed(f, t);
        return;
      }
      // n is held by a dump: back to the scheduler, which runs the others.
    }
  }
  tls::return_malloc_cache(c->own_tp, f->tp);
  if (Worker* w = c->worker) bump(w->fs_writes);  // (none after a hand-off took it)
  tls::set_tp(c->own_tp);
  ctx::Transfer t = ctx::jump(c->sched_ctx, f);
  on_resumed(f, t);
}

// Scheduler side: runs f, and whatever f switched straight to, until one of
// them comes back here.
void resume(Carrier* c, Worker* w, Fiber* f) {
  if (!begin_run(c, w, f)) return;  // held by a dump, requeued
  tls::lend_malloc_cache(c->own_tp, f->tp);
  bump(w->fs_writes);
  tls::set_tp(f->tp);
  ctx::Transfer t = ctx::jump(f->ctx, nullptr);
  // Back on the scheduler; the fiber that left set FS to c->own_tp.
  auto* back = static_cast<Fiber*>(t.data);
  back->ctx = t.from;
  c->current = nullptr;
  cpu::account_switch(c, back);
  settle(w, back);
}

// Spare carriers wait here for a worker to drive. Returns nullptr never.
Worker* wait_for_worker(Carrier* c) {
  {
    SpinGuard g(g_spare_lock);
    c->next_spare = g_spares;
    g_spares = c;
  }
  for (;;) {
    Worker* w = c->assigned.exchange(nullptr, std::memory_order_acquire);
    if (w) return w;
    uint32_t seen = c->wake_word.load(std::memory_order_acquire);
    w = c->assigned.exchange(nullptr, std::memory_order_acquire);
    if (w) return w;
    futex(&c->wake_word, FUTEX_WAIT, seen);
  }
}

// A round: at most this many fiber runs between two round-start reaps
// (counted in Carrier::runs_left by the round and by direct switches).
constexpr int kRoundRuns = 64;
// How long an engine that keeps its backlog (round_reap) may be left
// unreaped while the run queue is long: what an event, a timer or a remote
// kick can wait at most on a saturated worker (Go's sysmon polls the
// network after the same 10 ms).
constexpr int64_t kBacklogMaxDelayNs = 10 * 1000 * 1000;

int64_t mono_ns() {
  timespec ts;
  real::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The reap at a round's start. An engine whose backlog costs nothing where
// it is (Backend::keeps_backlog: the epoll engine, whose readiness waits in
// the kernel's ready list and whose reap does the reads) is reaped again
// only once every fiber its last reap woke has had its turn (reap_mark),
// or after kBacklogMaxDelayNs. Reaping it every round read data for fibers
// that would run only after everything queued before them: at 10,000 echo
// connections the run queue grew to ~9,800 fibers whose messages had been
// read ~100 ms before their replies, too late for TCP's delayed ACK to ride
// on the reply, so every read sent an ACK of its own (+22% echo throughput
// without; docs/DESIGN.md, section 4). Fibers that are runnable for other
// reasons (yielding, woken by a lock) do not hold the reap back: a reap
// comes at least once per pass through the queue. Urgent completions
// (accept) are looked for after every run regardless.
void round_reap(Worker* w) {
  if (!w->engine.inflight()) return;
  if (!w->engine.keeps_backlog()) {
    w->engine.reap();
    return;
  }
  if (w->reap_mark) {
    int64_t now = mono_ns();
    if (now - w->reap_mark_ns < kBacklogMaxDelayNs) {
      bump(w->reaps_deferred);
      return;
    }
  }
  w->reap_mark = nullptr;
  if (w->engine.reap() > 0 && w->run_tail) {
    w->reap_mark = w->run_tail;
    w->reap_mark_ns = mono_ns();
  }
}

void schedule_round(Carrier* c, Worker* w) {
  drain_inbox(w);
  round_reap(w);
  int ran = 0;
  c->runs_left = kRoundRuns;
  while (c->runs_left > 0) {
    Fiber* f = pop_runnable(w);
    if (!f) break;
    --c->runs_left;
    resume(c, w, f);
    ++ran;
    if (c->worker != w) {  // lost w while a fiber ran the program's code
      c->runs_left = 0;
      return;
    }
    bump(w->progress);
    // After every run: an urgent completion (accept) is handled now, not at
    // the round's end (Engine), and a fiber f woke should run next
    // (run_next). (One load each when there is none.)
    if (w->engine.urgent_ready()) {
      bump(w->urgent_reaps);
      w->engine.reap();
    }
    drain_inbox(w);
  }
  c->runs_left = 0;
  if (ran) {
    w->engine.flush();
    return;
  }
  // Nothing to run: sleep in the kernel until a completion or a wake.
  w->sleeping.store(true, std::memory_order_seq_cst);
  if (w->inbox_count.load(std::memory_order_seq_cst) != 0 || w->run_head || w->run_next) {
    w->sleeping.store(false, std::memory_order_relaxed);
    return;
  }
  cpu::before_sleep(c);
  monitor::worker_idle(true);
  w->engine.wait();
  monitor::worker_idle(false);
  cpu::after_sleep(c);
  w->sleeping.store(false, std::memory_order_relaxed);
  w->progress.fetch_add(1, std::memory_order_relaxed);
}

[[noreturn]] void carrier_loop(Carrier* c) {
  tl_carrier = c;
  if (c->index == 0 && c->worker) control::arm(c->worker->engine);
  for (;;) {
    Worker* w = c->worker;
    if (!w) {
      cpu::before_sleep(c);
      w = wait_for_worker(c);
      cpu::after_sleep(c);
      c->worker = w;
    }
    schedule_round(c, w);
  }
}

void carrier0_entry(ctx::Transfer t) {
  // First jump from the adopted main fiber (see ensure_started).
  Carrier* c = g_carriers[0];
  tl_carrier = c;
  auto* f = static_cast<Fiber*>(t.data);
  f->ctx = t.from;
  cpu::account_switch(c, f);
  settle(c->worker, f);
  carrier_loop(c);
}

void* carrier_thread(void* arg) {
  auto* c = static_cast<Carrier*>(arg);
  c->tid = static_cast<pid_t>(errno_syscall(SYS_gettid));
  c->own_tp = tls::current_tp();
  c->rep_tp = c->own_tp;
  stacks::setup_altstack();
  cpu::start_carrier(c);
  carrier_loop(c);
}

Carrier* new_carrier(Worker* w) {
  int idx = g_carrier_count.load(std::memory_order_relaxed);
  for (;;) {
    if (idx >= g_carrier_max) return nullptr;
    if (g_carrier_count.compare_exchange_weak(idx, idx + 1)) break;
  }
  auto* c = alloc_objects<Carrier>();
  if (!c) return nullptr;
  c->index = idx;
  c->worker = w;
  g_carriers[idx] = c;
  return c;
}

bool launch_carrier(Carrier* c) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t mask, old;
  signals::carrier_mask(&mask);
  errno_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, &old, 8);
  int err = real::pthread_create(&c->thread, &attr, carrier_thread, c);
  errno_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, 8);
  pthread_attr_destroy(&attr);
  if (err == 0) g_stats.carriers_created.fetch_add(1, std::memory_order_relaxed);
  return err == 0;
}

// ---- fiber entry and exit ---------------------------------------------------

void fiber_entry(ctx::Transfer t) {
  Fiber* const f = tl_fiber;  // spawn() wrote it into the TCB the resumer set
  on_resumed(f, t);
  // pthread_exit() unwinds to this buffer, as it does to start_thread's.
  __pthread_unwind_buf_t unwind_buf;
  if (__sigsetjmp(reinterpret_cast<struct __jmp_buf_tag*>(unwind_buf.__cancel_jmp_buf), 0)) {
    // pthread_exit (hooked: it set exit_called and result) or a cancellation
    // acted on by glibc (any cancellation point, ours or glibc's own).
    Fiber* self = tl_fiber;
    exit_fiber(self, self->exit_called ? self->result : PTHREAD_CANCELED);
  }
  memset(&unwind_buf.__pad, 0, sizeof unwind_buf.__pad);
  if (tls::set_cleanup_buffer(f->tp, &unwind_buf)) f->unwind_limit = static_cast<char*>(__builtin_frame_address(0));
  leave(f);
  void* result = f->start(f->arg);
  exit_fiber(f, result);
}

void release_fiber(Fiber* f) {
  if (f->is_main) return;  // the initial thread's stack and TCB are not ours
  StackRegion r = f->region;
  f->~Fiber();
  stacks::release(r);
}

void finish_exit(Carrier* c, Worker* w, Fiber* f) {
  (void)c;
  if (!f->is_main) tls::destroy(f->tp);
  registry_remove(f);
  signals::after_exit(f);
  w->fibers.fetch_sub(1, std::memory_order_relaxed);
  f->run_state.store(static_cast<int>(RunState::kDone), std::memory_order_relaxed);
  g_stats.fibers_exited.fetch_add(1, std::memory_order_relaxed);
  bool last = g_live.fetch_sub(1, std::memory_order_acq_rel) == 1;
  int js = f->join_state.load(std::memory_order_acquire);
  for (;;) {
    if (js == kDetached) {
      release_fiber(f);
      break;
    }
    // Pairs with join()'s acquire load of join_state.
    if (f->join_state.compare_exchange_weak(js, kExited, std::memory_order_acq_rel)) {
      if (Parker* j = f->joiner.load(std::memory_order_acquire)) j->unpark();
      break;
    }
  }
  if (last) {
    // The last thread of the program ended (main called pthread_exit):
    // like glibc, the process exits with status 0, running atexit handlers.
    real::exit(0);
  }
}

}  // namespace

// ---- public -----------------------------------------------------------------

std::atomic<bool> g_active{false};
bool unavailable() { return g_state.load(std::memory_order_acquire) == kUnavailable; }
Stats& stats() { return g_stats; }
int worker_count() { return g_worker_count; }
Worker* worker_at(int i) { return &g_workers[i]; }
int carrier_count() { return g_carrier_count.load(std::memory_order_acquire); }
Carrier* carrier_at(int i) { return g_carriers[i]; }
Carrier* current_carrier() {
  Fiber* f = tl_fiber;
  return f ? f->carrier : tl_carrier;
}

void on_resumed(Fiber* self, ctx::Transfer t) {
  Carrier* c = self->carrier;
  if (!t.data) {
    c->sched_ctx = t.from;
    return;
  }
  auto* prev = static_cast<Fiber*>(t.data);
  prev->ctx = t.from;
  c->scheduling = true;
  settle(c->worker, prev);
  c->scheduling = false;
}

Worker* enter(Fiber* f) {
  Carrier* c = f->carrier;
  if (f->runtime_depth++ > 0) return c->worker;
  Worker* w = c->worker;
  if (w) {
    uint64_t expected = tag(c) | Worker::kUserBit;
    // Pairs with the monitor's CAS in hand_off(): one of them wins.
    if (w->owner_state.compare_exchange_strong(expected, tag(c), std::memory_order_acq_rel)) {
      bump(w->progress);  // we own w now: no other writer
      return w;
    }
  }
  // The monitor gave our worker to another carrier while we ran the program's
  // code. Queue this fiber elsewhere; this carrier becomes a spare.
  c->worker = nullptr;
  g_stats.migrations.fetch_add(1, std::memory_order_relaxed);
  switch_out(f, SwitchAction::kMigrate);
  return f->carrier->worker;
}

void leave(Fiber* f) {
  if (--f->runtime_depth > 0) return;
  Carrier* c = f->carrier;
  c->worker->owner_state.store(tag(c) | Worker::kUserBit, std::memory_order_release);
}

ParkResult park(Fiber* f, const Deadline& d, WaitReason why, bool interruptible, bool cancellable) {
  if (f->parker.take_permit()) return ParkResult::kWoken;
  if (interruptible && f->parker.take_interrupt()) return ParkResult::kInterrupted;
  if (cancellable && cancel::due(f)) return ParkResult::kInterrupted;
  if (!d.infinite && d.passed()) return ParkResult::kTimedOut;
  Worker* w = enter(f);
  bump(w->parks);
  TimerOp* t = nullptr;
  if (!d.infinite) {
    t = timer_alloc();
    if (t) {
      t->fiber = f;
      w->engine.arm_timer(t, d.clock, d.abs);
    }
  }
  f->timer = t;
  f->park_interruptible = interruptible;
  f->park_cancellable = cancellable;
  f->reason = why;
  f->wait_since = inspect::park_clock_ns();
  f->wait_deadline = d.infinite ? nullptr : &d;
  ParkResult r;
  for (;;) {
    switch_out(f, SwitchAction::kPark);
    if (f->parker.take_permit()) {
      r = ParkResult::kWoken;
      break;
    }
    if (interruptible && f->parker.take_interrupt()) {
      r = ParkResult::kInterrupted;
      break;
    }
    if (cancellable && cancel::due(f)) {
      r = ParkResult::kInterrupted;
      break;
    }
    if (t && t->state.load(std::memory_order_acquire) == TimerOp::kFired) {
      r = ParkResult::kTimedOut;
      break;
    }
    if (!t && !d.infinite && d.passed()) {  // no timer could be allocated
      r = ParkResult::kTimedOut;
      break;
    }
  }
  f->reason = WaitReason::kNone;
  f->park_interruptible = false;
  f->park_cancellable = false;
  f->timer = nullptr;
  if (t) {
    int expected = TimerOp::kArmed;
    if (t->state.compare_exchange_strong(expected, TimerOp::kCancelled, std::memory_order_acq_rel)) {
      // Still armed: its completion will free it; ask the kernel to drop it.
      // We are in the runtime on the carrier driving the worker that armed it.
      f->carrier->worker->engine.cancel_timer(t);
    } else {
      timer_free(t);
    }
  }
  leave(f);
  return r;
}

void wake(Fiber* f) {
  int expected = static_cast<int>(RunState::kParked);
  if (f->run_state.compare_exchange_strong(expected, static_cast<int>(RunState::kRunnable),
                                           std::memory_order_acq_rel)) {
    enqueue(f);
  }
}

void yield(Fiber* f) {
  enter(f);
  switch_out(f, SwitchAction::kYield);
  leave(f);
}

void refresh_nproc_limit() {
  rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
  getrlimit(RLIMIT_NPROC, &rl);
  g_nproc_limit.store(rl.rlim_cur, std::memory_order_relaxed);
}

bool has_capability(int cap) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  // raw: a hook that goes on to succeed must not leave capget's errno behind.
  if (raw_syscall(SYS_capget, reinterpret_cast<long>(&hdr), reinterpret_cast<long>(data)) != 0) return false;
  return (data[cap / 32].effective >> (cap % 32)) & 1;
}

// The limits the kernel's clone() applies to a new thread, applied to
// fibers (docs/DESIGN.md, section 7): RLIMIT_NPROC, counted over the
// program's live threads (the kernel counts every task of the real user; the
// user's other processes are not seen here), unless the caller's real uid is
// 0 or it holds CAP_SYS_RESOURCE or CAP_SYS_ADMIN, as the kernel exempts
// them; and kernel.threads-max, read at start, as a cap on live fibers.
// RLIMIT_NPROC is cached (refresh_nproc_limit: at start and after the
// program's setrlimit/prlimit) and read again before refusing, in case
// another process raised it; a limit lowered by another process is seen at
// the next refresh.
static bool thread_limit_reached() {
  long live = g_live.load(std::memory_order_relaxed);
  if (live >= g_threads_max) return true;
  if (static_cast<rlim_t>(live) < g_nproc_limit.load(std::memory_order_relaxed)) return false;
  refresh_nproc_limit();
  if (static_cast<rlim_t>(live) < g_nproc_limit.load(std::memory_order_relaxed)) return false;
  if (getuid() == 0) return false;
  return !has_capability(CAP_SYS_RESOURCE) && !has_capability(CAP_SYS_ADMIN);
}

int spawn(void* (*start)(void*), void* arg, const SpawnAttrs& attrs, pthread_t* out) {
  size_t stack_size = attrs.stack_size ? attrs.stack_size : config::get().stack_size;
  bool detached = attrs.detached;
  if (thread_limit_reached()) return EAGAIN;
  StackRegion region;
  if (!stacks::allocate(stack_size, &region, attrs.guard_size)) return EAGAIN;
  int tid = g_next_tid.fetch_add(1, std::memory_order_relaxed);
  if (tid >= 0x3fff0000) {  // stay inside FUTEX_TID_MASK, above any kernel tid
    g_next_tid.store(0x01000000, std::memory_order_relaxed);
    tid = g_next_tid.fetch_add(1, std::memory_order_relaxed);
  }
  char* stack_top = nullptr;
  void* tp = tls::create(region.top(), &stack_top, tid);
  if (!tp) {
    stacks::release(region);
    return EAGAIN;
  }
  uintptr_t at = (reinterpret_cast<uintptr_t>(stack_top) - sizeof(Fiber)) & ~uintptr_t{63};
  auto* f = new (reinterpret_cast<void*>(at)) Fiber;
  f->region = region;
  f->parker.bind(f);
  f->tp = tp;
  f->tid = tid;
  f->start = start;
  f->arg = arg;
  f->stack_size = stack_size;
  f->guard_size = attrs.guard_size;
  f->runtime_depth = 1;  // it starts inside the runtime and leaves in fiber_entry
  f->join_state.store(detached ? kDetached : kJoinable, std::memory_order_relaxed);
  Fiber* creator = tl_fiber;
  if (creator) {
    f->sigmask = creator->sigmask;
    f->nice = creator->nice;
    f->ioprio = creator->ioprio;
    f->affinity_set = creator->affinity_set;
    if (creator->affinity_set) f->affinity = creator->affinity;
    memcpy(f->name, creator->name, sizeof f->name);  // clone copies the creator's comm
  } else {
    errno_syscall(SYS_rt_sigprocmask, SIG_SETMASK, nullptr, &f->sigmask, 8);
    raw_syscall(SYS_prctl, PR_GET_NAME, reinterpret_cast<long>(f->name));
    long prio = raw_syscall(SYS_getpriority, PRIO_PROCESS, 0);  // the creating OS thread's, as clone copies it
    if (prio >= 0) f->nice = 20 - static_cast<int>(prio);
  }
  if (attrs.explicit_sched) {
    f->sched_policy = attrs.policy;
    f->sched_priority = attrs.priority;
  } else if (creator) {  // inherited, as the kernel does for a new task
    f->sched_policy = creator->sched_policy;
    f->sched_priority = creator->sched_priority;
  } else {
    read_os_sched(f);
  }
  char* top = reinterpret_cast<char*>(at);
  f->ctx = ctx::make(top, top - region.stack_low(), fiber_entry);
  *reinterpret_cast<Fiber**>(static_cast<char*>(tp) + g_fiber_slot_offset) = f;
  registry_add(f);
  g_live.fetch_add(1, std::memory_order_relaxed);
  g_stats.fibers_spawned.fetch_add(1, std::memory_order_relaxed);
  Worker* w = pick_worker();
  f->worker = w;
  w->fibers.fetch_add(1, std::memory_order_relaxed);
  *out = reinterpret_cast<pthread_t>(tp);
  push_remote(w, f);
  return 0;
}

namespace {

// A fiber that ends in a forked child (the runtime is gone there; the fiber
// is the child's OS thread) ends as glibc's start_thread ends a thread: the
// last thread of the process calls exit(0) (atexit handlers, stdio flushed),
// any other ends its OS thread. glibc counts threads in __nptl_nthreads,
// which its pthread_create in the child keeps up to date.
[[noreturn]] void exit_forked_thread() {
  unsigned* nthreads = g_nptl_nthreads;
  if (!nthreads || __atomic_sub_fetch(nthreads, 1, __ATOMIC_ACQ_REL) == 0) real::exit(0);
  for (;;) errno_syscall(SYS_exit, 0);
}

}  // namespace

void exit_fiber(Fiber* f, void* result) {
  f->result = result;
  // As glibc's exiting thread: no cancellation acts from here on (the
  // destructors below may reach cancellation points).
  __atomic_fetch_or(tls::cancelhandling_of(f->tp), 1 << 4 /* EXITING */, __ATOMIC_SEQ_CST);
  // glibc's order in start_thread: C++ thread_local destructors, then keys.
  tls::run_exit_destructors();
  threads::exit_duties(f);
  if (!active()) exit_forked_thread();
  signals::before_exit(f);
  enter(f);
  switch_out(f, SwitchAction::kExit);
  __builtin_unreachable();
}

int join(Fiber* target, void** result, const Deadline& d, bool try_only) {
  Fiber* self = tl_fiber;
  if (target == self) return EDEADLK;
  int js = target->join_state.load(std::memory_order_acquire);
  // A joined thread is gone: glibc finds its descriptor without a tid (ESRCH).
  if (js == kJoined) return try_only ? EBUSY : ESRCH;  // glibc's tryjoin looks at the tid word first
  if (js == kDetached) return EINVAL;
  Parker* me = Parker::current();
  if (!try_only) {
    Parker* expected = nullptr;
    if (!target->joiner.compare_exchange_strong(expected, me, std::memory_order_acq_rel) && expected != me) {
      return EINVAL;  // another thread already joins it
    }
    // The target joining us would deadlock both (glibc reports EDEADLK).
    if (self && self->joiner.load(std::memory_order_acquire) == &target->parker &&
        self->join_state.load(std::memory_order_acquire) == kJoinable) {
      target->joiner.store(nullptr, std::memory_order_release);
      return EDEADLK;
    }
  }
  for (;;) {
    js = target->join_state.load(std::memory_order_acquire);
    if (js == kExited) break;
    if (js == kDetached) {
      if (!try_only) target->joiner.store(nullptr, std::memory_order_release);
      return EINVAL;
    }
    if (try_only) return EBUSY;
    // pthread_join is a cancellation point: a due request ends the wait.
    if (Fiber* mf = me->fiber()) mf->wait_arg = target->tid;
    ParkResult r = me->park(d, WaitReason::kJoin, false, /*cancellable=*/true);
    if (r == ParkResult::kInterrupted && target->join_state.load(std::memory_order_acquire) != kExited) {
      target->joiner.store(nullptr, std::memory_order_release);
      return ECANCELED;
    }
    if (r == ParkResult::kTimedOut && target->join_state.load(std::memory_order_acquire) != kExited) {
      target->joiner.store(nullptr, std::memory_order_release);
      return ETIMEDOUT;
    }
  }
  if (!target->join_state.compare_exchange_strong(js, kJoined, std::memory_order_acq_rel)) return EINVAL;
  if (result) *result = target->result;
  release_fiber(target);
  return 0;
}

int detach(Fiber* target) {
  int js = target->join_state.load(std::memory_order_acquire);
  for (;;) {
    if (js == kJoined) return ESRCH;
    if (js == kDetached) return EINVAL;
    if (js == kExited) {
      // Already ended: detaching frees it, as glibc does.
      if (target->join_state.compare_exchange_strong(js, kJoined, std::memory_order_acq_rel)) {
        release_fiber(target);
        return 0;
      }
      continue;
    }
    if (target->join_state.compare_exchange_weak(js, kDetached, std::memory_order_acq_rel)) return 0;
  }
}

bool hand_off(Worker* w, uint64_t seen) {
  Carrier* spare = nullptr;
  {
    SpinGuard g(g_spare_lock);
    if (g_spares) {
      spare = g_spares;
      g_spares = spare->next_spare;
    }
  }
  bool fresh = false;
  if (!spare) {
    spare = new_carrier(nullptr);
    if (!spare) {
      g_stats.handoff_refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    fresh = true;
  }
  uint64_t expected = seen;
  if (!w->owner_state.compare_exchange_strong(expected, tag(spare), std::memory_order_acq_rel)) {
    if (fresh) {
      // Keep it as a spare for next time.
      spare->worker = nullptr;
      if (!launch_carrier(spare)) return false;
    } else {
      SpinGuard g(g_spare_lock);
      spare->next_spare = g_spares;
      g_spares = spare;
    }
    return false;
  }
  g_stats.handoffs.fetch_add(1, std::memory_order_relaxed);
  if (fresh) {
    spare->worker = w;
    if (!launch_carrier(spare)) {
      log::always("cannot start a carrier thread for hand-off; worker %d stays stuck", w->index);
      return false;
    }
  } else {
    spare->assigned.store(w, std::memory_order_release);
    spare->wake_word.fetch_add(1, std::memory_order_release);
    futex(&spare->wake_word, FUTEX_WAKE, 1);
  }
  // The sleeping flag may be stale; make sure the new carrier looks at w.
  w->engine.notify();
  return true;
}

void begin_blocking(Fiber* f) {
  Carrier* c = f->carrier;
  Worker* w = c->worker;
  if (!w || f->runtime_depth != 0) return;
  bool others = w->run_count.load(std::memory_order_relaxed) > 0 ||
                w->inbox_count.load(std::memory_order_relaxed) > 0 || w->engine.inflight() > 1;
  if (!others) return;  // nobody to keep waiting; the monitor still watches
  hand_off(w, tag(c) | Worker::kUserBit);
}

// Signals (runtime/signals.cpp): calls fn(f, arg) for every live fiber, then
// fn(nullptr, arg), all under the registry lock, so fn may still act on a
// fiber it picked (it cannot be freed before the lock is released). fn must
// not block, switch, allocate or take the registry lock. Any thread or fiber,
// not a signal handler.
void for_each_fiber(void (*fn)(Fiber*, void*), void* arg) {
  SpinGuard g(g_registry_lock);
  for (Fiber* f = g_registry; f; f = f->all_next) fn(f, arg);
  fn(nullptr, arg);
}

long live_fibers() { return g_live.load(std::memory_order_relaxed); }

long for_some_fibers(long skip, long max, void (*fn)(Fiber*, void*), void* arg) {
  SpinGuard g(g_registry_lock);
  long done = 0;
  for (Fiber* f = g_registry; f && done < max; f = f->all_next) {
    if (skip > 0) {
      --skip;
      continue;
    }
    fn(f, arg);
    ++done;
  }
  fn(nullptr, arg);
  return done;
}

bool hold_parked(Fiber* f) {
  int expected = static_cast<int>(RunState::kParked);
  // As signals' try_borrow: kRunning keeps every waker off it (they only
  // leave a permit), and the scheduler never resumes a fiber it did not queue.
  return f->run_state.compare_exchange_strong(expected, static_cast<int>(RunState::kRunning), std::memory_order_acq_rel);
}

void release_hold(Fiber* f) {
  f->run_state.store(static_cast<int>(RunState::kParked), std::memory_order_seq_cst);
  // A wake that came during the hold found it "running" and left its trace
  // (as settle does after a park); so may a signal's borrowed context.
  if (wake_pending(f) || f->sig.borrow_resume) wake(f);
}

bool with_fiber_by_tid(int tid, void (*fn)(Fiber*, void*), void* arg) {
  SpinGuard g(g_registry_lock);
  for (Fiber* f = g_registry; f; f = f->all_next) {
    if (f->tid == tid && f->run_state.load(std::memory_order_acquire) != static_cast<int>(RunState::kDone)) {
      fn(f, arg);
      return true;
    }
  }
  return false;
}

bool ensure_started() {
  int s = g_state.load(std::memory_order_acquire);
  if (s == kActive) return true;
  if (s == kUnavailable) return false;
  SpinGuard guard(g_start_lock);
  s = g_state.load(std::memory_order_acquire);
  if (s == kActive) return true;
  if (s == kUnavailable) return false;
  config::resolve_defaults();
  real::resolve_syscall();  // the syscall() hook must not need dlsym later (e.g. in a signal handler)
  const Config& cfg = config::get();
  auto give_up = [](const char* what, const char* why) {
    LOG_WARN("not starting the runtime (%s: %s); threads stay ordinary threads", what, why);
    g_state.store(kUnavailable, std::memory_order_release);
    return false;
  };
  if (cfg.disabled) return give_up("UNBLOCK_DISABLE", "set");
  if (!tls::init()) return give_up("per-fiber TLS", tls::failure());
  g_fiber_slot_offset = reinterpret_cast<char*>(&tl_fiber) - static_cast<char*>(tls::current_tp());
  g_threads_max = read_threads_max();
  refresh_nproc_limit();
  cpu::init();
  g_nptl_nthreads = static_cast<unsigned*>(dlvsym(RTLD_DEFAULT, "__nptl_nthreads", "GLIBC_PRIVATE"));
  g_state.store(kStarting, std::memory_order_relaxed);

  g_worker_count = cfg.workers;
  g_workers = alloc_objects<Worker>(static_cast<size_t>(g_worker_count));
  g_carrier_max = g_worker_count + cfg.max_threads + 1;
  g_carriers = static_cast<Carrier**>(calloc(g_carrier_max, sizeof(Carrier*)));
  if (!g_workers || !g_carriers) return give_up("memory", "allocation failed");
  for (int i = 0; i < g_worker_count; ++i) {
    g_workers[i].index = i;
    int why = 0;
    if (!g_workers[i].engine.init(cfg.ring_entries, &why)) {
      for (int j = 0; j < i; ++j) g_workers[j].engine.shutdown();
      return give_up("engine", engine::chosen_reason());
    }
  }
  stacks::install_overflow_reporter();
  stacks::setup_altstack();  // for this thread; carriers set up their own
  control::setup();  // before carrier 0 runs: it arms the socket's poll (carrier_loop)

  bool adopt = errno_syscall(SYS_gettid) == getpid();
  Fiber* main_fiber = nullptr;
  if (adopt) {
    // Carrier 0 is this OS thread; its scheduler needs a stack and a TCB of
    // its own, because main keeps the original ones.
    StackRegion region;
    char* stack_top = nullptr;
    void* tp = nullptr;
    if (stacks::allocate(256 * 1024, &region)) {
      tp = tls::create(region.top(), &stack_top, static_cast<int>(errno_syscall(SYS_gettid)));
      if (!tp) stacks::release(region);
    }
    main_fiber = static_cast<Fiber*>(calloc(1, sizeof(Fiber)));
    if (!tp || !main_fiber) return give_up("memory", "cannot allocate the scheduler of the main thread");
    new (main_fiber) Fiber;
    Carrier* c = new_carrier(&g_workers[0]);
    c->tid = static_cast<pid_t>(errno_syscall(SYS_gettid));
    c->own_tp = tp;
    c->rep_tp = tls::current_tp();
    c->sched_region = region;
    char* top = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(stack_top) & ~uintptr_t{63});
    c->sched_ctx = ctx::make(top, top - region.stack_low(), carrier0_entry);
    g_workers[0].owner_state.store(tag(c), std::memory_order_relaxed);

    main_fiber->parker.bind(main_fiber);
    main_fiber->tp = tls::current_tp();
    main_fiber->tid = tls::tid_of(main_fiber->tp);
    main_fiber->is_main = true;
    long prio = raw_syscall(SYS_getpriority, PRIO_PROCESS, 0);
    if (prio >= 0) main_fiber->nice = 20 - static_cast<int>(prio);
    main_fiber->worker = &g_workers[0];
    main_fiber->carrier = c;
    main_fiber->runtime_depth = 1;
    main_fiber->join_state.store(kJoinable, std::memory_order_relaxed);
    errno_syscall(SYS_rt_sigprocmask, SIG_SETMASK, nullptr, &main_fiber->sigmask, 8);
    read_os_sched(main_fiber);
    // main's CPU time so far is the initial thread's; from here carrier 0's
    // accounting takes over.
    cpu::start_carrier(c);
    main_fiber->cpu_ns.store(c->cpu_sync_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
    tl_fiber = main_fiber;
    // An unwind of main (cancellation, pthread_exit) must end main's fiber,
    // not carrier 0's OS thread.
    cancel::adopt_main(main_fiber);
    registry_add(main_fiber);
    g_live.fetch_add(1, std::memory_order_relaxed);
    g_workers[0].fibers.fetch_add(1, std::memory_order_relaxed);
  }
  for (int i = adopt ? 1 : 0; i < g_worker_count; ++i) {
    Carrier* c = new_carrier(&g_workers[i]);
    g_workers[i].owner_state.store(tag(c), std::memory_order_relaxed);
    if (!c || !launch_carrier(c)) {
      log::always("cannot start worker thread %d: %s", i, strerror(errno));
      // Workers that have no carrier would strand fibers: run with fewer.
      g_worker_count = i;
      break;
    }
  }
  if (g_worker_count == 0) return give_up("threads", "no worker thread could be started");
  // Signals (runtime/signals.cpp): take over delivery only now that the
  // runtime cannot give up any more. Main's fiber keeps the mask it had
  // (read above); its OS thread, carrier 0, takes the carriers' mask.
  signals::start();
  if (adopt) signals::adopt_main_thread();
  monitor::start();
  control::start_if_tracing();
  g_state.store(kActive, std::memory_order_release);
  g_active.store(true, std::memory_order_release);
  LOG_INFO("runtime started: %d workers, %s", g_worker_count, adopt ? "main adopted as a fiber" : "caller stays a plain thread");
  if (adopt) {
    // Become a fiber: jump into carrier 0's scheduler, which queues main
    // and runs it (and everything else) from now on.
    Carrier* c = main_fiber->carrier;
    c->worker = &g_workers[0];
    g_start_lock.unlock();
    switch_out(main_fiber, SwitchAction::kYield);
    leave(main_fiber);
    g_start_lock.lock();  // released by the guard
  }
  return true;
}

void forget_after_fork() {
  control::forget_after_fork();
  own_fds::close_all();
  g_active.store(false, std::memory_order_release);
  g_state.store(kUnavailable, std::memory_order_release);
}

// Sums a per-worker counter (0 before the runtime started).
uint64_t sum_workers(uint64_t (*get)(const Worker&)) {
  uint64_t n = 0;
  if (active()) {
    for (int i = 0; i < g_worker_count; ++i) n += get(g_workers[i]);
  }
  return n;
}

void write_stats() {
  const char* where = config::get().stats;
  // A process whose runtime never started has nothing to report (and must
  // not overwrite the file of the process it was started by).
  if (!where || g_state.load(std::memory_order_acquire) == kNotStarted) return;
  char buf[1024];
  int n = snprintf(buf, sizeof buf,
                   "fibers_spawned %lu\nfibers_exited %lu\nswitches %lu\nparks %lu\nhandoffs %lu\n"
                   "busy_handoffs %lu\nhandoff_refused %lu\ncarriers_created %lu\nmigrations %lu\nworkers %d\n"
                   "ring_enters %lu\ndirect_sends %lu\nurgent_reaps %lu\nreaps_deferred %lu\ndirect_switches %lu\nfs_writes %lu\n"
                   "futex_waits %lu\nfutex_kernel_waits %lu\nepoll_number_regs %lu\nepoll_stale_events %lu\n"
                   "engine %s\n",
                   (unsigned long)g_stats.fibers_spawned.load(), (unsigned long)g_stats.fibers_exited.load(),
                   (unsigned long)sum_workers([](const Worker& w) { return w.switches.load(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.parks.load(); }),
                   (unsigned long)g_stats.handoffs.load(), (unsigned long)g_stats.busy_handoffs.load(),
                   (unsigned long)g_stats.handoff_refused.load(),
                   (unsigned long)g_stats.carriers_created.load(), (unsigned long)g_stats.migrations.load(),
                   active() ? g_worker_count : 0, (unsigned long)sum_workers([](const Worker& w) { return w.engine.enters(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.direct_sends.load(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.urgent_reaps.load(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.reaps_deferred.load(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.direct_switches.load(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.fs_writes.load(); }),
                   (unsigned long)g_stats.futex_waits.load(), (unsigned long)g_stats.futex_kernel_waits.load(),
                   (unsigned long)sum_workers([](const Worker& w) { return w.engine.number_registrations(); }),
                   (unsigned long)sum_workers([](const Worker& w) { return w.engine.stale_events(); }),
                   engine::chosen());
  int fd = 2;
  if (strcmp(where, "stderr") != 0) {
    fd = static_cast<int>(errno_syscall(SYS_openat, AT_FDCWD, where, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd < 0) return;
  }
  errno_syscall(SYS_write, fd, buf, n);
  if (fd != 2) errno_syscall(SYS_close, fd);
}

}  // namespace sched
}  // namespace unblock
