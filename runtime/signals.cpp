// Signal dispositions and trampolines (see signals.h for the model and the
// EINTR contract). This file owns: the emulated disposition table and what
// the kernel holds for it (trampolines, mirrored SIG_IGN/SIG_DFL), default
// actions, the kernel's handlers - program_trampoline, the SIGURG marker
// handler, the SIGSETXID wrapper - the program's fault handlers, and
// sigaction() with its settling of signals raised under the old
// disposition. Queues, delivery and dispatch: signal_delivery.cpp; the
// signal thread and start-up: signal_thread.cpp.
//
// Must not: allocate or take a lock in a signal handler (handlers only push,
// take, and make raw syscalls), call a hooked symbol (raw syscalls go through
// raw_syscall(), so they never set errno and their PC stays inside this
// library), or let a runtime thread unblock a managed signal except to die
// of it on purpose.
//
// Who runs what here:
//   carrier, in a signal handler - program_trampoline (SIGPIPE/SIGXFSZ,
//                    faults, anything the kernel delivers on a carrier),
//                    marker_handler (SIGURG), setxid_trampoline (SIGSETXID).
//   any thread     - action() (sigaction).
// Locks: g_act_lock (a SpinLock, leaf: never held with another lock)
// serialises sigaction() writers so the kernel and the table agree.
#include "runtime/signals.h"

#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "runtime/engine_epoll.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals_internal.h"
#include "runtime/spinlock.h"
#include "runtime/inspect.h"
#include "runtime/inspect_stacks.h"
#include "runtime/tls.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"

