// Signals for a program whose threads are fibers.
//
// The kernel delivers signals to OS threads; the program's threads are
// fibers that share a few carriers. This module gives the program POSIX
// semantics per fiber: per-thread masks, pthread_kill to a thread, handlers
// that run in the context of a thread that does not block the signal (while
// the others stay parked), EINTR for an interrupted blocking call, sigwait-
// family calls that park only the fiber, and default actions that end or
// stop the process exactly as the kernel would. It must not let a runtime
// thread take a signal meant for the program, and must not allocate, lock or
// call a hooked function from a signal handler.
//
// How (docs/DESIGN.md, section 7b, has the rejected designs, what is tested
// and what is not kept):
//   - Every runtime OS thread blocks every asynchronous signal, always.
//     Carriers leave unblocked only the synchronous fault signals (SIGSEGV,
//     SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), the two the kernel raises on
//     the writing thread (SIGPIPE, SIGXFSZ), the delivery marker (SIGURG)
//     and glibc's SIGCANCEL/SIGSETXID. The program's masks are emulated in
//     Fiber::sigmask.
//   - A signal thread reads the other ("managed") signals from a signalfd
//     and dispatches each as POSIX says: to a fiber waiting for it in
//     sigwait*, else to a fiber that does not block it (main first, as the
//     kernel prefers the thread-group leader), else it stays pending for the
//     process. Default actions are reproduced by re-raising the signal with
//     SIG_DFL on a runtime thread, so the process dies of (or stops on) that
//     very signal.
//   - A handler runs on its fiber: at once if the fiber is the caller
//     (raise, pthread_kill to self, unblocking a pending signal); through the
//     interrupted blocking call if it parks interruptibly (EINTR contract
//     below); on top of its parked context if it waits non-interruptibly (a
//     mutex, a join: the handler runs, the wait goes on); and through a SIGURG
//     "marker" sent to its carrier if it is running the program's code.
//   - Handlers run as soon as the kernel would run them, not only when the
//     signal thread's kick lands: when the scheduler resumes a fiber with a
//     signal queued (before_resume), on the way out of the blocking and sync
//     hooks (hooks::deliver_due), when a fiber unblocks a signal (after the
//     dispatches in flight settled) and before a fiber ends (before_exit);
//     a process-directed signal still queued for an ending fiber goes back
//     to the process (after_exit).
//   - sigaction is emulated in a table; the kernel holds a trampoline for
//     every handled signal, SIG_IGN/SIG_DFL are mirrored so exec and discard
//     semantics stay the kernel's.
//   - setuid and friends run with FS on the carrier's own descriptor, and the
//     SIGSETXID handler is wrapped, so glibc's broadcast reaches every OS
//     thread exactly once.
//
// Synchronous fault signals run on the faulting carrier, whose FS already
// points at the faulting fiber's TCB, so the program's handler runs in the
// right thread context. SIGSEGV/SIGBUS go through the stack-overflow
// reporter (runtime/stack.cpp), which forwards to the program (forward_fault).
//
// THE EINTR CONTRACT for hooks that block (read it before writing one):
//
//   ParkResult r = f->parker.park(deadline, why, /*interruptible=*/true);
//   if (r == ParkResult::kInterrupted) {
//     bool restart = signals::run_pending(f);   // runs the handlers, on f
//     cancel::point();  // an interruptible park is also cancellable
//     if (restart && call_is_restartable) continue;  // all had SA_RESTART
//     return EINTR;
//   }
//
// An interruptible park returns kInterrupted when a signal the fiber does not
// block became pending for it, or when its cancellation request is due
// (runtime/cancel.h; then cancel::point() unwinds, once whatever the wait
// queued - an io_uring operation, a parking-lot node - is finished). The hook must then call run_pending(f) (never
// skip it: the signal thread keeps interrupting the fiber until the handler
// has run), and restart the call only if run_pending returned true and the
// call is one the kernel restarts under SA_RESTART (read/write/wait on
// sockets and pipes without a timeout, ...; never sleeps, poll/select/epoll,
// sigsuspend, sigwait*). Call run_pending outside the runtime (after park
// returned, not between sched::enter/leave): handlers may park. A park that
// is not interruptible is never cut short: a handler for that fiber runs on
// top of the parked wait, which then gets a spurious wake-up (park returns
// kWoken; callers re-check their condition anyway). To wait with a
// temporary mask (ppoll, pselect, epoll_pwait), use swap_mask_for_wait /
// restore_mask_after_wait, not pthread_sigmask: a pending signal the wait
// unblocks must interrupt the wait, not run before it.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>

