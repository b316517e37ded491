// The signal thread and the start of signal emulation (see signals.h). This
// file owns: the runtime's own OS threads' masks (start_runtime_thread);
// start(), which takes over the dispositions and starts the signal thread;
// the signal thread itself - rt_sigtimedwait on the managed set, dispatch of
// what the kernel holds for the process, and kicks of every fiber with a
// deliverable signal until each is handled, with a backoff; main's pending
// signals at adoption; the program's own signalfd; UNBLOCK_DUMP_SIGNAL.
//
// Must not: let a runtime thread unblock a managed signal; call a hooked
// symbol.
// Locks: none of its own. Its kicks and dispatches run under the
// scheduler's registry lock (sched::for_each_fiber). g_first_pass is a
// futex word, not a lock: adopt_main_thread waits on it once.
#include "runtime/signals.h"

#include <dlfcn.h>
#include <link.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals_internal.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::signals {

int g_pid = 0;
int g_dump_signal = 0;
std::atomic<uint64_t> g_program_signalfd{0};
std::atomic<int> g_sig_tid{0};
// seq_cst: pairs with settle_before_change's load before its poke.
std::atomic<uint64_t> g_sig_passes{0};

namespace {

bool g_sig_thread_started = false;
// 1 once the signal thread has taken what was pending for the whole process
// when the runtime started (futex word; adopt_main_thread waits for it).
std::atomic<uint32_t> g_first_pass{0};

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

}  // namespace

void poke() {
  // seq_cst: pairs with the signal thread's store of its tid before its
  // first pass. A poke that finds no tid yet is covered by that pass.
  int tid = g_sig_tid.load(std::memory_order_seq_cst);
  if (tid > 0) raw_syscall(SYS_tgkill, g_pid, tid, SIGURG);
}

// ---- the signal thread ----------------------------------------------------------------

namespace {

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

  take_over_dispositions();

  int err = start_runtime_thread(signal_thread, nullptr, 128 * 1024);
  if (err) log::always("cannot start the signal thread: signals to the program's threads are not delivered");
  g_sig_thread_started = err == 0;

  wrap_setxid_handler();
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

void watch_cancel() { poke(); }

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

}  // namespace unblock::signals