namespace unblock::signals {
namespace {

// ---- default actions ----------------------------------------------------------------

enum class Default { kTerm, kCore, kStop, kIgnore };

Default default_of(int sig) {
  switch (sig) {
    case SIGCHLD: case SIGURG: case SIGWINCH: case SIGCONT: return Default::kIgnore;
    case SIGTSTP: case SIGTTIN: case SIGTTOU: case SIGSTOP: return Default::kStop;
    case SIGQUIT: case SIGILL: case SIGTRAP: case SIGABRT: case SIGBUS: case SIGFPE:
    case SIGSEGV: case SIGXCPU: case SIGXFSZ: case SIGSYS: return Default::kCore;
    default: return Default::kTerm;
  }
}

// ---- the table ----------------------------------------------------------------------

struct Action {
  std::atomic<uintptr_t> handler{0};  // SIG_DFL (0), SIG_IGN (1) or the program's function
  std::atomic<int> flags{0};
  std::atomic<uint64_t> mask{0};
};

Action g_act[kMaxSig + 1];
SpinLock g_act_lock{LockRank::kSignalAction};  // serialises sigaction() writers so the kernel and the table agree
std::atomic<bool> g_ready{false};  // the table is authoritative

using SigactionFn = void (*)(int, siginfo_t*, void*);
SigactionFn g_glibc_setxid = nullptr;

constexpr unsigned long kSaRestorer = 0x04000000;

// The kernel's struct sigaction for rt_sigaction.
struct KernelSigaction {
  void* handler;
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

extern "C" void unblock_signal_restorer();
asm(".text\n"
    ".align 16\n"
    // The nop: an unwinder looks up the caller's FDE at return address - 1,
    // which must not fall into the preceding function (glibc's __restore_rt
    // has the same). The restorer's own bytes are what libgcc's fallback
    // recognises as a signal frame (asynchronous cancellation unwinds
    // through it).
    "  nop\n"
    "unblock_signal_restorer:\n"
    "  mov $15, %rax\n"  // SYS_rt_sigreturn
    "  syscall\n");

// The program's disposition for fault signals the runtime also handles.
struct sigaction g_program_fault[NSIG];
std::atomic<bool> g_fault_installed[NSIG];

void program_trampoline(int sig, siginfo_t* si, void* uc);
void marker_handler(int sig, siginfo_t* si, void* uc);

void store_action(int sig, const Disp& d) {
  g_act[sig].flags.store(d.flags, std::memory_order_relaxed);
  g_act[sig].mask.store(d.mask, std::memory_order_relaxed);
  g_act[sig].handler.store(d.handler, std::memory_order_release);
}

// Puts into the kernel what the table entry for sig needs: SIG_IGN/SIG_DFL
// mirrored (exec and discard semantics), else our trampoline with the
// program's flags, so a plain thread or a forked child sees its own
// SA_RESTART/SA_ONSTACK/sa_mask. Async-signal-safe.
void install_kernel(int sig, const Disp& d) {
  if (sig == SIGURG) return;  // the marker handler stays
  if ((sig == SIGSEGV || sig == SIGBUS) && g_fault_installed[sig].load()) {
    struct sigaction& p = g_program_fault[sig];
    p.sa_handler = reinterpret_cast<void (*)(int)>(d.handler);
    p.sa_flags = d.flags;
    set_bits(&p.sa_mask, d.mask);
    return;
  }
  struct sigaction k{};
  k.sa_flags = d.flags & (SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_NOCLDSTOP | SA_NOCLDWAIT);
  set_bits(&k.sa_mask, d.mask);
  if (d.handler == kIgn) {
    k.sa_handler = SIG_IGN;
  } else if (d.handler == kDfl && !(kCarrierDelivered & bit(sig))) {
    k.sa_handler = SIG_DFL;
  } else {
    k.sa_sigaction = program_trampoline;
    k.sa_flags |= SA_SIGINFO;
  }
  raw_sigaction(sig, &k, nullptr);
}

bool is_ours(uintptr_t h) {
  return h == reinterpret_cast<uintptr_t>(program_trampoline) || h == reinterpret_cast<uintptr_t>(marker_handler);
}

}  // namespace

Disp load_action(int sig) {
  return Disp{g_act[sig].handler.load(std::memory_order_acquire), g_act[sig].flags.load(std::memory_order_relaxed),
              g_act[sig].mask.load(std::memory_order_relaxed)};
}

// The disposition to apply now. The table, unless glibc changed the kernel's
// behind it (system() ignores SIGINT/SIGQUIT while it waits, abort() resets
// SIGABRT): then the kernel's wins for this delivery. One raw syscall.
Disp effective(int sig) {
  Disp d = load_action(sig);
  if (sig == SIGURG || sig == SIGSEGV || sig == SIGBUS) return d;
  struct sigaction k;
  if (raw_sigaction(sig, nullptr, &k) != 0) return d;
  uintptr_t h = reinterpret_cast<uintptr_t>(k.sa_handler);
  if (is_ours(h)) return d;
  if (h == kIgn) return Disp{kIgn, 0, 0};
  if (h == kDfl) {
    if (d.handler != kDfl && d.handler != kIgn) return Disp{kDfl, 0, 0};
    return d;
  }
  return Disp{h, k.sa_flags, bits_of(&k.sa_mask)};  // a handler installed behind our back
}

bool ignored(const Disp& d, int sig) {
  return d.handler == kIgn || (d.handler == kDfl && default_of(sig) == Default::kIgnore);
}

void reset_to_default(int sig, const Disp& d) {
  uintptr_t expected = d.handler;
  if (g_act[sig].handler.compare_exchange_strong(expected, kDfl, std::memory_order_acq_rel)) {
    g_act[sig].flags.store(d.flags & ~(SA_SIGINFO | SA_RESETHAND), std::memory_order_relaxed);
    install_kernel(sig, Disp{kDfl, 0, d.mask});
  }
}

namespace {

// The process dies of (or stops on) sig, exactly as the kernel's default
// action: SIG_DFL in the kernel, unblocked on this OS thread, raised at it.
// Returns only after a stop (once continued) or if the program raced a new
// disposition in. Async-signal-safe; any OS thread.
void default_fatal_or_stop(int sig, const siginfo_t* si) {
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  raw_sigaction(sig, &dfl, nullptr);
  uint64_t b = bit(sig), old = 0;
  sys_sigmask(SIG_UNBLOCK, &b, &old);
  int pid = sys_getpid(), tid = sys_gettid();
  siginfo_t info = *si;
  // Keeps the sender's details where the kernel allows it (si_code < 0 or the
  // group leader); otherwise a plain tgkill.
  if (raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, reinterpret_cast<long>(&info)) != 0) raw_syscall(SYS_tgkill, pid, tid, sig);
  sys_sigmask(SIG_SETMASK, &old, nullptr);
  install_kernel(sig, load_action(sig));
}

}  // namespace

void default_action(int sig, const siginfo_t& si) {
  if (default_of(sig) != Default::kIgnore) default_fatal_or_stop(sig, &si);
}

// ---- signal-handler context on a carrier -------------------------------------------------------

bool runtime_mode() { return sched::active() && sched::current_carrier() != nullptr; }

bool is_marker(const siginfo_t* si) {
  return si->si_code == SI_QUEUE && si->si_pid == g_pid && si->si_value.sival_ptr == &g_marker_magic;
}

char g_marker_magic;

namespace {

bool is_marker(const siginfo_t* si) {
  return si->si_code == SI_QUEUE && si->si_pid == g_pid && si->si_value.sival_ptr == &g_marker_magic;
}

void call_handler_directly(int sig, siginfo_t* si, ucontext_t* uc, const Disp& d) {
  if (d.flags & SA_RESETHAND) reset_to_default(sig, d);
  if (d.flags & SA_SIGINFO) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(d.handler)(sig, si, uc);
  } else {
    reinterpret_cast<void (*)(int)>(d.handler)(sig);
  }
}

// No runtime on this thread (a plain thread, a forked child, or before the
// start): behave as the program's own disposition would.
void pass_through(int sig, siginfo_t* si, ucontext_t* uc) {
  if (sig == SIGURG && is_marker(si)) return;
  Disp d = load_action(sig);
  if (d.handler == kIgn) return;
  if (d.handler == kDfl) {
    if (default_of(sig) == Default::kIgnore) return;
    // Raised again with the default action; delivered when this returns.
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    raw_sigaction(sig, &dfl, nullptr);
    siginfo_t info = *si;
    int pid = sys_getpid(), tid = sys_gettid();
    if (raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, reinterpret_cast<long>(&info)) != 0) raw_syscall(SYS_tgkill, pid, tid, sig);
    return;
  }
  call_handler_directly(sig, si, uc, d);
}