#include "runtime/parker.h"
#include "runtime/signal_queue.h"

namespace unblock {
class Fiber;

namespace signals {

// ---- runtime start-up (sched::ensure_started) ------------------------------

// The signal mask carriers are created with. Pure; any thread.
void carrier_mask(sigset_t* out);
// The mask of the runtime's other threads (monitor, signal thread): every
// signal blocked except glibc's SIGCANCEL/SIGSETXID and the fault signals.
void runtime_thread_mask(sigset_t* out);
// Starts a detached OS thread of the runtime's own (monitor, signal thread,
// control and fault-control servers) running fn(arg) on a stack of
// `stack_size`, with the mask above from its first instruction (the
// creating thread's mask is swapped around the creation). Returns 0 or
// pthread_create's error. Any thread, not a signal handler.
int start_runtime_thread(void* (*fn)(void*), void* arg, size_t stack_size);
// The signal thread's OS thread id (0 if none), for dumps. Any thread.
int signal_thread_id();
// Sends the runtime's marker signal to the runtime OS thread `tid` (an epoll
// engine helper: interrupts its call, runtime/engine_epoll.cpp). Any thread.
void send_marker_to(int tid);
// Takes over delivery: reads the program's dispositions, installs the
// trampolines, starts the signal thread. Once, after the carriers exist.
void start();
// The adopted main thread became carrier 0: give it the carrier mask (its
// fiber keeps the mask it had, read before this call).
void adopt_main_thread();

// ---- the scheduler (runtime/scheduler.cpp) ---------------------------------

// f is about to be resumed by its scheduler (held in kRunning, not running
// yet) and its queue may hold a signal it does not block: arranges for the
// handlers to run before f runs the program's code again, as the kernel
// delivers on a thread's return to user space. A fiber that parked
// interruptibly sees its wait interrupted (the EINTR contract); one parked
// in a wait of the program that signals do not end (a mutex, a condition,
// a join...) runs the handlers on top of that wait first (a borrowed
// delivery). Scheduler side, inside the runtime; does not
// allocate.
void before_resume(Fiber* f);
// The thread f stands for is ending (sched::exit_fiber, on f, after its
// destructors, outside the runtime): the handlers of what is deliverable to
// it run now, then it blocks every signal, as glibc's exiting thread does.
// May suspend.
void before_exit(Fiber* f);
// f has left the fiber registry (the scheduler, after its exit): signals
// sent to the process that were queued for it go back to the process and
// are dispatched again; those sent to it alone are discarded, as the kernel
// discards an exiting thread's. Any thread; not a signal handler.
void after_exit(Fiber* f);

// ---- fault signals (runtime/stack.cpp) -------------------------------------

// rt_sigaction without any interposition. Async-signal-safe; returns 0 or -errno.
int raw_sigaction(int sig, const struct sigaction* act, struct sigaction* old);
// Installs a runtime handler for a synchronous fault signal, remembering the
// program's own disposition so forward_fault() can hand it over.
void install_fault_handler(int sig, const struct sigaction* sa);
// Runs the program's handler for a fault that is not the runtime's (e.g. not
// a guard-page hit). True if a program handler ran. Signal handler only.
bool forward_fault(int sig, siginfo_t* info, void* uctx);
// In a forked child whose runtime is off (rt::fork): the kernel gets back
// the program's own disposition of SIGSEGV/SIGBUS (in place of the stack
// overflow reporter) and SIG_DFL where the library had a handler in front
// of a default action (SIGPIPE, SIGXFSZ): the child's signals are the
// kernel's own again (a sent SIGPIPE ends every thread when it is sent; a
// sent SIGSEGV is not caught and re-raised by the reporter;
// signal_fault_sent).
void native_dispositions_after_fork();
// Whether the program's disposition of that fault signal is SIG_IGN (a sent
// one is then ignored, as the kernel ignores it). Signal handler only.
bool fault_ignored(int sig);

// ---- the EINTR contract (any blocking hook) --------------------------------

// Runs the handlers of the signals pending for f that f does not block (and
// of process-pending ones it does not block), on f, in its context; default
// actions too (which may end the process). Returns true if every handler
// that ran asked for SA_RESTART (or none ran). Fiber f only, outside the
// runtime; may suspend (a handler may block); does not allocate.
bool run_pending(Fiber* f);

// Waits (ppoll/pselect/epoll_pwait) with `mask` as the fiber's mask: swaps it
// in without delivering anything; if a signal it unblocks is pending, the
// next interruptible park returns kInterrupted at once. Returns the old mask
// for restore_mask_after_wait, which puts it back and delivers what it
// unblocks. Fiber f only.
uint64_t swap_mask_for_wait(Fiber* f, const sigset_t* mask);
void restore_mask_after_wait(Fiber* f, uint64_t old);

// ---- for runtime/signal_calls.cpp (the signal calls of runtime/api.h) -------
// All return 0 or -errno unless said otherwise; none may be called from a
// signal handler the runtime did not start (they may suspend a fiber).

// True once dispositions are emulated (the runtime started in this process or
// in the one it was forked from). Before that, hooks pass straight through.
bool table_ready();

// sigaction(2) against the emulated table. Any thread.
int action(int sig, const struct sigaction* act, struct sigaction* old);
// pthread_sigmask for fiber f: also hands back signals it now blocks that
// were meant for any thread, and delivers those it unblocks.
int change_mask(Fiber* f, int how, const sigset_t* set, sigset_t* old);
uint64_t mask_of(const Fiber* f);
// pthread_kill/pthread_sigqueue/raise to a fiber. Returns 0 or a positive
// errno (ESRCH never: an ended-but-unjoined thread silently gets nothing).
// A signal to the caller itself is delivered before returning.
int send_to_fiber(Fiber* target, const siginfo_t& info);
// kill/sigqueue to this process from fiber `self`: dispatched at once,
// delivered before returning if `self` is chosen (as the kernel does).
// False if the library does not handle this signal itself (use the real call).
bool send_to_process(Fiber* self, const siginfo_t& info);
// sigwaitinfo/sigtimedwait: the signal number, or -EAGAIN (deadline), -EINTR
// (a handled signal outside `set` arrived), -EINVAL.
int wait(Fiber* f, const sigset_t* set, siginfo_t* info, const Deadline& d);
// sigsuspend (and pause with mask == nullptr): always -EINTR, after a handler ran.
int suspend(Fiber* f, const sigset_t* mask);
// sigpending.
void pending(Fiber* f, sigset_t* out);
// sigaltstack, emulated per fiber (the carrier's own alternate stack stays).
int altstack(Fiber* f, const stack_t* ss, stack_t* old);
// The program reads these signals through a signalfd of its own: the library
// stops reading them itself. Any thread; before or after start.
void note_program_signalfd(const sigset_t* mask);
// longjmp/siglongjmp from fiber f with buffer env: unwinds the handler
// bookkeeping of handlers being left, and restores the mask a sigsetjmp
// buffer saved (as the mask the thread had when the left handler started).
void before_longjmp(Fiber* f, const void* jmpbuf, bool mask_saved);

// An asynchronous cancellation request was made (runtime/cancel.cpp): the
// signal thread marks the carrier of every fiber whose request is due until
// it acted. Any thread, not a signal handler.
void watch_cancel();

// Runs fn(arg) with the calling OS thread's real mask set to fiber f's mask
// (exec, posix_spawn, system, popen: the child inherits the real mask).
long with_program_mask(Fiber* f, long (*fn)(void*), void* arg);
// Runs fn(arg) with FS on the calling carrier's own glibc descriptor and
// asynchronous signals blocked (the setxid family; see signals.cpp).
// errno after fn is carried back to the fiber.
long as_carrier(Fiber* f, long (*fn)(void*), void* arg);

}  // namespace signals
}  // namespace unblock
