// Signal delivery for fibers (see signals.h for the model and the EINTR
// contract). This file owns: the emulated disposition table and the kernel
// trampolines, the pending queues, the signal thread and its dispatch
// rules, handler execution on fibers (directly, on top of a parked wait, or
// from the SIGURG marker), default actions, and the SIGSETXID wrapper.
//
// Must not: allocate or take a lock in a signal handler (queues are
// lock-free slots; handlers only push, take, and make raw syscalls), call a
// hooked symbol (raw syscalls go through raw_syscall() below, so they never set
// errno and their PC stays inside this library), or let a runtime thread
// unblock a managed signal except to die of it on purpose.
//
// Who runs what:
//   signal thread  - rt_sigtimedwait on the managed set; dispatch(); kicks
//                    fibers with deliverable signals until each is handled.
//   fiber          - run_pending()/deliver_all() from hooks; handlers run here.
//   carrier, in a signal handler - program_trampoline (SIGPIPE/SIGXFSZ,
//                    faults, anything the kernel delivers on a carrier),
//                    marker_handler (SIGURG), setxid_trampoline (SIGSETXID).
//   borrowed       - borrowed_entry(): a fiber parked non-interruptibly is
//                    resumed on a context built below its parked one, runs
//                    its handlers, then continues the parked context.
// Lock order: the registry lock (for_each_fiber) -> worker inbox lock (wake).
// g_act_lock is a leaf, never held with another.
#include "runtime/signals.h"

#include <dlfcn.h>
#include <link.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/cancel.h"
#include "runtime/context.h"
#include "runtime/control.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/spinlock.h"
#include "runtime/inspect.h"
#include "runtime/inspect_stacks.h"
#include "runtime/tls.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::sched {
// Defined in scheduler.cpp (signal support): calls fn(f, arg) for every live
// fiber, then fn(nullptr, arg), all under the registry lock.
void for_each_fiber(void (*fn)(Fiber*, void*), void* arg);
}  // namespace unblock::sched

// Boost.Context's ontop_fcontext (linked in through runtime/context.cpp's
// use of Boost.Context): resumes `to` and runs fn on its stack first, whose
// result becomes the value `to`'s suspended jump returns. Used only to hand
// a parked context back to the scheduler's bookkeeping after a borrowed
// delivery (borrowed_entry); it belongs in ctx:: once context.h exposes it.
namespace {
struct BoostTransfer {
  void* fctx;
  void* data;
};
}  // namespace
extern "C" BoostTransfer ontop_fcontext(void* const to, void* vp, BoostTransfer (*fn)(BoostTransfer));

