// The blocked-worker monitor: keeps fibers running when a carrier does not
// come back to its scheduler.
//
// One OS thread (started with the runtime, all signals blocked) samples
// every worker each UNBLOCK_HANDOFF_US/2. A worker held by one fiber - no
// fiber switch for UNBLOCK_HANDOFF_US - while it has other work waiting
// (runnable fibers, wakes, or I/O in flight) is handed to a spare carrier
// (sched::hand_off) at a sample that finds its carrier in the program's
// code. Causes: a call the library does not intercept (stdio's internal
// write, flock, waitpid, a raw futex), a fiber spinning on an atomic, or a
// loop that keeps entering the runtime without ever parking (a livelock
// inside a hook; counted apart as busy_handoffs and logged at warn once:
// Go's sysmon likewise retakes a P from a goroutine that runs too long).
// Bounded by UNBLOCK_MAX_THREADS extra carriers; counted in the stats
// (handoffs, busy_handoffs, handoff_refused). When every worker sleeps, the
// monitor sleeps too (0% CPU).
#pragma once

#include <cstdint>

namespace unblock {
class Worker;
}

namespace unblock::monitor {

// One sample of a worker, as the monitor reads it.
struct Sample {
  uint64_t state = 0;     // owner_state
  uint64_t progress = 0;  // runtime entries and scheduler rounds
  uint64_t switches = 0;  // fibers resumed
  bool waiting = false;   // runnable fibers, wakes or I/O in flight
};

// kWait: nothing to do now. kHandOff: one fiber held the worker for
// checks_needed samples without entering the runtime (a blocked call, a
// spin). kHandOffBusy: it held it while entering the runtime (a loop in a
// hook that never parks). Updates w's monitor bookkeeping. Monitor thread
// only (and unit tests); does not allocate.
enum class Verdict { kWait, kHandOff, kHandOffBusy };
Verdict judge(Worker* w, const Sample& now, int checks_needed);

// Starts the monitor thread. Runtime start only.
void start();

// The monitor's OS thread id (0 before it runs), for dumps. Any thread.
int thread_id();

// Wakes the monitor if it sleeps (the control socket's first client,
// runtime/control.h). Any thread, not a signal handler.
void kick();

// A worker's carrier is going to sleep in the kernel (true) or woke (false).
// Carriers only.
void worker_idle(bool idle);

}  // namespace unblock::monitor
