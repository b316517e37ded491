// Stacks of threads that are not parked, for dumps and stall reports
// (runtime/inspect.cpp reads parked ones from their saved context itself).
//
//   runnable  held with Fiber::dump_hold, ordered by membarrier()
//             (runnable_barrier; the scheduler's side is begin_run), then
//             unwound from their saved context like parked ones;
//   running   a SIGURG marker to their carrier, whose handler (on_marker)
//             copies the interrupted registers and the top of the stack
//             into a preallocated slot; unwound later, outside the handler;
//   in a system call (handed off, stalled, plain OS threads): never
//             signalled (the call would see EINTR): /proc/self/task/T/syscall
//             gives sp and pc, the stack is copied with process_vm_readv,
//             and /proc is read again to check that the thread did not move.
//
// Captures are unwound with libdw (dlopen'ed when first asked) from the
// copy, reading anything outside it with process_vm_readv: nothing here
// faults on memory that changed or went away. Nothing here calls an
// exported hook.
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>

namespace unblock::inspect {

constexpr size_t kStackCopy = 64 * 1024;

// A frame's address as unwinding reports it: a return address (looked up
// at address - 1, the call), or with kExactPc set the exact address of an
// interrupted instruction (a capture's innermost frame).
constexpr uintptr_t kExactPc = uintptr_t{1} << 63;
inline uintptr_t frame_addr(uintptr_t ip) { return ip & ~kExactPc; }
inline uintptr_t frame_lookup_addr(uintptr_t ip) { return (ip & kExactPc) ? ip & ~kExactPc : ip - 1; }

// A thread's registers and the top of its stack at one instant.
struct Capture {
  uint64_t regs[17];   // DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15, 16 = rip
  bool all_regs;       // false: only rsp and rip are known (from /proc)
  uintptr_t copy_lo;   // the copy holds [copy_lo, copy_lo + copy_len)
  size_t copy_len;
  unsigned char copy[kStackCopy];
};

// The SIGURG marker handler calls this first (runtime/signals.cpp). If a
// capture was asked for this OS thread and it runs the asked fiber on that
// fiber's stack, copies its registers and stack. True if the signal was a
// dump's marker (the handler then returns: it is no signal of the program's
// and no delivery marker). Async-signal-safe: raw system calls and stores
// only; errno untouched.
bool on_marker(const siginfo_t* si, void* uc);

// Asks OS thread `tid` (a carrier believed to run `fiber` in the program's
// code, with stack [lo, hi)) for its registers and stack through the
// marker; waits at most timeout_ms. False if the thread was not running
// that fiber on that stack when the marker came, or did not answer. The
// caller checks first that `tid` is not in a system call (/proc says
// "running"). A plain runtime thread (control, monitor, signal thread);
// one capture at a time process-wide (callers wait for each other).
bool capture_running(const void* fiber, int tid, uintptr_t lo, uintptr_t hi, Capture* out, int timeout_ms);

// How many dump markers so far ended a system call of the program with
// EINTR (the race capture_running cannot close: the thread entered a
// sleeping call that is not restarted after a handler, between the check
// of /proc and the marker). Any thread.
uint64_t spurious_eintr();

// OS thread `tid` sleeping in the kernel: sp and pc from /proc, the stack
// copied, /proc read again. False if it runs (or moved meanwhile). Any
// plain thread.
bool capture_blocked(int tid, Capture* out);

// The stack [lo, hi) of the process's initial thread ("[stack]" in
// /proc/self/maps); false if not found. Any plain thread.
bool main_stack_bounds(uintptr_t* lo, uintptr_t* hi);

// Orders every carrier's begin_run against the dump's stores to
// Fiber::dump_hold made before it (membarrier(2), private expedited, else
// global). False when the kernel has no membarrier: runnable fibers cannot
// be held, and are shown without stacks. Any plain thread (the dump calls
// it under the registry lock). prepare_runnable_barrier registers the
// process for it once (its first call waits for an RCU grace period:
// milliseconds), outside the lock.
void prepare_runnable_barrier();
bool runnable_barrier();

// An unwinding session: one libdw view of the process's objects (reported
// from /proc/self/maps when first used) for any number of captures. Plain
// thread; a session belongs to one thread.
class StackSession {
 public:
  StackSession() = default;
  ~StackSession();
  StackSession(const StackSession&) = delete;
  StackSession& operator=(const StackSession&) = delete;
  // The capture's frames, innermost first (the first with kExactPc).
  int unwind(const Capture& c, uintptr_t* out, int max);
  // Appends " file.c:73" for a frame address if debug information says.
  void append_line(uintptr_t ip, char* out, size_t cap);
  void* dwfl() const { return dwfl_; }

  // libdw's callbacks (internal).
  const Capture* cur_ = nullptr;
  uintptr_t* out_ = nullptr;
  int n_ = 0;
  int max_ = 0;

 private:
  bool open();
  void* dwfl_ = nullptr;
  bool tried_ = false;
  bool attached_ = false;
};

}  // namespace unblock::inspect