namespace unblock::signals {
namespace {

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

uint64_t bits_of(const sigset_t* s) {
  uint64_t b;
  memcpy(&b, s, sizeof b);
  return b;
}
void set_bits(sigset_t* s, uint64_t b) {
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

// Dispatches between their look at the masks and their hold of a signal for
// the process (dispatch). A fiber that unblocks a signal and then looks at
// the process queue may look just before such a held signal lands there;
// if it blocks the signal again (a pthread_sigmask loop, its exit) before
// the dispatcher's second look, the signal waits for good, where the kernel
// delivers it on the unblocking call's return. So an unblocking fiber first
// waits for the dispatches in flight (settle_holds).
std::atomic<int> g_holding{0};

// Called after a store_mask that unblocked something, before looking at the
// process queue. seq_cst: pairs with dispatch's increment before its walk
// and decrement after its hold - either the walk sees the new mask, or the
// hold is visible here. Bounded (a dispatch interrupted on this very thread
// by a handler that unblocks would never finish): at worst the signal is
// found by a later look, as before.
void settle_holds() {
  for (int i = 0; i < 2000 && g_holding.load(std::memory_order_seq_cst) != 0; ++i) {
    if (i < 64) {
      __builtin_ia32_pause();
    } else {
      raw_syscall(SYS_sched_yield);
    }
  }
}

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

// ---- state ----------------------------------------------------------------------------

std::atomic<uint64_t> g_seq{1};

struct Action {
  std::atomic<uintptr_t> handler{0};  // SIG_DFL (0), SIG_IGN (1) or the program's function
  std::atomic<int> flags{0};
  std::atomic<uint64_t> mask{0};
};
struct Disp {
  uintptr_t handler;
  int flags;
  uint64_t mask;
};
constexpr uintptr_t kDfl = 0, kIgn = 1;

Action g_act[kMaxSig + 1];
SpinLock g_act_lock;  // serialises sigaction() writers so the kernel and the table agree
std::atomic<bool> g_ready{false};  // the table is authoritative

SigQueue<64> g_process;                   // process-directed signals no fiber could take yet
std::atomic<bool> g_process_dirty{false};  // entries the signal thread has not dispatched
std::atomic<uint64_t> g_program_signalfd{0};
std::atomic<int> g_sig_tid{0};  // the signal thread
bool g_sig_thread_started = false;
// 1 once the signal thread has taken what was pending for the whole process
// when the runtime started (futex word; adopt_main_thread waits for it).
std::atomic<uint32_t> g_first_pass{0};
int g_pid = 0;
int g_dump_signal = 0;  // UNBLOCK_DUMP_SIGNAL, 0: none

// "USR2", "SIGUSR2", "12": a managed signal, else 0 (with a message).
int parse_dump_signal(const char* s) {
  if (!s || !*s) return 0;
  if (!strncmp(s, "SIG", 3)) s += 3;
  struct {
    const char* name;
    int sig;
  } const kNames[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}, {"WINCH", SIGWINCH}, {"QUIT", SIGQUIT}};
  int sig = 0;
  for (const auto& n : kNames) {
    if (!strcmp(s, n.name)) sig = n.sig;
  }
  if (!sig) {
    char* end = nullptr;
    long v = strtol(s, &end, 10);
    if (end != s && !*end && v > 0 && v <= kMaxSig) sig = static_cast<int>(v);
  }
  if (!sig || !(kManaged & bit(sig))) {
    log::always("UNBLOCK_DUMP_SIGNAL=\"%s\" ignored: not a signal the library can take (USR1, USR2, HUP, WINCH, QUIT or a number)", s);
    return 0;
  }
  return sig;
}
uintptr_t g_text_lo = 0, g_text_hi = 0;  // this library's code
char g_marker_magic;

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

Disp load_action(int sig) {
  return Disp{g_act[sig].handler.load(std::memory_order_acquire), g_act[sig].flags.load(std::memory_order_relaxed),
              g_act[sig].mask.load(std::memory_order_relaxed)};
}

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

void default_action(int sig, const siginfo_t& si) {
  if (default_of(sig) != Default::kIgnore) default_fatal_or_stop(sig, &si);
}

// ---- the signal thread's wake-up ------------------------------------------------------

// Asks the signal thread to look again (undispatched signals, fibers to
// kick). Async-signal-safe.
// Completed passes of the signal thread's loop (each ends after it
// dispatched everything it had taken from the kernel). seq_cst: pairs with
// settle_before_change's load before its poke.
std::atomic<uint64_t> g_sig_passes{0};

void poke() {
  // seq_cst: pairs with the signal thread's store of its tid before its
  // first pass. A poke that finds no tid yet is covered by that pass.
  int tid = g_sig_tid.load(std::memory_order_seq_cst);
  if (tid > 0) raw_syscall(SYS_tgkill, g_pid, tid, SIGURG);
}

void process_push(const siginfo_t& si, bool undispatched) {
  if (!g_process.push(si, false)) {
    LOG_DEBUG("signal %d dropped: too many signals pending for the process", si.si_signo);
    return;
  }
  if (undispatched) {
    g_process_dirty.store(true, std::memory_order_release);
    poke();
  }
}

// ---- running handlers on a fiber --------------------------------------------------------

// Runs one signal's action on fiber f (the caller). uc: the kernel's context
// when called in a signal handler, else nullptr. Returns SA_RESTART-ness.
bool deliver_one(Fiber* f, siginfo_t& si, ucontext_t* uc, bool* ran) {
  int sig = si.si_signo;
  Disp d = effective(sig);
  if (d.handler == kIgn) return true;
  if (d.handler == kDfl) {
    default_action(sig, si);
    return true;
  }
  if (d.flags & SA_RESETHAND) reset_to_default(sig, d);
  uint64_t old = load_mask(f);
  uint64_t during = old | d.mask | ((d.flags & SA_NODEFER) ? 0 : bit(sig));
  ucontext_t local;
  ucontext_t* huc = uc;
  if ((d.flags & SA_SIGINFO) && !huc) {
    getcontext(&local);
    huc = &local;
  }
  sigset_t kernel_saved;
  if (huc) {
    kernel_saved = huc->uc_sigmask;
    set_bits(&huc->uc_sigmask, old);  // what sigreturn would restore: the thread's mask
  }
  int depth = f->sig.handler_depth;
  if (depth < kHandlerNest) {
    f->sig.handler_old_mask[depth] = old;
    f->sig.handler_sp[depth] = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  }
  f->sig.handler_depth = depth + 1;
  store_mask(f, during);
  *ran = true;
  if (d.flags & SA_SIGINFO) {
    reinterpret_cast<void (*)(int, siginfo_t*, void*)>(d.handler)(sig, &si, huc);
  } else {
    reinterpret_cast<void (*)(int)>(d.handler)(sig);
  }
  f->sig.handler_depth = depth;
  // As sigreturn: the mask in the context, which a handler may have edited.
  store_mask(f, huc ? bits_of(&huc->uc_sigmask) : old);
  if (huc) huc->uc_sigmask = kernel_saved;
  return (d.flags & SA_RESTART) != 0;
}

// Delivers everything pending for f (its own queue, then the process's) that
// f does not block. Fiber f only.
bool deliver_all(Fiber* f, ucontext_t* uc, bool* ran) {
  bool restart = true;
  // Anything that interrupted f is delivered below; a stale flag would cut
  // f's next interruptible wait short for nothing.
  f->parker.take_interrupt();
  for (int guard = 0; guard < 4096; ++guard) {
    uint64_t open = ~load_mask(f);
    siginfo_t si;
    if (!f->sig.queue.take(open, &si) && !g_process.take(open, &si)) break;
    restart &= deliver_one(f, si, uc, ran);
  }
  return restart;
}

// Signals f does not block that wait for it (or for anyone).
uint64_t deliverable(const Fiber* f) {
  return (f->sig.queue.pending() | g_process.hint()) & ~load_mask(f);
}

// Re-dispatches process-directed signals in f's queue that f now blocks.
void hand_back(Fiber* f, uint64_t now_blocked) {
  siginfo_t si;
  bool any = false;
  while (f->sig.queue.take(now_blocked, &si, nullptr, /*only_undirected=*/true)) {
    process_push(si, false);
    any = true;
  }
  if (any) {
    g_process_dirty.store(true, std::memory_order_release);
    poke();
  }
}

// ---- signal-handler context on a carrier -------------------------------------------------------

bool runtime_mode() { return sched::active() && sched::current_carrier() != nullptr; }

bool is_marker(const siginfo_t* si) {
  return si->si_code == SI_QUEUE && si->si_pid == g_pid && si->si_value.sival_ptr == &g_marker_magic;
}

// May the interrupted fiber run a program handler right here? Not inside the
// runtime (it may hold a lock or be half-way through a switch) nor on the
// carrier's alternate stack. The signal thread retries otherwise.
bool safe_point(const Fiber* f, const ucontext_t* uc) {
  if (f->runtime_depth > 0) return false;
  uintptr_t pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (pc >= g_text_lo && pc < g_text_hi) return false;
  if (uc->uc_stack.ss_flags & SS_ONSTACK) return false;
  return true;
}

// Blocking system calls the kernel restarts under SA_RESTART (ERESTARTSYS).
bool restartable_syscall(long nr) {
  switch (nr) {
    case SYS_read: case SYS_write: case SYS_readv: case SYS_writev: case SYS_pread64: case SYS_pwrite64:
    case SYS_preadv: case SYS_pwritev: case SYS_recvfrom: case SYS_sendto: case SYS_recvmsg: case SYS_sendmsg:
    case SYS_recvmmsg: case SYS_sendmmsg: case SYS_accept: case SYS_accept4: case SYS_connect: case SYS_wait4:
    case SYS_waitid: case SYS_futex: case SYS_flock: case SYS_fcntl: case SYS_msgrcv: case SYS_msgsnd:
    case SYS_semop: case SYS_semtimedop: case SYS_open: case SYS_openat: case SYS_ioctl: case SYS_mq_timedsend:
    case SYS_mq_timedreceive: case SYS_getrandom:
      return true;
    default:
      return false;
  }
}

// The marker is installed with SA_RESTART, so the kernel rewound a blocking
// call it interrupted. A program handler without SA_RESTART ran: make that
// call fail with EINTR instead, as it would have natively.
void restart_to_eintr(ucontext_t* uc) {
  greg_t* g = uc->uc_mcontext.gregs;
  const auto* ip = reinterpret_cast<const unsigned char*>(g[REG_RIP]);
  if (ip[0] == 0x0f && ip[1] == 0x05 && restartable_syscall(g[REG_RAX])) {
    g[REG_RAX] = -EINTR;
    g[REG_RIP] += 2;
  }
}

// Runs f's deliverable signals from a signal handler that interrupted f.
void deliver_in_handler(Fiber* f, ucontext_t* uc) {
  if (!safe_point(f, uc)) {
    poke();
    return;
  }
  // A program handler may block and switch this fiber out: let the carrier
  // run others with its normal mask (the frame keeps the mask sigreturn
  // restores).
  uint64_t base = kCarrierMask;
  sys_sigmask(SIG_SETMASK, &base, nullptr);
  // An asynchronous cancellation acts here, in the program's code, as
  // glibc's SIGCANCEL handler would (may not return).
  cancel::act_in_handler(f);
  Carrier* before = f->carrier;
  bool ran = false;
  bool restart = deliver_all(f, uc, &ran);
  if (ran && !restart) restart_to_eintr(uc);
  if (f->carrier != before) {
    // Resumed by another carrier: sigreturn must not install the first
    // carrier's alternate stack on this one.
    stack_t ss;
    raw_syscall(SYS_sigaltstack, 0, reinterpret_cast<long>(&ss));
    uc->uc_stack = ss;
  }
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

// ---- borrowed delivery: a handler on top of a non-interruptible wait ---------------------------

constexpr long kBorrowMinStack = 16 * 1024;

BoostTransfer resume_as_scheduled(BoostTransfer t) { return BoostTransfer{t.data, nullptr}; }

// Runs on the borrowed fiber (on its own stack, below its parked context),
// entered from its carrier's scheduler like any resumption.
void borrowed_entry(ctx::Transfer t) {
  Fiber* f = tl_fiber;  // its TCB is current: the resumer set it
  sched::on_resumed(f, t);
  void* parked = f->sig.borrow_resume;
  f->sig.borrow_resume = nullptr;
  // The parked wait's state; a handler that blocks reuses these fields.
  WaitReason reason = f->reason;
  TimerOp* timer = f->timer;
  bool interruptible = f->park_interruptible;
  bool cancellable = f->park_cancellable;
  int depth = f->runtime_depth;
  f->reason = WaitReason::kNone;
  f->timer = nullptr;
  f->park_interruptible = false;
  f->park_cancellable = false;
  f->runtime_depth = 1;
  sched::leave(f);  // the handlers are the program's code
  run_pending(f);
  sched::enter(f);  // may move f to another worker
  f->runtime_depth = depth;
  f->reason = reason;
  f->timer = timer;
  f->park_interruptible = interruptible;
  f->park_cancellable = cancellable;
  // The wait gets a spurious wake-up and re-checks its condition (a wake
  // that a handler's own wait consumed is not lost).
  f->parker.permit_.store(1, std::memory_order_seq_cst);
  // Continue the parked context as if the scheduler had resumed it: its
  // switch_out then records the scheduler's context, not this one's.
  ontop_fcontext(parked, f->carrier->sched_ctx, resume_as_scheduled);
  __builtin_unreachable();
}

// Waits of the program that a signal never ends (glibc restarts the futex
// wait after the handler): a handler may run on top of them. Not the
// library's own waits - an interrupted operation waiting for its
// cancellation to complete (kIo), which runs the handlers itself right
// after (the EINTR contract) and must know that they ran.
bool borrowable_wait(WaitReason r) {
  switch (r) {
    case WaitReason::kMutex: case WaitReason::kCond: case WaitReason::kRwlock: case WaitReason::kBarrier:
    case WaitReason::kOnce: case WaitReason::kJoin: case WaitReason::kSemaphore:
      return true;
    default:
      return false;
  }
}

// Points f's saved context, a parked wait, at a borrowed delivery
// (borrowed_entry) that returns to it. f is held (kRunning) by the caller
// and not running. False if there is no room below it or a borrowed
// delivery is already set up.
bool set_up_borrow(Fiber* f) {
  char* sp = static_cast<char*>(f->ctx);
  char* top = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(sp) - 512) & ~uintptr_t{63});
  char* low = f->region.base ? f->region.stack_low() : top - (256 << 10);
  if (f->sig.borrow_resume || top - low < kBorrowMinStack) return false;
  f->sig.borrow_resume = f->ctx;
  f->ctx = ctx::make(top, static_cast<size_t>(top - low), borrowed_entry);
  return true;
}

// Makes f, parked, run its handlers on top of its wait. Under the registry
// lock (f stays alive). False if f was not (or no longer) parked.
bool try_borrow(Fiber* f) {
  // Held, every waker only leaves a permit (sched::hold_parked).
  if (!sched::hold_parked(f)) return false;
  bool ok = !f->park_interruptible && borrowable_wait(f->reason) && set_up_borrow(f);
  // Put back as the scheduler would have: a wake that came meanwhile
  // counts, and so does a borrowed context - ours, or one another kick set
  // up whose own wake failed against our hold - which runs it.
  sched::release_hold(f);
  return ok;
}

// ---- dispatch (signal thread, or a fiber sending to its own process) ------------------------------

void send_marker(Carrier* c) {
  if (!c || c->tid <= 0) return;
  siginfo_t si{};
  si.si_signo = SIGURG;
  si.si_code = SI_QUEUE;
  si.si_pid = g_pid;
  si.si_uid = static_cast<uid_t>(raw_syscall(SYS_getuid));
  si.si_value.sival_ptr = &g_marker_magic;
  raw_syscall(SYS_rt_tgsigqueueinfo, g_pid, c->tid, SIGURG, reinterpret_cast<long>(&si));
}

// Gets f's deliverable signals handled: interrupts an interruptible wait,
// borrows a non-interruptible one, marks the carrier of a running fiber.
// Under the registry lock. True while something is left to deliver.
bool kick(Fiber* f) {
  // An asynchronous cancellation is kicked like a signal, except that a
  // parked fiber is left alone: a cancellable park was woken by the request
  // itself, and any other wait acts when the fiber runs the program's code.
  bool cancel_due = cancel::async_due(f);
  if (!cancel_due && (f->sig.queue.pending() & ~load_mask(f)) == 0) return false;
  int st = f->run_state.load(std::memory_order_acquire);
  if (cancel_due && st != static_cast<int>(RunState::kRunning)) return true;
  if (st == static_cast<int>(RunState::kParked)) {
    if (f->park_interruptible) {
      if (!f->parker.interrupted_.load(std::memory_order_acquire)) f->parker.interrupt();
    } else {
      try_borrow(f);
    }
  } else if (st == static_cast<int>(RunState::kRunning)) {
    send_marker(f->carrier);
  }
  return true;
}

struct Pick {
  int sig;
  const siginfo_t* si;
  Fiber* waiter = nullptr;
  Fiber* best = nullptr;
  int best_score = -1;
  bool any_accepts = false;
  enum { kDone, kHold, kRetry, kDie } outcome = kDone;
};

int score(const Fiber* f) {
  // The kernel gives a process-directed signal to the thread-group leader
  // when it does not block it; then prefer a fiber that can take it soon.
  if (f->is_main) return 100;
  int st = f->run_state.load(std::memory_order_relaxed);
  if (st == static_cast<int>(RunState::kParked)) return f->park_interruptible ? 40 : 10;
  if (st == static_cast<int>(RunState::kRunning)) return 30;
  return 20;
}

// Pushes a process-directed signal to f; false (and nothing queued) if f
// blocked it meanwhile. Pairs with change_mask's store-then-hand_back.
bool push_checked(Fiber* f, const siginfo_t& si) {
  if (!f->sig.queue.push(si, false)) return false;
  if (load_mask(f) & bit(si.si_signo)) {
    siginfo_t back;
    if (f->sig.queue.take(bit(si.si_signo), &back, nullptr, true)) return false;
  }
  return true;
}

void pick_cb(Fiber* f, void* arg) {
  auto* p = static_cast<Pick*>(arg);
  uint64_t b = bit(p->sig);
  if (f) {
    if (p->waiter) return;
    if (f->sig.waiting.load(std::memory_order_seq_cst) & b) {
      p->waiter = f;
      return;
    }
    if (load_mask(f) & b) return;
    p->any_accepts = true;
    int s = score(f);
    if (s > p->best_score) {
      p->best = f;
      p->best_score = s;
    }
    return;
  }
  // End of the walk, still under the lock: act on the pick.
  if (p->waiter) {
    if (p->waiter->sig.queue.push(*p->si, false)) {
      p->waiter->parker.unpark();
      p->outcome = Pick::kDone;
    } else {
      p->outcome = Pick::kHold;
    }
    return;
  }
  Disp d = effective(p->sig);
  if (ignored(d, p->sig)) {
    // Kept only for a later sigwait/sigpending while every thread blocks it.
    p->outcome = p->any_accepts ? Pick::kDone : Pick::kHold;
    return;
  }
  if (!p->best) {
    p->outcome = Pick::kHold;
    return;
  }
  if (d.handler == kDfl) {
    p->outcome = Pick::kDie;
    return;
  }
  if (!push_checked(p->best, *p->si)) {
    p->outcome = p->best->sig.queue.pending() & bit(p->sig) ? Pick::kDone : Pick::kRetry;
    return;
  }
  kick(p->best);
  p->outcome = Pick::kDone;
}

struct Recheck {
  uint64_t b;
  bool found = false;
};

void recheck_cb(Fiber* f, void* arg) {
  auto* r = static_cast<Recheck*>(arg);
  if (f && !(load_mask(f) & r->b)) r->found = true;
}

// Gives a process-directed signal to the thread POSIX says should get it.
// Signal thread or a fiber; not a signal handler.
void dispatch(const siginfo_t& si) {
  int sig = si.si_signo;
  if (sig < 1 || sig > kMaxSig) return;
  if (sig == g_dump_signal) {
    // UNBLOCK_DUMP_SIGNAL: the user gave this signal to the library.
    control::dump_to_log();
    return;
  }
  if (g_program_signalfd.load(std::memory_order_acquire) & bit(sig)) {
    // The program reads it through its own signalfd: give it back to the kernel.
    raw_syscall(SYS_kill, g_pid, sig);
    return;
  }
  struct Holding {
    Holding() { g_holding.fetch_add(1, std::memory_order_seq_cst); }
    ~Holding() { g_holding.fetch_sub(1, std::memory_order_seq_cst); }
  } holding;
  for (int attempt = 0; attempt < 8; ++attempt) {
    Pick p;
    p.sig = sig;
    p.si = &si;
    sched::for_each_fiber(pick_cb, &p);
    switch (p.outcome) {
      case Pick::kDone:
        return;
      case Pick::kDie:
        default_action(sig, si);
        return;
      case Pick::kRetry:
        continue;
      case Pick::kHold: {
        process_push(si, false);
        // A fiber may have unblocked it while we looked (it then checks the
        // process queue after changing its mask, or we see its new mask here).
        Recheck r{bit(sig)};
        sched::for_each_fiber(recheck_cb, &r);
        if (!r.found) return;
        siginfo_t back;
        if (!g_process.take(bit(sig), &back)) return;  // that fiber took it
        continue;
      }
    }
  }
  process_push(si, false);
}

void kick_cb(Fiber* f, void* arg) {
  if (f && kick(f)) *static_cast<bool*>(arg) = true;
}

// ---- the signal thread ----------------------------------------------------------------

void redispatch_process() {
  siginfo_t batch[64];
  int n = 0;
  while (n < 64 && g_process.take(kAll, &batch[n])) ++n;
  for (int i = 0; i < n; ++i) dispatch(batch[i]);
}

// Waits until a managed signal or a poke arrives (or the timeout passes;
// nullptr: no timeout), then dispatches every managed signal the kernel holds
// for the process. True if anything arrived.
bool drain_kernel(uint64_t set, const timespec* timeout) {
  siginfo_t si;
  long r = raw_syscall(SYS_rt_sigtimedwait, reinterpret_cast<long>(&set), reinterpret_cast<long>(&si),
               reinterpret_cast<long>(timeout), 8);
  bool event = false;
  while (r > 0) {
    event = true;
    if (!(r == SIGURG && si.si_code == SI_TKILL && si.si_pid == g_pid)) dispatch(si);  // else a poke
    timespec zero{0, 0};
    r = raw_syscall(SYS_rt_sigtimedwait, reinterpret_cast<long>(&set), reinterpret_cast<long>(&si),
            reinterpret_cast<long>(&zero), 8);
  }
  return event;
}

void* signal_thread(void*) {
  // seq_cst: pairs with poke()'s load. A poke made before this store went
  // nowhere, so the first pass runs without waiting for one.
  g_sig_tid.store(sys_gettid(), std::memory_order_seq_cst);
  // What was pending for the whole process before the runtime started is
  // the process's: take it before adopt_main_thread() takes what is left on
  // main's OS thread, which was sent to main alone.
  timespec zero{0, 0};
  drain_kernel((kManaged & ~g_program_signalfd.load(std::memory_order_acquire)) | kMarkerBit, &zero);
  // release: pairs with adopt_main_thread()'s acquire load.
  g_first_pass.store(1, std::memory_order_release);
  raw_syscall(SYS_futex, reinterpret_cast<long>(&g_first_pass), FUTEX_WAKE_PRIVATE, INT32_MAX);
  g_process_dirty.store(true, std::memory_order_seq_cst);
  bool event = true;
  long backoff_ns = 0;
  for (;;) {
    if (g_process_dirty.exchange(false, std::memory_order_acq_rel)) redispatch_process();
    bool outstanding = false;
    sched::for_each_fiber(kick_cb, &outstanding);
    if (!outstanding) {
      backoff_ns = 0;
    } else if (event || backoff_ns == 0) {
      backoff_ns = 100 * 1000;
    } else if (backoff_ns < 10 * 1000 * 1000) {
      backoff_ns *= 2;
    }
    uint64_t set = (kManaged & ~g_program_signalfd.load(std::memory_order_acquire)) | kMarkerBit;
    timespec ts{backoff_ns / 1000000000, backoff_ns % 1000000000};
    event = drain_kernel(set, backoff_ns ? &ts : nullptr);
    g_sig_passes.fetch_add(1, std::memory_order_seq_cst);
  }
  return nullptr;
}

int find_text(dl_phdr_info* info, size_t, void* arg) {
  auto self = reinterpret_cast<uintptr_t>(arg);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    uintptr_t a = info->dlpi_addr + ph.p_vaddr;
    if (a < lo) lo = a;
    if (a + ph.p_memsz > hi) hi = a + ph.p_memsz;
  }
  if (self >= lo && self < hi) {
    g_text_lo = lo;
    g_text_hi = hi;
    return 1;
  }
  return 0;
}

}  // namespace