// The kernel's handler for every signal the program handles (and for
// SIGPIPE/SIGXFSZ under SIG_DFL). On a carrier it runs only for a signal the
// kernel put on that very thread: a fault, a SIGPIPE/SIGXFSZ from a write,
// glibc's own raise() (abort, assert), or one a window with the program's
// mask let in (exec, system).
void program_trampoline(int sig, siginfo_t* si, void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  if (!runtime_mode()) {
    pass_through(sig, si, uc);
    return;
  }
  Fiber* f = Fiber::current();
  if ((kFaults & bit(sig)) && si->si_code > 0) {
    // Synchronous: the faulting instruction's thread, now.
    Disp d = load_action(sig);
    if (d.handler == kDfl) {
      struct sigaction dfl{};
      dfl.sa_handler = SIG_DFL;
      raw_sigaction(sig, &dfl, nullptr);  // the instruction faults again and the kernel acts
    } else if (d.handler != kIgn) {
      call_handler_directly(sig, si, uc, d);
    }
    return;
  }
  if (!f && !sched::current_carrier()) {
    // A plain OS thread of the program (one with a program-supplied stack;
    // the runtime's own threads block every such signal): the kernel chose
    // it by its own mask, as without the library, so its handler runs here.
    pass_through(sig, si, uc);
    return;
  }
  bool to_this_thread =
      f && si->si_pid == g_pid &&
      (si->si_code == SI_TKILL || ((kCarrierDelivered & bit(sig)) && si->si_code == SI_USER));
  if (to_this_thread) {
    // abort() unblocked SIGABRT before raising it (with glibc's internal
    // sigprocmask, which only the carrier saw).
    if (sig == SIGABRT) store_mask(f, load_mask(f) & ~bit(SIGABRT));
    f->sig.queue.push(*si, true);
  } else {
    process_push(*si, true);
  }
  if (f) deliver_in_handler(f, uc);
}

// SIGURG: the signal thread's "run your pending handlers" marker to a
// carrier, or a genuine SIGURG (out-of-band data) for the program.
void marker_handler(int sig, siginfo_t* si, void* ucv) {
  if (on_helper_thread()) {
    // An epoll engine helper: the runtime's marker may interrupt its call; a
    // kernel SIGURG (the program's: out-of-band data) is queued for the
    // process as on a carrier, never run on the helper.
    if (is_marker(si)) helper_interrupt(static_cast<ucontext_t*>(ucv));
    else if (!inspect::on_marker(si, ucv)) process_push(*si, true);  // not a dump's request either
    return;
  }
  if (inspect::on_marker(si, ucv)) return;  // a dump's request for this thread's stack
  auto* uc = static_cast<ucontext_t*>(ucv);
  if (!runtime_mode()) {
    pass_through(sig, si, uc);
    return;
  }
  if (!is_marker(si)) process_push(*si, true);
  if (Fiber* f = Fiber::current()) deliver_in_handler(f, uc);
}

