// Fiber: one thread of the program, as the runtime sees it.
//
// A fiber owns a stack region (guard | stack | Fiber object | TLS | TCB) and
// a glibc TCB, so pthread_self() of a fiber is its thread pointer `tp`.
// The main thread, adopted when the runtime starts, keeps its original stack
// and TCB (region.base == nullptr).
//
// Lifecycle (run_state): kRunnable (queued on a worker) -> kRunning (on a
// carrier) -> kParked (context saved, waiting for a wake) -> kRunnable ...
// -> kDone. Only the scheduler moves a fiber into kParked, after its context
// is saved, so a waker can never resume a fiber that is still running; a
// waker moves kParked -> kRunnable with one CAS, so a fiber is queued once.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <cstdint>

#include "runtime/context.h"
#include "runtime/parker.h"
#include "runtime/signal_queue.h"
#include "runtime/stack.h"

namespace unblock {

class Worker;
class Carrier;
struct TimerOp;

enum class RunState : int { kRunnable, kRunning, kParked, kDone };

// What a fiber asks its carrier to do when it switches out.
enum class SwitchAction : uint8_t { kNone, kPark, kYield, kExit, kMigrate };

// Join protocol (join_state): kJoinable -> kExited (fiber ended, result kept
// until joined) -> kJoined; kJoinable -> kDetached -> (ends, freed at once).
enum JoinState : int { kJoinable = 0, kDetached = 1, kExited = 2, kJoined = 3 };

class Fiber {
 public:
  // The calling fiber, or nullptr on a plain thread or a carrier's scheduler.
  static Fiber* current();
  // The fiber behind a pthread_t, or nullptr if it is not one of ours.
  static Fiber* from_thread(pthread_t t);

  ctx::Handle ctx = nullptr;   // saved context while not running
  void* tp = nullptr;          // thread pointer: glibc TCB, == pthread_t
  // TSC ticks of short runs (runtime/cpu_clock.cpp; written at every
  // switch, so it sits with the fields every switch touches).
  std::atomic<uint64_t> cpu_ticks{0};
  Parker parker;
  Worker* worker = nullptr;    // the worker whose queue it belongs to
  Carrier* carrier = nullptr;  // the OS thread running it (valid while running)
  std::atomic<int> run_state{static_cast<int>(RunState::kRunnable)};
  // Set by a dump while it reads this runnable fiber's saved stack: the
  // scheduler then puts it back in its run queue instead of resuming it
  // (sched::hold_runnable; begin_run reads it right after its store of
  // kRunning, so it sits in the same cache line).
  std::atomic<bool> dump_hold{false};
  WaitReason reason = WaitReason::kNone;
  // What it waits for, for dumps (runtime/inspect.cpp): plain stores by the
  // code that parks it, read racily by the dumper (a torn value only makes
  // one dump line wrong). wait_obj/wait_arg/wait_op mean what `reason` and
  // wait_op say (inspect.h, WaitOp); sched::park sets wait_since
  // (inspect::park_clock_ns) and wait_deadline (the park's own deadline,
  // which lives as long as the park; nullptr: none).
  const void* wait_obj = nullptr;
  int64_t wait_arg = 0;
  uint8_t wait_op = 0;
  int64_t wait_since = 0;
  const Deadline* wait_deadline = nullptr;
  Fiber* next_run = nullptr;   // run-queue link
  // next_run's saved context and TCB, recorded when it was queued behind
  // this fiber: the scheduler prefetches them one run ahead (scheduler.cpp).
  void* next_ctx_hint = nullptr;
  void* next_tp_hint = nullptr;
  // Its next wake by a completion runs it before the run queue's head
  // (accept: a listener's thread must not wait a pass through thousands of
  // busy connections per accepted one). Set by the API's engine wait (runtime/api.cpp) while an urgent
  // operation (IoOp::urgent) waits.
  bool wake_urgent = false;
  uint8_t direct_sends = 0;    // sends completed without switching since the last switch (send_now, runtime/api.cpp)
  SwitchAction action = SwitchAction::kNone;
  int runtime_depth = 0;       // > 0 while inside the runtime (enter/leave)

  // Timed park in progress (owned by the engine that armed it).
  TimerOp* timer = nullptr;
  bool park_interruptible = false;
  bool park_cancellable = false;  // a due cancellation request ends the park (runtime/cancel.h)