// ---- SigQueue -----------------------------------------------------------------------------

namespace {
inline int signo_of(const SigSlot& s) {
  int v;
  memcpy(&v, s.info.bytes, sizeof v);
  return v;
}
}  // namespace

template <int N>
bool SigQueue<N>::push(const siginfo_t& si, bool directed) {
  int sig = si.si_signo;
  if (sig < 32) {
    // A standard signal is pending at most once.
    for (auto& s : slots_) {
      if (s.state.load(std::memory_order_acquire) == SigSlot::kFull && signo_of(s) == sig) return true;
    }
  }
  for (auto& s : slots_) {
    uint32_t expected = SigSlot::kFree;
    if (s.state.compare_exchange_strong(expected, SigSlot::kWriting, std::memory_order_acquire)) {
      memcpy(s.info.bytes, &si, sizeof s.info.bytes);
      s.directed = directed;
      s.seq = g_seq.fetch_add(1, std::memory_order_relaxed);
      // Pairs with take()'s acquire load of the state.
      s.state.store(SigSlot::kFull, std::memory_order_release);
      bits_.fetch_or(bit(sig), std::memory_order_seq_cst);
      return true;
    }
  }
  return false;
}

template <int N>
bool SigQueue<N>::take(uint64_t set, siginfo_t* out, bool* directed, bool only_undirected) {
  for (int guard = 0; guard < 1024; ++guard) {
    uint64_t cand = bits_.load(std::memory_order_seq_cst) & set;
    if (!cand) return false;
    int sig = __builtin_ctzll(cand) + 1;
    SigSlot* best = nullptr;
    bool other = false;
    for (auto& s : slots_) {
      if (s.state.load(std::memory_order_acquire) != SigSlot::kFull || signo_of(s) != sig) continue;
      if (only_undirected && s.directed) {
        other = true;
        continue;
      }
      if (!best || s.seq < best->seq) best = &s;
    }
    if (!best) {
      if (!other) {
        // A stale bit: clear it, then re-set it if an entry arrived meanwhile
        // (a sender stores kFull before setting the bit).
        bits_.fetch_and(~bit(sig), std::memory_order_seq_cst);
        for (auto& s : slots_) {
          if (s.state.load(std::memory_order_acquire) == SigSlot::kFull && signo_of(s) == sig) {
            bits_.fetch_or(bit(sig), std::memory_order_seq_cst);
            break;
          }
        }
      }
      set &= ~bit(sig);
      continue;
    }
    uint32_t expected = SigSlot::kFull;
    if (!best->state.compare_exchange_strong(expected, SigSlot::kTaking, std::memory_order_acquire)) continue;
    memset(out, 0, sizeof *out);
    memcpy(out, best->info.bytes, sizeof best->info.bytes);
    if (directed) *directed = best->directed;
    best->state.store(SigSlot::kFree, std::memory_order_release);
    bool more = false;
    for (auto& s : slots_) {
      if (s.state.load(std::memory_order_acquire) == SigSlot::kFull && signo_of(s) == sig) more = true;
    }
    if (!more) {
      bits_.fetch_and(~bit(sig), std::memory_order_seq_cst);
      for (auto& s : slots_) {
        if (s.state.load(std::memory_order_acquire) == SigSlot::kFull && signo_of(s) == sig) {
          bits_.fetch_or(bit(sig), std::memory_order_seq_cst);
          break;
        }
      }
    }
    return true;
  }
  return false;
}

