// The blocked-worker monitor: keeps fibers running when a carrier does not
// come back to its scheduler.
//
// One OS thread (started with the runtime, all signals blocked) samples
// every worker each UNBLOCK_HANDOFF_US/2. A worker whose carrier is in the
// program's code (not in the runtime), has made no progress for
// UNBLOCK_HANDOFF_US, and has other work waiting (runnable fibers, wakes, or
// I/O in flight) is handed to a spare carrier (sched::hand_off). Causes: a
// call the library does not intercept (stdio's internal write, flock,
// waitpid, a raw futex), or a fiber spinning on an atomic. Bounded by
// UNBLOCK_MAX_THREADS extra carriers; counted in the stats (handoffs,
// handoff_refused). When every worker sleeps, the monitor sleeps too (0% CPU).
#pragma once

namespace unblock::monitor {

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
