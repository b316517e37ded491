// Signal queues, delivery and dispatch (see signals.h for the model and
// the EINTR contract). This file owns: the pending queues (SigQueue, the
// process queue), running handlers on a fiber (directly, from the SIGURG
// marker's handler, or on top of a parked wait: borrowed delivery), the
// dispatch of a process-directed signal to the thread POSIX says should get
// it and the kicks that get it handled, the per-fiber calls of signals.h
// (masks, sending, sigwait*, sigsuspend, sigpending, sigaltstack, longjmp
// out of a handler) and what the scheduler asks at resume and exit.
//
// Must not: allocate or take a lock in a signal handler (queues are
// lock-free slots claimed with CAS), call a hooked symbol, or unwind from
// inside the runtime.
//
// Who runs what here:
//   signal thread  - dispatch(), kick_cb() (signal_thread.cpp's loop).
//   fiber          - run_pending()/deliver_all() from hooks; handlers run here.
//   carrier, in a signal handler - deliver_in_handler() (from the
//                    trampolines in signals.cpp).
//   borrowed       - borrowed_entry(): a fiber parked non-interruptibly is
//                    resumed on a context built below its parked one, runs
//                    its handlers, then continues the parked context.
// Locks: none of its own. dispatch() and the kicks run under the scheduler's
// registry lock (sched::for_each_fiber), and wakes under it take a worker
// inbox lock: registry lock -> worker inbox lock.
#include "runtime/signals.h"

#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "runtime/cancel.h"
#include "runtime/context.h"
#include "runtime/control.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/scheduler.h"
#include "runtime/signals_internal.h"
#include "runtime/tls.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"

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

SigQueue<64> g_process;
std::atomic<bool> g_process_dirty{false};
uintptr_t g_text_lo = 0, g_text_hi = 0;

namespace {

std::atomic<uint64_t> g_seq{1};  // arrival order of queued signals

// Dispatches between their look at the masks and their hold of a signal for
// the process (dispatch). A fiber that unblocks a signal and then looks at
// the process queue may look just before such a held signal lands there;
// if it blocks the signal again (a pthread_sigmask loop, its exit) before
// the dispatcher's second look, the signal waits for good, where the kernel
// delivers it on the unblocking call's return. So an unblocking fiber first
// waits for the dispatches in flight (settle_holds).
std::atomic<int> g_holding{0};

}  // namespace

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

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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

// ---- borrowed delivery: a handler on top of a non-interruptible wait ---------------------------

namespace {

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
  Fiber::ParkState parked_state = f->set_aside_park();
  sched::leave(f);  // the handlers are the program's code
  run_pending(f);
  sched::enter(f);  // may move f to another worker
  f->restore_park(parked_state);
  // The wait gets a spurious wake-up and re-checks its condition (a wake
  // that a handler's own wait consumed is not lost).
  f->parker.give_own_permit();
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
  f->sig.borrow_resume = f->divert_resume(ctx::make(top, static_cast<size_t>(top - low), borrowed_entry));
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
      if (!f->parker.interrupt_pending()) f->parker.interrupt();
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

}  // namespace

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

// ---- the scheduler ---------------------------------------------------------------------------

void before_resume(Fiber* f) {
  if (!(f->sig.queue.pending() & ~load_mask(f))) return;
  switch (f->action) {
    case SwitchAction::kPark:
      if (f->park_interruptible) {
        // Its park returns kInterrupted (unless woken) and the hook runs the
        // handlers (the EINTR contract).
        f->parker.mark_interrupted();
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
  if (deliverable(f)) f->parker.mark_interrupted();
  return old;
}

void restore_mask_after_wait(Fiber* f, uint64_t old) {
  sigset_t s;
  set_bits(&s, old);
  change_mask(f, SIG_SETMASK, &s, nullptr);
}

// ---- the per-fiber calls ------------------------------------------------------------------

uint64_t mask_of(const Fiber* f) { return load_mask(f); }

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

void send_marker_to(int tid) {
  siginfo_t si{};
  si.si_signo = SIGURG;
  si.si_code = SI_QUEUE;
  int pid = sys_getpid();  // g_pid is set only once signals::start ran
  si.si_pid = pid;
  si.si_uid = static_cast<uid_t>(raw_syscall(SYS_getuid));
  si.si_value.sival_ptr = &g_marker_magic;
  raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, SIGURG, reinterpret_cast<long>(&si));
}

}  // namespace unblock::signals

