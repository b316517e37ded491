// futex(2) for a program whose threads are fibers.
//
// Responsible for: the SYS_futex requests the program makes through glibc's
// syscall() (GLib's GMutex/GCond/g_bit_lock, Rust's std, libstdc++'s C++20
// atomic wait and semaphores, absl, Qt...), with the kernel's semantics:
// return values, errno, value checks atomic with respect to wakers, bitsets,
// requeue, wake-op, timeouts on the right clock, EINTR and SA_RESTART.
// Must not: block a carrier for a wait it can serve, or change what a
// process-shared futex means to other processes.
//
// Who waits where (docs/DESIGN.md, section 6b):
//   - A fiber's private wait (FUTEX_PRIVATE_FLAG: WAIT, WAIT_BITSET) parks
//     on the parking lot, keyed by the word's address, its bitset as the
//     node's tag; the value is compared under the bucket lock, as the kernel
//     compares it under its hash-bucket lock.
//   - A plain OS thread's private wait stays the kernel's; it is counted
//     (g_kernel_waiters) while it sleeps there.
//   - Every private wake, requeue or wake-op made through syscall() - by a
//     fiber or a plain thread - serves the parking lot first and then, only
//     while some wait sleeps in the kernel, issues the same request to the
//     kernel for what is left. Private futexes cannot be woken from another
//     process, and glibc's own futex calls never touch the program's words,
//     so this sees every waker.
//   - Process-shared futexes (no FUTEX_PRIVATE_FLAG) on private anonymous
//     memory (libstdc++ 12's atomic wait uses them) cannot be reached from
//     another process: a fiber parks on the lot, in a key space apart from
//     the private one, and every shared wake also asks the kernel. On any
//     other memory (a shared or file mapping) another process may wait or
//     wake on the word: a fiber about to wait there first hands its worker
//     to another carrier (sched::begin_blocking), so only its own OS thread
//     sleeps in the kernel. So do the requests the lot does not model (PI
//     futexes, FUTEX_WAIT_REQUEUE_PI, unknown operations);
//     FUTEX_CLOCK_REALTIME on anything but WAIT_BITSET goes to the kernel,
//     which rejects it.
#pragma once

#include <cstdint>

namespace unblock {
class Fiber;

namespace futex {

// Returned by call(): the request is the kernel's; make it unchanged.
constexpr long kPassThrough = 1L << 62;

// One futex(2) request, while the runtime runs. f: the calling fiber, or
// nullptr for a plain OS thread. Returns the kernel's result (>= 0), -errno,
// or kPassThrough (only for process-shared and unmodelled requests; a
// private wait that sleeps in the kernel is made here, counted). Where: a fiber outside the runtime or a plain thread, not
// a handler that interrupted a parking-lot operation of its thread. May
// suspend a fiber (waits). Does not allocate.
long call(Fiber* f, uint32_t* uaddr, int op, uint32_t val, long timeout_or_val2, uint32_t* uaddr2, uint32_t val3);

}  // namespace futex
}  // namespace unblock
