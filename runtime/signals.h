// Signals for a program whose threads are fibers.
//
// The kernel delivers signals to OS threads; the program's threads are
// fibers. This module makes the program see POSIX semantics per fiber:
// per-thread masks, pthread_kill to a thread, handlers running in the
// context of a thread that does not block the signal, EINTR for an
// interruptible blocking call, sigwait-family calls that park only the
// fiber, and default actions that end or stop the process with the right
// status. See docs/DESIGN.md "Signals".
//
// Synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) run
// on the faulting carrier, whose FS already points at the faulting fiber's
// TCB, so the program's handler runs in the right thread context.
#pragma once

#include <signal.h>

namespace unblock::signals {

// rt_sigaction without any interposition. Async-signal-safe.
int raw_sigaction(int sig, const struct sigaction* act, struct sigaction* old);

// Installs a runtime handler for a synchronous fault signal, remembering the
// program's own disposition so forward_fault() can hand it over.
void install_fault_handler(int sig, const struct sigaction* sa);

// Runs the program's handler for a fault that is not the runtime's (e.g. not
// a guard-page hit). True if a program handler ran. Signal handler only.
bool forward_fault(int sig, siginfo_t* info, void* uctx);

// Runtime start: prepares delivery (called once, before carriers exist).
void start();

// The signal mask new carriers are created with.
void carrier_mask(sigset_t* out);

}  // namespace unblock::signals

namespace unblock {
class Fiber;
namespace signals {
// Runs the handlers of signals pending for fiber f (on f, in its context).
// Returns true if every handler that ran asked for SA_RESTART.
// Fiber only; may not suspend.
bool run_pending(Fiber* f);
}  // namespace signals
}  // namespace unblock