// SIGSETXID: glibc's handler changes this OS thread's credentials and then
// marks THREAD_SELF done. On a carrier running a fiber THREAD_SELF is the
// fiber's TCB, not the descriptor glibc signalled (and waits on): point FS
// at the carrier's own descriptor around the call.
void setxid_trampoline(int sig, siginfo_t* si, void* uc) {
  int tid = sys_gettid();
  void* rep = nullptr;
  int n = sched::carrier_count();
  for (int i = 0; i < n; ++i) {
    Carrier* c = sched::carrier_at(i);
    if (c && c->tid == tid) {
      rep = c->rep_tp;
      break;
    }
  }
  void* cur = tls::current_tp();
  if (rep && rep != cur) {
    tls::set_tp(rep);
    g_glibc_setxid(sig, si, uc);
    tls::set_tp(cur);
  } else {
    g_glibc_setxid(sig, si, uc);
  }
}

}  // namespace

// ---- start-up (signal_thread.cpp's start) -------------------------------------------

void take_over_dispositions() {
  // The program's dispositions become the table; the kernel gets trampolines.
  for (int sig = 1; sig <= kMaxSig; ++sig) {
    if ((kGlibcInternal | kUnblockable) & bit(sig)) continue;
    Disp d{kDfl, 0, 0};
    if ((sig == SIGSEGV || sig == SIGBUS) && g_fault_installed[sig].load()) {
      const struct sigaction& p = g_program_fault[sig];
      d = Disp{reinterpret_cast<uintptr_t>(p.sa_handler), p.sa_flags, bits_of(&p.sa_mask)};
    } else {
      struct sigaction k{};
      if (raw_sigaction(sig, nullptr, &k) == 0) {
        d = Disp{reinterpret_cast<uintptr_t>(k.sa_handler), k.sa_flags, bits_of(&k.sa_mask)};
      }
    }
    store_action(sig, d);
    if (d.handler != kDfl && d.handler != kIgn) install_kernel(sig, d);
    else if (kCarrierDelivered & bit(sig)) install_kernel(sig, d);
  }
  struct sigaction marker{};
  marker.sa_sigaction = marker_handler;
  marker.sa_flags = SA_SIGINFO | SA_RESTART;
  set_bits(&marker.sa_mask, kRuntimeThreadMask);
  raw_sigaction(SIGURG, &marker, nullptr);

  g_ready.store(true, std::memory_order_release);
}

void wrap_setxid_handler() {
  // glibc installs its SIGSETXID handler when the process creates its first
  // thread. With one worker the adopted main thread is the only carrier, so
  // that first thread may be the signal thread just created: wrap only now.
  struct sigaction sx;
  if (raw_sigaction(33, nullptr, &sx) == 0 && sx.sa_handler != SIG_DFL && sx.sa_handler != SIG_IGN &&
      (sx.sa_flags & SA_SIGINFO)) {
    g_glibc_setxid = sx.sa_sigaction;
    struct sigaction w = sx;
    w.sa_sigaction = setxid_trampoline;
    w.sa_flags = sx.sa_flags & (SA_SIGINFO | SA_ONSTACK | SA_RESTART);
    raw_sigaction(33, &w, nullptr);
  } else {
    LOG_WARN("glibc's SIGSETXID handler not found: setuid() with threads may not reach every thread");
  }
}

// ---- fault signals -------------------------------------------------------------------

int raw_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  KernelSigaction k{}, ko{};
  if (act) {
    k.handler = reinterpret_cast<void*>(act->sa_handler);
    k.flags = static_cast<unsigned long>(static_cast<unsigned>(act->sa_flags)) | kSaRestorer;
    k.restorer = unblock_signal_restorer;
    memcpy(&k.mask, &act->sa_mask, sizeof k.mask);
  }
  long r = raw_syscall(SYS_rt_sigaction, sig, act ? reinterpret_cast<long>(&k) : 0, old ? reinterpret_cast<long>(&ko) : 0, 8);
  if (r == 0 && old) {
    memset(old, 0, sizeof *old);
    old->sa_handler = reinterpret_cast<void (*)(int)>(ko.handler);
    old->sa_flags = static_cast<int>(ko.flags);
    memcpy(&old->sa_mask, &ko.mask, sizeof ko.mask);
  }
  return static_cast<int>(r);
}

void install_fault_handler(int sig, const struct sigaction* sa) {
  struct sigaction old{};
  raw_sigaction(sig, sa, &old);
  if (!g_fault_installed[sig].exchange(true)) g_program_fault[sig] = old;
}

void native_dispositions_after_fork() {
  for (int sig : {SIGSEGV, SIGBUS}) {
    if (g_fault_installed[sig].exchange(false)) raw_sigaction(sig, &g_program_fault[sig], nullptr);
  }
  for (int sig = 1; sig <= kMaxSig; ++sig) {
    if (!(kCarrierDelivered & bit(sig)) || load_action(sig).handler != kDfl) continue;
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    raw_sigaction(sig, &dfl, nullptr);
  }
}

