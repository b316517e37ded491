// The M:N scheduler: workers, carriers, park/wake, spawn, join, exit.
//
// Vocabulary (docs/DESIGN.md has the essay and the measurements):
//   Worker  - a scheduling slot: a FIFO run queue, an inbox for wakes from
//             other threads, and one io_uring (Engine). UNBLOCK_WORKERS of them.
//   Carrier - an OS thread that drives one worker at a time: it runs the
//             worker's fibers, flushes its ring once per round and sleeps in
//             io_uring_enter when there is nothing to run.
//   Fiber   - a thread of the program (runtime/fiber.h).
// Normally carrier i drives worker i. When a carrier stays in the program's
// code too long (a call the library does not intercept, a spin loop) while
// its worker has other work, the monitor gives the worker to a spare carrier
// (hand-off, runtime/monitor.cpp); the stuck carrier finishes its fiber's
// call, then queues the fiber elsewhere and becomes a spare.
//
// A worker's owner_state word says which carrier drives it and whether that
// carrier is in the runtime or in the program's code; only the latter can be
// taken over. Fibers enter the runtime (enter()) before touching their
// worker and leave it (leave()) before returning to the program.
//
// Lock order: registry lock -> worker inbox lock -> timer pool lock. None
// is held across a context switch.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "runtime/engine.h"
#include "runtime/fiber.h"
#include "runtime/parker.h"
#include "runtime/spinlock.h"

namespace unblock {

class Carrier;

class Worker {
 public:
  int index = 0;
  Engine engine;

  // Run queue: only the driving carrier's scheduler touches it.
  Fiber* run_head = nullptr;
  Fiber* run_tail = nullptr;
  // Runs before run_head: the fiber last woken by a fiber (a lock,
  // semaphore or condition hand-over), at most kNextStreak times in a row
  // before the queue's head gets a turn (section 4 of docs/DESIGN.md).
  Fiber* run_next = nullptr;
  int next_streak = 0;
  std::atomic<int> run_count{0};  // run queue + run_next
  // The last fiber the latest round-start reap left queued, until it is
  // popped, and when that reap was: the next one waits for it (round_reap
  // in scheduler.cpp; engines that keep their backlog only).
  Fiber* reap_mark = nullptr;
  int64_t reap_mark_ns = 0;

  // Wakes from anywhere.
  SpinLock inbox_lock{LockRank::kWorkerInbox};
  Fiber* inbox_head = nullptr;
  Fiber* inbox_tail = nullptr;
  Fiber* inbox_next = nullptr;  // becomes run_next when drained
  std::atomic<int> inbox_count{0};
  std::atomic<bool> sleeping{false};

  // (carrier index + 1) << 1 | kUserBit.
  std::atomic<uint64_t> owner_state{0};
  std::atomic<uint64_t> progress{0};
  std::atomic<int> fibers{0};  // fibers homed here (placement)
  // Counters for UNBLOCK_STATS, per worker so that carriers never share a
  // cache line on every switch; written only by the driving carrier (bump).
  std::atomic<uint64_t> switches{0};
  std::atomic<uint64_t> parks{0};
  std::atomic<uint64_t> direct_sends{0};  // sends that did not wait (send_now, runtime/api.cpp)
  std::atomic<uint64_t> fs_writes{0};        // FS base writes by switches (one per resume is the floor)
  std::atomic<uint64_t> direct_switches{0};  // fiber to fiber without the scheduler's context (scheduler.cpp)
  std::atomic<uint64_t> urgent_reaps{0};  // completions reaped mid-round for an urgent one (Engine)
  std::atomic<uint64_t> reaps_deferred{0};  // round starts that left the engine's backlog (round_reap)

  // Monitor bookkeeping (monitor thread only): the switch count at the last
  // sample, the runtime entries when the current fiber's hold began, and
  // how many samples in a row saw the same hold.
  uint64_t seen_switches = 0;
  uint64_t hold_progress = 0;
  int stuck_checks = 0;
  uint64_t stall_switches = 0;  // switches at the last stall sample
  int64_t stall_since_ns = 0;  // since when in the program's code without a switch (UNBLOCK_STALL_MS; coarse clock)
  bool stall_counted = false;

