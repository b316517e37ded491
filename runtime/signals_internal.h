// Private to the signal files (runtime/signals.cpp: dispositions and
// trampolines; runtime/signal_delivery.cpp: queues, delivery and dispatch;
// runtime/signal_thread.cpp: the signal thread and start-up). Nothing else
// includes it. The model and the EINTR contract: runtime/signals.h.
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "runtime/fiber.h"
#include "runtime/signals.h"
#include "shim/raw_syscall.h"

namespace unblock::signals {

// ---- raw system calls ---------------------------------------------------------

inline long sys_sigmask(int how, const uint64_t* set, uint64_t* old) {
  return raw_syscall(SYS_rt_sigprocmask, how, reinterpret_cast<long>(set), reinterpret_cast<long>(old), 8);
}
inline int sys_gettid() { return static_cast<int>(raw_syscall(SYS_gettid)); }
inline int sys_getpid() { return static_cast<int>(raw_syscall(SYS_getpid)); }

// ---- signal sets ------------------------------------------------------------------

constexpr uint64_t kAll = ~uint64_t{0};
constexpr uint64_t kFaults =
    bit(SIGSEGV) | bit(SIGBUS) | bit(SIGFPE) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGSYS);
constexpr uint64_t kGlibcInternal = bit(32) | bit(33);  // SIGCANCEL, SIGSETXID
constexpr uint64_t kUnblockable = bit(SIGKILL) | bit(SIGSTOP);
// Raised by the kernel on the thread that wrote: left unblocked on carriers.
constexpr uint64_t kCarrierDelivered = bit(SIGPIPE) | bit(SIGXFSZ);
constexpr uint64_t kMarkerBit = bit(SIGURG);
// What the signal thread reads and dispatches.
constexpr uint64_t kManaged = kAll & ~kFaults & ~kGlibcInternal & ~kUnblockable & ~kCarrierDelivered & ~kMarkerBit;
constexpr uint64_t kCarrierMask = kAll & ~kFaults & ~kGlibcInternal & ~kCarrierDelivered & ~kMarkerBit;
constexpr uint64_t kRuntimeThreadMask = kAll & ~kFaults & ~kGlibcInternal;
// A fiber's mask never holds these (glibc refuses to block SIGCANCEL/SIGSETXID).
constexpr uint64_t kNeverBlocked = kUnblockable | kGlibcInternal;

inline uint64_t bits_of(const sigset_t* s) {
  uint64_t b;
  memcpy(&b, s, sizeof b);
  return b;
}
inline void set_bits(sigset_t* s, uint64_t b) {
  sigemptyset(s);
  memcpy(s, &b, sizeof b);
}

inline uint64_t load_mask(const Fiber* f) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(&f->sigmask), __ATOMIC_SEQ_CST);
}
// seq_cst: pairs with the dispatcher's push-then-reread of the mask (Dekker).
inline void store_mask(Fiber* f, uint64_t m) {
  __atomic_store_n(reinterpret_cast<uint64_t*>(&f->sigmask), m & ~kNeverBlocked, __ATOMIC_SEQ_CST);
}

// ---- dispositions (signals.cpp) ------------------------------------------------

// A disposition: SIG_DFL (kDfl), SIG_IGN (kIgn) or the program's function.
struct Disp {
  uintptr_t handler;
  int flags;
  uint64_t mask;
};
constexpr uintptr_t kDfl = 0, kIgn = 1;

// The table entry for sig (acquire). Async-signal-safe.
Disp load_action(int sig);
// The disposition to apply now: the table, unless glibc changed the
// kernel's behind it. One raw syscall. Async-signal-safe.
Disp effective(int sig);
// True if d discards sig.
bool ignored(const Disp& d, int sig);
// The default action of sig, as the kernel would take it (may end or stop
// the process). Async-signal-safe; any OS thread.
void default_action(int sig, const siginfo_t& si);
// SA_RESETHAND: the table entry goes back to SIG_DFL.
void reset_to_default(int sig, const Disp& d);
// True on a carrier of a running runtime (signal handler context).
bool runtime_mode();
// Reads the program's dispositions into the table, installs the
// trampolines and the SIGURG marker handler; the table is authoritative
// afterwards (table_ready). Once, in start().
void take_over_dispositions();
// Wraps glibc's SIGSETXID handler (setxid_trampoline). Once, in start(),
// after the runtime's threads exist.
void wrap_setxid_handler();
// The address the marker's si_value carries.
extern char g_marker_magic;

// ---- queues, delivery and dispatch (signal_delivery.cpp) --------------------------

// Process-directed signals no fiber could take yet, and whether some were
// never dispatched (the signal thread looks at them).
extern SigQueue<64> g_process;
extern std::atomic<bool> g_process_dirty;
// This library's code (safe_point: a handler never runs inside it).
extern uintptr_t g_text_lo, g_text_hi;

// Waits (bounded) for the dispatches in flight after a mask change that
// unblocked something. Fiber or plain thread.
void settle_holds();
// Queues a process-directed signal; undispatched: the signal thread must
// dispatch it (pokes it). Async-signal-safe.
void process_push(const siginfo_t& si, bool undispatched);
// Delivers everything pending for f that f does not block; uc: the
// kernel's context in a signal handler, else nullptr. Fiber f only.
bool deliver_all(Fiber* f, ucontext_t* uc, bool* ran);
// Signals f does not block that wait for it (or for anyone).
uint64_t deliverable(const Fiber* f);
// Re-dispatches process-directed signals in f's queue that f now blocks.
void hand_back(Fiber* f, uint64_t now_blocked);
// Runs f's deliverable signals from a signal handler that interrupted f.
void deliver_in_handler(Fiber* f, ucontext_t* uc);
// Gives a process-directed signal to the thread POSIX says should get it.
// Signal thread or a fiber; not a signal handler.
void dispatch(const siginfo_t& si);
// Gets f's deliverable signals handled; under the registry lock (for_each_fiber).
// *arg (a bool) becomes true while something is left to deliver.
void kick_cb(Fiber* f, void* arg);

// ---- the signal thread (signal_thread.cpp) ----------------------------------------

extern int g_pid;
extern int g_dump_signal;  // UNBLOCK_DUMP_SIGNAL, 0: none
extern std::atomic<uint64_t> g_program_signalfd;  // signals the program reads through its own signalfd
extern std::atomic<int> g_sig_tid;                 // the signal thread's tid, 0 before it runs
// Completed passes of the signal thread's loop (each ends after it
// dispatched everything it had taken from the kernel). seq_cst.
extern std::atomic<uint64_t> g_sig_passes;
// Asks the signal thread to look again (undispatched signals, fibers to
// kick). Async-signal-safe.
void poke();

}  // namespace unblock::signals