bool fault_ignored(int sig) { return g_program_fault[sig].sa_handler == SIG_IGN; }

bool forward_fault(int sig, siginfo_t* info, void* uctx) {
  const struct sigaction& p = g_program_fault[sig];
  if (p.sa_flags & SA_SIGINFO) {
    if (p.sa_sigaction) {
      p.sa_sigaction(sig, info, uctx);
      return true;
    }
    return false;
  }
  if (p.sa_handler == SIG_DFL || p.sa_handler == SIG_IGN) return false;
  p.sa_handler(sig);
  return true;
}

// ---- sigaction ------------------------------------------------------------------------

bool table_ready() { return g_ready.load(std::memory_order_acquire); }

namespace {

// Before the disposition of sig changes: what the kernel raised while the
// old one was in force gets the old one. Natively such a signal was already
// delivered - at the raising thread's (or the woken target's) next return to
// user space - before the program could reach its next sigaction; here it
// may still wait in the kernel for the signal thread (late on a loaded
// machine), be in the middle of a dispatch, or be queued for the caller
// while its marker was refused. Then a handler's signal met the SIG_DFL the
// program had put back (CPython's _test_eintr: a SIGALRM from the interval
// timer raised just before setitimer(0), then SIG_DFL restored - the
// process died of SIGALRM in 1-3 of 5 runs). So the caller takes the
// kernel's pending instances and dispatches them itself, waits for
// dispatches in flight, and runs its own deliverable signals, all under
// the old disposition. Left: a signal the signal thread has taken from the
// kernel but not yet begun to dispatch (a few instructions), and one queued
// for another fiber that has not run its handler yet.
void settle_before_change(int sig) {
  if (!(kManaged & bit(sig)) || !runtime_mode()) return;
  if (g_program_signalfd.load(std::memory_order_acquire) & bit(sig)) return;
  uint64_t set = bit(sig);
  for (int i = 0; i < 64; ++i) {
    timespec zero{0, 0};
    siginfo_t si;
    long r = raw_syscall(SYS_rt_sigtimedwait, reinterpret_cast<long>(&set), reinterpret_cast<long>(&si),
                         reinterpret_cast<long>(&zero), 8);
    if (r <= 0) break;
    dispatch(si);
  }
  // A copy the signal thread already took from the kernel but has not
  // dispatched yet (it returned from its wait a moment ago) must meet the
  // old disposition too: poke it and wait until it completed a pass, which
  // dispatches everything it took before. Bounded (~20 ms): a signal
  // thread that never runs must not hang the program's sigaction.
  int sig_tid = g_sig_tid.load(std::memory_order_seq_cst);
  if (sig_tid > 0 && sig_tid != sys_gettid()) {
    uint64_t seen = g_sig_passes.load(std::memory_order_seq_cst);
    poke();
    for (int i = 0; i < 400 && g_sig_passes.load(std::memory_order_seq_cst) == seen; ++i) {
      if (i < 64) {
        __builtin_ia32_pause();
      } else {
        timespec ts{0, 50 * 1000};
        raw_syscall(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
      }
    }
  }
  settle_holds();
  Fiber* f = Fiber::current();
  if (f && f->runtime_depth == 0 && (deliverable(f) & bit(sig))) run_pending(f);
}

}  // namespace

int action(int sig, const struct sigaction* act, struct sigaction* old) {
  if (sig < 1 || sig > kMaxSig || (kGlibcInternal & bit(sig))) return -EINVAL;
  if (act && (kUnblockable & bit(sig))) return -EINVAL;
  if (act && reinterpret_cast<uintptr_t>(act->sa_handler) != load_action(sig).handler) settle_before_change(sig);
  SpinGuard g(g_act_lock);
  Disp cur = load_action(sig);
  if (act) {
    Disp d{reinterpret_cast<uintptr_t>(act->sa_handler), act->sa_flags | static_cast<int>(kSaRestorer),
           bits_of(&act->sa_mask) & ~kUnblockable};
    store_action(sig, d);
    install_kernel(sig, d);
  }
  if (old) {
    memset(old, 0, sizeof *old);
    old->sa_handler = reinterpret_cast<void (*)(int)>(cur.handler);
    old->sa_flags = cur.flags;
    set_bits(&old->sa_mask, cur.mask);
  }
  return 0;
}

}  // namespace unblock::signals