  static constexpr uint64_t kUserBit = 1;
};

// Adds one to a counter only the driving carrier writes: a plain load and
// store, no locked instruction (readers elsewhere only need a recent value).
inline void bump(std::atomic<uint64_t>& a) { a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }

class Carrier {
 public:
  int index = 0;
  pid_t tid = 0;
  pthread_t thread{};
  void* own_tp = nullptr;   // TCB its scheduler runs on
  void* rep_tp = nullptr;   // the descriptor glibc knows this OS thread by
  ctx::Handle sched_ctx = nullptr;
  Worker* worker = nullptr; // the worker it drives, or nullptr (spare)
  Fiber* current = nullptr;
  std::atomic<uint32_t> wake_word{0};  // spare carriers sleep on it
  std::atomic<Worker*> assigned{nullptr};
  StackRegion sched_region;  // carrier 0 only: its scheduler stack
  Carrier* next_spare = nullptr;
  // Direct switches (scheduler.cpp, "switching"): runs left in the current
  // round, which a parking or yielding fiber may hand straight to the next
  // runnable fiber; 0 outside a round. Only this carrier touches them.
  int runs_left = 0;
  // True while a fiber runs the scheduler's bookkeeping on its own TCB (a
  // direct switch): wakes it causes are the scheduler's, not a fiber's.
  bool scheduling = false;
  // CPU accounting (runtime/cpu_clock.h); written only by this OS thread.
  std::atomic<uint64_t> cpu_mark{0};         // TSC at the last switch or wake-up
  std::atomic<uint64_t> cpu_sync_ns{0};      // this thread's CPU clock at the last check
  std::atomic<uint64_t> cpu_since_ticks{0};  // ticks given to fibers since that check
  uint64_t cpu_sync_tick = 0;                // TSC of that check
};

namespace sched {

// True once the runtime runs (after the first thread was created).
extern std::atomic<bool> g_active;
inline bool active() { return g_active.load(std::memory_order_acquire); }
// True if the runtime could not start and never will (calls pass through).
bool unavailable();

// Starts the runtime and adopts the caller as a fiber if it is the
// process's initial thread. Idempotent. False: unavailable, pass through.
// Plain thread only (the caller is not yet a fiber).
bool ensure_started();

// What pthread_create's attributes ask for (runtime/threads.cpp reads them).
struct SpawnAttrs {
  size_t stack_size = 0;   // 0: UNBLOCK_STACK_SIZE / glibc's default
  size_t guard_size = 0;   // as the program asked (pthread_attr_getguardsize)
  bool detached = false;
  bool explicit_sched = false;  // PTHREAD_EXPLICIT_SCHED: policy/priority below; else inherited
  int policy = 0;
  int priority = 0;
};

// Creates a fiber running start(arg). Any thread. Returns 0 or an errno
// value: EAGAIN when the stack or TCB cannot be allocated or the thread
// limits are reached (thread_limit_reached).
int spawn(void* (*start)(void*), void* arg, const SpawnAttrs& attrs, pthread_t* out);

// Re-reads RLIMIT_NPROC (after the program changed its limits). Any thread.
void refresh_nproc_limit();

// True if the calling OS thread has capability `cap` in its effective set.
bool has_capability(int cap);

// Parks the calling fiber (Parker::park for fibers). May suspend.
ParkResult park(Fiber* f, const Deadline& d, WaitReason why, bool interruptible, bool cancellable);
// Wakes a parked fiber if it is parked (any thread, not a signal handler).
void wake(Fiber* f);
// Yields the calling fiber's carrier to other runnable fibers.
void yield(Fiber* f);

// Every context that a carrier resumes calls this first with the Transfer
// its jump returned: from the scheduler (data == nullptr) it records the
// scheduler's context; from a fiber that switched straight to it (data ==
// that fiber) it finishes that fiber's switch-out. Fiber, inside the runtime.
void on_resumed(Fiber* self, ctx::Transfer t);

// Fiber exit: runs thread-exit duties (threads::exit_duties) and never returns.
[[noreturn]] void exit_fiber(Fiber* f, void* result);

// Join: 0, or EINVAL/ESRCH/EDEADLK/ETIMEDOUT/EBUSY as pthread_join and its
// timed/try variants. try_only: do not wait. ECANCELED: the caller's
// cancellation request ended the wait (the target stays joinable; the
// caller must call cancel::point()).
int join(Fiber* target, void** result, const Deadline& d, bool try_only);
int detach(Fiber* target);

// Calls fn(f, arg) under the registry lock if a live fiber has thread id
// `tid` (Fiber::tid); false if none. fn must not block, switch, allocate or
// take the registry lock. Any thread, not a signal handler. O(live fibers).
bool with_fiber_by_tid(int tid, void (*fn)(Fiber*, void*), void* arg);
// Calls fn(f, arg) for every live fiber, then fn(nullptr, arg), under the
// registry lock (same rules as with_fiber_by_tid).
void for_each_fiber(void (*fn)(Fiber*, void*), void* arg);
// Calls fn(f, arg) for at most `max` live fibers after skipping `skip`,
// then fn(nullptr, arg), under the registry lock (same rules). Returns how
// many fibers it called fn for.
long for_some_fibers(long skip, long max, void (*fn)(Fiber*, void*), void* arg);
// Fibers that have not ended (any thread).
long live_fibers();
// Inspection (runtime/inspect.cpp) and borrowed signal delivery
// (runtime/signals.cpp try_borrow): keeps a parked fiber from being resumed
// (and so from ending) while its saved stack is read: wakes meanwhile leave
// their permit, timer or interruption behind, and release_hold() applies
// them. Under the registry lock for hold_parked (the fiber must be live);
// any thread, not a signal handler.
// A runnable fiber is held with Fiber::dump_hold instead (the scheduler
// resumes it without a CAS): the dump sets it, runs membarrier(), and the
// fiber is held if it is still kRunnable then; begin_run puts a held fiber
// back in its run queue (scheduler.cpp; inspect_stacks.cpp has the dump's side).
bool hold_parked(Fiber* f);
void release_hold(Fiber* f);

// Enters/leaves the runtime from a fiber (see the header comment). enter()
// returns the worker to use; if the carrier lost its worker it first moves
// the fiber to another one (so it may suspend).
Worker* enter(Fiber* f);
void leave(Fiber* f);

// Workers and carriers, for the monitor and signals.
int worker_count();
Worker* worker_at(int i);
int carrier_count();
Carrier* carrier_at(int i);
// The carrier the calling OS thread is (nullptr for plain threads). Async-signal-safe.
Carrier* current_carrier();

// Counters (UNBLOCK_STATS).
struct Stats {
  std::atomic<uint64_t> fibers_spawned{0};
  std::atomic<uint64_t> fibers_exited{0};
  std::atomic<uint64_t> handoffs{0};
  // Of handoffs, those whose fiber kept entering the runtime without ever
  // switching (a loop inside a hook: a livelock, not a blocked call).
  std::atomic<uint64_t> busy_handoffs{0};
  std::atomic<uint64_t> handoff_refused{0};
  std::atomic<uint64_t> carriers_created{0};
  std::atomic<uint64_t> migrations{0};
  std::atomic<uint64_t> futex_waits{0};         // raw futex waits of fibers served by the parking lot (runtime/futex.cpp)
  std::atomic<uint64_t> futex_kernel_waits{0};  // raw futex waits a fiber left to the kernel (hand-off route)
  std::atomic<uint64_t> stalls{0};         // UNBLOCK_STALL_MS exceeded (monitor)
  std::atomic<uint64_t> stall_reports{0};  // of which reported (a new call site)
  std::atomic<uint64_t> dump_held_back{0};  // runnable fibers a dump held when they were due to run (requeued)
};
Stats& stats();
void write_stats();

// Hand-off (monitor): gives `w` to a spare carrier if `w` is still driven
// in the program's code by the owner in `seen`. Monitor thread only.
bool hand_off(Worker* w, uint64_t seen);

// Before a call that may sleep in the kernel outside the runtime's view
// (the resolver, waitpid, flock...): if the fiber's worker has other work,
// hand it to another carrier now instead of after UNBLOCK_HANDOFF_US. The
// fiber keeps this OS thread for the call and rejoins a worker at its next
// runtime entry. Fiber, outside the runtime (not between enter/leave).
void begin_blocking(Fiber* f);

// fork() support: the child passes everything through.
void forget_after_fork();

}  // namespace sched
}  // namespace unblock