  // The thread it stands for.
  void* (*start)(void*) = nullptr;
  void* arg = nullptr;
  void* result = nullptr;
  std::atomic<int> join_state{kJoinable};
  std::atomic<Parker*> joiner{nullptr};
  int tid = 0;
  bool is_main = false;
  char* unwind_limit = nullptr;  // set when glibc's forced unwind of this fiber lands in the runtime
  bool exit_called = false;      // pthread_exit ran (else an unwind is a cancellation)
  StackRegion region;            // empty for the adopted main thread
  size_t stack_size = 0;         // as requested (for pthread_getattr_np)
  // Per-thread kernel attributes a fiber cannot hand to the kernel (its
  // carrier is shared): kept here, inherited by the threads it creates, as
  // clone() does (runtime/thread_ids.cpp).
  int nice = 0;                  // setpriority(PRIO_PROCESS, tid)
  int ioprio = -1;               // ioprio_set(IOPRIO_WHO_PROCESS, tid); -1: never set
  bool affinity_set = false;     // sched_setaffinity(tid): recorded, not enforced
  cpu_set_t affinity;
  size_t guard_size = 0;         // as requested (pthread_getattr_np reports it, as glibc does)
  // Scheduling policy and priority as the program set or inherited them
  // (pthread_setschedparam & co. record them; carriers keep their own).
  int sched_policy = 0;
  int sched_priority = 0;

  // CPU time (runtime/cpu_clock.cpp): with cpu_ticks above, the time of
  // runs checked against the carrier's own CPU clock, in ns. Written only by
  // the carrier running the fiber; read anywhere.
  std::atomic<uint64_t> cpu_ns{0};
  std::atomic<uint64_t> cpu_seen{0};  // the largest value reported (readings never go back)
  char name[16] = {};

  // Signals (runtime/signals.cpp): the thread's mask (the program's view; the
  // carrier's real mask stays the runtime's) and what is pending for it.
  sigset_t sigmask{};
  signals::FiberSignals sig;

  // Accessors for the subsystems that write the scheduler's fields.
  //
  // pthread_exit (runtime/threads.cpp): the value fiber_entry's unwind
  // target ends the fiber with. The fiber itself, before glibc's unwind.
  void set_exit_value(void* value) {
    result = value;
    exit_called = true;
  }
  // A park in progress, which a borrowed signal delivery
  // (runtime/signal_delivery.cpp) sets aside while handlers run on top of
  // the parked wait - as if the fiber ran the program's code inside the
  // runtime once (runtime_depth 1) - and puts back before continuing it.
  // The fiber itself, resumed by its scheduler.
  struct ParkState {
    WaitReason reason;
    TimerOp* timer;
    bool interruptible;
    bool cancellable;
    int runtime_depth;
  };
  ParkState set_aside_park() {
    ParkState s{reason, timer, park_interruptible, park_cancellable, runtime_depth};
    reason = WaitReason::kNone;
    timer = nullptr;
    park_interruptible = false;
    park_cancellable = false;
    runtime_depth = 1;
    return s;
  }
  void restore_park(const ParkState& s) {
    runtime_depth = s.runtime_depth;
    reason = s.reason;
    timer = s.timer;
    park_interruptible = s.interruptible;
    park_cancellable = s.cancellable;
  }
  // Makes the next resume enter `next` instead of the saved context, which
  // it returns (a borrowed delivery continues it afterwards). The fiber is
  // parked and held by the caller (sched::hold_parked), or being resumed.
  ctx::Handle divert_resume(ctx::Handle next) {
    ctx::Handle saved = ctx;
    ctx = next;
    return saved;
  }

  // Registry of live fibers (for dumps and signal delivery), under the registry lock.
  Fiber* all_prev = nullptr;
  Fiber* all_next = nullptr;
};

// The slot in every TCB's static TLS that names its fiber.
// __thread, not thread_local: no dynamic initialisation, so an access is one
// %fs-relative load (hooks test it on every call).
extern __thread Fiber* tl_fiber __attribute__((tls_model("initial-exec")));
extern long g_fiber_slot_offset;

inline Fiber* Fiber::current() { return tl_fiber; }

}  // namespace unblock