template <int N>
uint64_t SigQueue<N>::pending() const {
  uint64_t p = 0;
  for (const auto& s : slots_) {
    if (s.state.load(std::memory_order_acquire) == SigSlot::kFull) {
      int sig = signo_of(s);
      if (sig >= 1 && sig <= kMaxSig) p |= bit(sig);
    }
  }
  return p;
}

template class SigQueue<kFiberSlots>;
template class SigQueue<64>;

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

// ---- start-up -----------------------------------------------------------------------------

void carrier_mask(sigset_t* out) { set_bits(out, kCarrierMask); }
void runtime_thread_mask(sigset_t* out) { set_bits(out, kRuntimeThreadMask); }

int start_runtime_thread(void* (*fn)(void*), void* arg, size_t stack_size) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_size);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  uint64_t mask = kRuntimeThreadMask, old = 0;
  sys_sigmask(SIG_SETMASK, &mask, &old);
  pthread_t t;
  int err = real::pthread_create(&t, &attr, fn, arg);
  sys_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  return err;
}

int signal_thread_id() { return g_sig_tid.load(std::memory_order_relaxed); }

void start() {
  g_pid = sys_getpid();
  g_dump_signal = parse_dump_signal(config::get().dump_signal);
  dl_iterate_phdr(find_text, reinterpret_cast<void*>(&start));

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

  int err = start_runtime_thread(signal_thread, nullptr, 128 * 1024);
  if (err) log::always("cannot start the signal thread: signals to the program's threads are not delivered");
  g_sig_thread_started = err == 0;

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

void adopt_main_thread() {
  uint64_t m = kCarrierMask;
  sys_sigmask(SIG_SETMASK, &m, nullptr);
  // Signals still pending on this OS thread once the signal thread has taken
  // the process's were sent to main alone (raise, pthread_kill while main
  // blocked them). A process-directed one that arrives between the two
  // passes is taken for main's too: a window at start-up only.
  while (g_sig_thread_started && g_first_pass.load(std::memory_order_acquire) == 0) {
    raw_syscall(SYS_futex, reinterpret_cast<long>(&g_first_pass), FUTEX_WAIT_PRIVATE, 0, 0);
  }
  Fiber* main_fiber = Fiber::current();
  bool deliverable_now = false;
  for (;;) {
    // The program's own signalfd reads its signals from the kernel: leave them.
    uint64_t set = kManaged & ~g_program_signalfd.load(std::memory_order_acquire);
    timespec zero{0, 0};
    siginfo_t si;
    long r = raw_syscall(SYS_rt_sigtimedwait, reinterpret_cast<long>(&set), reinterpret_cast<long>(&si),
                 reinterpret_cast<long>(&zero), 8);
    if (r <= 0) break;
    if (main_fiber && main_fiber->sig.queue.push(si, true)) {
      if (!(load_mask(main_fiber) & bit(si.si_signo))) deliverable_now = true;
    } else {
      process_push(si, true);
    }
  }
  if (deliverable_now) poke();
}

// ---- the scheduler ---------------------------------------------------------------------------

void before_resume(Fiber* f) {
  if (!(f->sig.queue.pending() & ~load_mask(f))) return;
  switch (f->action) {
    case SwitchAction::kPark:
      if (f->park_interruptible) {
        // Its park returns kInterrupted (unless woken) and the hook runs the
        // handlers (the EINTR contract).
        f->parker.interrupted_.store(true, std::memory_order_seq_cst);
      } else if (borrowable_wait(f->reason)) {
        set_up_borrow(f);
      }
      break;
    default:
      // A yield (sched_yield delivers on its way out), a new fiber, or one
      // moved to another worker: it runs the program's code at once, where
      // the SIGURG marker reaches it.
      break;
  }
}

void before_exit(Fiber* f) {
  settle_holds();
  if (deliverable(f)) run_pending(f);
  // From here every signal for the process goes to another thread.
  store_mask(f, kAll);
}

void after_exit(Fiber* f) { hand_back(f, kAll); }

// ---- the EINTR contract --------------------------------------------------------------------

bool run_pending(Fiber* f) {
  bool ran = false;
  return deliver_all(f, nullptr, &ran);
}

uint64_t swap_mask_for_wait(Fiber* f, const sigset_t* mask) {
  uint64_t old = load_mask(f);
  uint64_t now = bits_of(mask);
  store_mask(f, now);
  if (now & ~old) hand_back(f, now & ~old);
  if (deliverable(f)) f->parker.interrupted_.store(true, std::memory_order_seq_cst);
  return old;
}

void restore_mask_after_wait(Fiber* f, uint64_t old) {
  sigset_t s;
  set_bits(&s, old);
  change_mask(f, SIG_SETMASK, &s, nullptr);
}

// ---- hooks ------------------------------------------------------------------------------------

bool table_ready() { return g_ready.load(std::memory_order_acquire); }

uint64_t mask_of(const Fiber* f) { return load_mask(f); }

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

int change_mask(Fiber* f, int how, const sigset_t* set, sigset_t* old) {
  uint64_t cur = load_mask(f);
  if (set) {
    uint64_t s = bits_of(set);
    uint64_t next;
    switch (how) {
      case SIG_BLOCK: next = cur | s; break;
      case SIG_UNBLOCK: next = cur & ~s; break;
      case SIG_SETMASK: next = s; break;
      default: return -EINVAL;
    }
    next &= ~kNeverBlocked;
    store_mask(f, next);
    if (old) set_bits(old, cur);
    if (next & ~cur) hand_back(f, next & ~cur);
    if (cur & ~next) settle_holds();
    // As the kernel on return from sigprocmask: run what is now unblocked.
    if (cur & ~next & (f->sig.queue.hint() | g_process.hint())) run_pending(f);
    return 0;
  }
  if (old) set_bits(old, cur);
  return 0;
}

int send_to_fiber(Fiber* target, const siginfo_t& info) {
  int sig = info.si_signo;
  if (target->run_state.load(std::memory_order_acquire) == static_cast<int>(RunState::kDone)) return 0;
  uint64_t b = bit(sig);
  bool blocked = load_mask(target) & b;
  bool waiting = target->sig.waiting.load(std::memory_order_seq_cst) & b;
  if (!blocked && !waiting) {
    Disp d = effective(sig);
    if (ignored(d, sig)) return 0;  // discarded when sent, as the kernel does
    if (d.handler == kDfl) {
      default_action(sig, info);
      return 0;
    }
  }
  if (!target->sig.queue.push(info, true)) return EAGAIN;
  Fiber* self = Fiber::current();
  if (target == self) {
    if (!blocked) run_pending(self);
    return 0;
  }
  if (target->sig.waiting.load(std::memory_order_seq_cst) & b) {
    target->parker.unpark();
  } else if (!blocked) {
    kick(target);
    poke();  // the signal thread follows up until it is handled
  }
  return 0;
}

bool send_to_process(Fiber* self, const siginfo_t& info) {
  int sig = info.si_signo;
  if (sig < 1 || sig > kMaxSig || !(kManaged & bit(sig))) return false;
  if (g_program_signalfd.load(std::memory_order_acquire) & bit(sig)) return false;
  dispatch(info);
  if (deliverable(self)) run_pending(self);
  return true;
}

int wait(Fiber* f, const sigset_t* set, siginfo_t* info, const Deadline& d) {
  uint64_t want = bits_of(set) & ~kNeverBlocked;
  cancel::point();  // sigwait* are cancellation points
  for (;;) {
    if (f->sig.queue.take(want, info) || g_process.take(want, info)) break;
    // seq_cst: pairs with the dispatcher reading `waiting` before it pushes.
    f->sig.waiting.store(want, std::memory_order_seq_cst);
    if (f->sig.queue.take(want, info) || g_process.take(want, info)) {
      f->sig.waiting.store(0, std::memory_order_relaxed);
      break;
    }
    f->wait_op = kWaitSigwait;
    ParkResult r = f->parker.park(d, WaitReason::kSignal, /*interruptible=*/true);
    f->sig.waiting.store(0, std::memory_order_seq_cst);
    if (r == ParkResult::kInterrupted) {
      bool got = f->sig.queue.take(want, info) || g_process.take(want, info);
      run_pending(f);
      if (got) break;
      cancel::point();
      return -EINTR;
    }
    if (r == ParkResult::kTimedOut) {
      if (f->sig.queue.take(want, info) || g_process.take(want, info)) break;
      return -EAGAIN;
    }
  }
  return info->si_signo;
}

int suspend(Fiber* f, const sigset_t* mask) {
  uint64_t old = load_mask(f);
  if (mask) store_mask(f, bits_of(mask));
  for (;;) {
    bool ran = false;
    deliver_all(f, nullptr, &ran);
    if (ran) break;
    if (cancel::due(f)) {
      // A cancellation point: the thread's own mask back, then unwind.
      if (mask) store_mask(f, old);
      cancel::point();
    }
    f->wait_op = kWaitSigsuspend;
    f->parker.park(Deadline::never(), WaitReason::kSignal, /*interruptible=*/true);
  }
  if (mask) {
    sigset_t s;
    set_bits(&s, old);
    change_mask(f, SIG_SETMASK, &s, nullptr);
  }
  return -EINTR;
}

void watch_cancel() { poke(); }

void pending(Fiber* f, sigset_t* out) {
  uint64_t k = 0;
  raw_syscall(SYS_rt_sigpending, reinterpret_cast<long>(&k), 8);
  uint64_t p = (f->sig.queue.pending() | g_process.pending() | (k & kManaged)) & load_mask(f);
  set_bits(out, p);
}

int altstack(Fiber* f, const stack_t* ss, stack_t* old) {
  stack_t cur = f->sig.altstack;
  if (ss) {
    constexpr int kAutoDisarm = 1 << 31;  // SS_AUTODISARM (Linux 4.7)
    if (ss->ss_flags & ~(SS_DISABLE | kAutoDisarm)) return -EINVAL;
    if (!(ss->ss_flags & SS_DISABLE) && ss->ss_size < static_cast<size_t>(MINSIGSTKSZ)) return -ENOMEM;
    char* sp = static_cast<char*>(__builtin_frame_address(0));
    char* base = static_cast<char*>(cur.ss_sp);
    if (!(cur.ss_flags & SS_DISABLE) && sp >= base && sp < base + cur.ss_size) return -EPERM;
    f->sig.altstack = *ss;
    if (ss->ss_flags & SS_DISABLE) f->sig.altstack = stack_t{nullptr, SS_DISABLE, 0};
  }
  if (old) *old = cur;
  return 0;
}

void note_program_signalfd(const sigset_t* mask) {
  uint64_t m = bits_of(mask) & kManaged;
  if (!m || (g_program_signalfd.fetch_or(m, std::memory_order_acq_rel) & m) == m) return;
  if (!table_ready()) return;
  poke();  // the signal thread stops waiting for these
  // Signals of that set the library already holds go back to the kernel,
  // where the program's signalfd finds them.
  siginfo_t si;
  while (g_process.take(m, &si)) raw_syscall(SYS_kill, g_pid, si.si_signo);
}

void before_longjmp(Fiber* f, const void* jmpbuf, bool mask_saved) {
  int depth = f->sig.handler_depth;
  if (depth <= 0) return;
  // The buffer's stack pointer, unmangled as glibc's PTR_DEMANGLE does.
  uintptr_t guard;
  asm("mov %%fs:0x30, %0" : "=r"(guard));
  uintptr_t mangled = static_cast<const uintptr_t*>(jmpbuf)[6];
  uintptr_t target_sp = ((mangled >> 0x11) | (mangled << (64 - 0x11))) ^ guard;
  int keep = depth;
  while (keep > 0 && (keep > kHandlerNest || f->sig.handler_sp[keep - 1] < target_sp)) --keep;
  if (keep == depth) return;
  int left = keep < kHandlerNest ? keep : kHandlerNest - 1;
  f->sig.handler_depth = keep;
  if (mask_saved) {
    // The buffer holds the carrier's real mask; the thread's own mask at
    // sigsetjmp time is best known as the one before the handler it leaves.
    store_mask(f, f->sig.handler_old_mask[left]);
    if (deliverable(f)) poke();
  }
}

long with_program_mask(Fiber* f, long (*fn)(void*), void* arg) {
  uint64_t m = load_mask(f), old = 0;
  sys_sigmask(SIG_SETMASK, &m, &old);
  long r = fn(arg);
  int e = errno;
  sys_sigmask(SIG_SETMASK, &old, nullptr);
  errno = e;
  return r;
}

namespace {
// errno of whichever TCB FS points at now (not a value cached from before a
// set_tp: __errno_location is declared const).
__attribute__((noinline)) int errno_now() { return errno; }
}  // namespace

// glibc's setxid broadcast signals every thread in its lists except
// THREAD_SELF, then makes the call itself. With FS on the carrier's own
// descriptor, THREAD_SELF is the one glibc knows for this OS thread, so each
// OS thread changes its credentials exactly once. Markers and other
// asynchronous signals are blocked meanwhile: on carrier 0 that descriptor
// is main's TCB, whose tl_fiber would be taken for the running fiber.
long as_carrier(Fiber* f, long (*fn)(void*), void* arg) {
  uint64_t block = kRuntimeThreadMask, old = 0;
  sys_sigmask(SIG_BLOCK, &block, &old);
  void* self = tls::current_tp();
  void* rep = f->carrier->rep_tp;
  tls::set_tp(rep);
  long r = fn(arg);
  int e = errno_now();
  tls::set_tp(self);
  sys_sigmask(SIG_SETMASK, &old, nullptr);
  if (r < 0) errno = e;
  return r;
}

}  // namespace unblock::signals
