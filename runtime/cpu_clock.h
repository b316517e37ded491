// Per-thread CPU time for fibers (CLOCK_THREAD_CPUTIME_ID, the clocks of
// pthread_getcpuclockid, getrusage(RUSAGE_THREAD)).
//
// The kernel counts CPU time per OS thread, i.e. per carrier; a carrier's
// clock holds every fiber it ran. The runtime splits it without a system
// call per switch (docs/DESIGN.md, section 7d):
//   - each carrier keeps a TSC mark; when a fiber switches out, the ticks
//     since the mark (its run, plus the scheduler's work just before it) are
//     the fiber's: one rdtsc per switch;
//   - a run of kLongRunTicks or more may hide time off the CPU (the carrier
//     preempted, or blocked in a call the library does not intercept), so it
//     is checked against the carrier's own CPU clock (one clock_gettime
//     system call per such run): the run is given the carrier's CPU time
//     since the last check, minus what was given out meanwhile, clamped to
//     [0, the run's length];
//   - before a carrier sleeps (at most once per kResetTicks) the same
//     check drops the carrier time no fiber ran in, so idle wake-ups are
//     not charged to the next long run.
// TSC ticks become ns by the ratio of TSC to CLOCK_MONOTONIC since start.
//
// Must not: make a system call on the per-switch path, or allocate.
#pragma once

#include <cstdint>
#include <ctime>

namespace unblock {

class Carrier;
class Fiber;

namespace cpu {

constexpr uint64_t kLongRunTicks = 100'000;   // 25-100 us at 1-4 GHz
constexpr uint64_t kResetTicks = 4'000'000;   // 1-4 ms

inline uint64_t ticks() { return __builtin_ia32_rdtsc(); }

// Records the TSC/monotonic origin. Bootstrap, once.
void init();
// The calling OS thread's CPU time in ns (a system call).
uint64_t os_thread_ns();
// Starts carrier c's accounting: on c's own OS thread, before it runs a fiber.
void start_carrier(Carrier* c);

// A long run (or a query in one) is checked against the carrier's CPU
// clock; gives f its share and moves the marks. On c's OS thread.
void settle_long(Carrier* c, Fiber* f, uint64_t now, uint64_t run);
// Before the carrier sleeps: drop unattributed carrier time. Carrier only.
void before_sleep(Carrier* c);
// After the carrier slept (idle, or as a spare): restart the mark.
void after_sleep(Carrier* c);

// After f switched out to its carrier's scheduler (scheduler side, c's OS
// thread). One rdtsc.
void account_switch(Carrier* c, Fiber* f);

// f's CPU time in ns, never less than a value reported before. Any thread;
// for a fiber other than the caller's own, a running one's current run is
// read from its carrier's clock (a system call).
uint64_t fiber_ns(Fiber* f);
// Splits ns into user and system time in the calling carrier's proportion.
void split(uint64_t ns, timeval* user, timeval* sys);

}  // namespace cpu
}  // namespace unblock
