#include "runtime/inspect_stacks.h"

#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/fiber.h"
#include "runtime/spinlock.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"

namespace unblock::inspect {
namespace {

// ---- the marker: one capture request at a time ---------------------------------------

// A dump's marker carries &g_dump_magic in si_value; the signal thread's
// delivery markers carry their own (runtime/signals.cpp).
char g_dump_magic;

// kIdle -> kAsked (requester) -> kCopying -> kDone, or kAsked -> kRefused
// (handler: not on the asked fiber's stack); kAsked -> kIdle when the
// requester gives up. Only the CAS out of kAsked decides who owns `out`.
enum ReqState : int { kIdle, kAsked, kCopying, kDone, kRefused };

struct Request {
  std::atomic<int> state{kIdle};
  int tid = 0;
  const void* fiber = nullptr;
  uintptr_t lo = 0, hi = 0;
  Capture* out = nullptr;
};
Request g_req;
SpinLock g_req_lock{LockRank::kInspectRequest};  // one requester at a time (try_lock + sleep: never spins long)

// Copies n bytes at remote address `addr` of this process into `to`; the
// count copied (a partial copy stops at the first unmapped page). Never
// faults. Async-signal-safe.
size_t copy_own(void* to, uintptr_t addr, size_t n) {
  iovec local{to, n};
  iovec remote{reinterpret_cast<void*>(addr), n};
  long r = raw_syscall(SYS_process_vm_readv, raw_syscall(SYS_getpid), reinterpret_cast<long>(&local), 1,
                       reinterpret_cast<long>(&remote), 1, 0);
  return r > 0 ? static_cast<size_t>(r) : 0;
}

void fill_from_ucontext(const ucontext_t* uc, Capture* out) {
  const greg_t* g = uc->uc_mcontext.gregs;
  static const int kOrder[17] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP, REG_R8,
                                 REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP};
  for (int i = 0; i < 17; ++i) out->regs[i] = static_cast<uint64_t>(g[kOrder[i]]);
  out->all_regs = true;
}

void sleep_us(long us) {
  timespec ts{us / 1000000, (us % 1000000) * 1000};
  raw_syscall(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
}

int64_t mono_ms() {
  timespec ts;
  raw_syscall(SYS_clock_gettime, CLOCK_MONOTONIC, reinterpret_cast<long>(&ts));
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// /proc/self/task/TID/syscall: "running", or "NR A1..A6 SP PC" (NR -1:
// asleep outside a system call, then only SP and PC follow).
int read_task_syscall(int tid, char* buf, int cap) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  long fd = raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long n = raw_syscall(SYS_read, fd, reinterpret_cast<long>(buf), cap - 1);
  raw_syscall(SYS_close, fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  return static_cast<int>(n);
}

// ---- libdw, dlopen'ed when first asked -----------------------------------------------------

struct Dw {
  bool tried = false;
  bool ok = false;
  Dwfl* (*begin)(const Dwfl_Callbacks*) = nullptr;
  int (*proc_report)(Dwfl*, pid_t) = nullptr;
  int (*report_end)(Dwfl*, int (*)(Dwfl_Module*, void*, const char*, Dwarf_Addr, void*), void*) = nullptr;
  void (*end)(Dwfl*) = nullptr;
  bool (*attach_state)(Dwfl*, Elf*, pid_t, const Dwfl_Thread_Callbacks*, void*) = nullptr;
  int (*getthread_frames)(Dwfl*, pid_t, int (*)(Dwfl_Frame*, void*), void*) = nullptr;
  bool (*state_registers)(Dwfl_Thread*, int, unsigned, const Dwarf_Word*) = nullptr;
  void (*state_register_pc)(Dwfl_Thread*, Dwarf_Word) = nullptr;
  bool (*frame_pc)(Dwfl_Frame*, Dwarf_Addr*, bool*) = nullptr;
  Dwfl_Line* (*getsrc)(Dwfl*, Dwarf_Addr) = nullptr;
  const char* (*lineinfo)(Dwfl_Line*, Dwarf_Addr*, int*, int*, Dwarf_Word*, Dwarf_Word*) = nullptr;
  Dwfl_Module* (*addrmodule)(Dwfl*, Dwarf_Addr) = nullptr;
  Dwfl_Callbacks callbacks{};
  Dwfl_Thread_Callbacks thread_callbacks{};
  char* debuginfo_path = nullptr;
};
Dw g_dw;
SpinLock g_dw_lock{LockRank::kInspectDwarf};

template <typename Fn>
bool sym(void* h, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(h, name));
  return *out != nullptr;
}

// The thread callbacks: one "thread" per unwind, the capture being unwound.
pid_t no_next_thread(Dwfl*, void*, void**) { return 0; }

bool get_thread(Dwfl*, pid_t, void* dwfl_arg, void** thread_arg) {
  *thread_arg = dwfl_arg;
  return true;
}

bool memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg) {
  const Capture* c = static_cast<StackSession*>(arg)->cur_;
  if (c && addr >= c->copy_lo && addr + sizeof *result <= c->copy_lo + c->copy_len) {
    memcpy(result, c->copy + (addr - c->copy_lo), sizeof *result);
    return true;
  }
  return copy_own(result, addr, sizeof *result) == sizeof *result;
}

bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
  const Capture* c = static_cast<StackSession*>(arg)->cur_;
  bool ok = c->all_regs ? g_dw.state_registers(thread, 0, 17, c->regs) : g_dw.state_registers(thread, 7, 1, &c->regs[7]);
  if (ok) g_dw.state_register_pc(thread, c->regs[16]);
  return ok;
}

bool dw_loaded() {
  SpinGuard g(g_dw_lock);
  if (g_dw.tried) return g_dw.ok;
  g_dw.tried = true;
  void* h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  g_dw.ok = sym(h, "dwfl_begin", &g_dw.begin) && sym(h, "dwfl_linux_proc_report", &g_dw.proc_report) &&
            sym(h, "dwfl_report_end", &g_dw.report_end) && sym(h, "dwfl_end", &g_dw.end) &&
            sym(h, "dwfl_attach_state", &g_dw.attach_state) && sym(h, "dwfl_getthread_frames", &g_dw.getthread_frames) &&
            sym(h, "dwfl_thread_state_registers", &g_dw.state_registers) &&
            sym(h, "dwfl_thread_state_register_pc", &g_dw.state_register_pc) && sym(h, "dwfl_frame_pc", &g_dw.frame_pc) &&
            sym(h, "dwfl_getsrc", &g_dw.getsrc) && sym(h, "dwfl_lineinfo", &g_dw.lineinfo) &&
            sym(h, "dwfl_addrmodule", &g_dw.addrmodule) &&
            sym(h, "dwfl_linux_proc_find_elf", &g_dw.callbacks.find_elf);
  // As inspect.cpp: only the DWARF inside the mapped objects, never a
  // debuginfod server.
  g_dw.callbacks.find_debuginfo = [](Dwfl_Module*, void**, const char*, Dwarf_Addr, const char*, const char*, GElf_Word,
                                     char**) { return -1; };
  g_dw.callbacks.debuginfo_path = &g_dw.debuginfo_path;
  g_dw.thread_callbacks.next_thread = no_next_thread;
  g_dw.thread_callbacks.get_thread = get_thread;
  g_dw.thread_callbacks.memory_read = memory_read;
  g_dw.thread_callbacks.set_initial_registers = set_initial_registers;
  return g_dw.ok;
}

int frame_cb(Dwfl_Frame* frame, void* arg) {
  auto* s = static_cast<StackSession*>(arg);
  Dwarf_Addr pc = 0;
  bool activation = false;
  if (!g_dw.frame_pc(frame, &pc, &activation) || pc == 0) return DWARF_CB_ABORT;
  // Past a fiber's first frame (Boost.Context's entry) the "caller" is
  // whatever the stack held: stop at an address in no mapped object.
  if (!g_dw.addrmodule(static_cast<Dwfl*>(s->dwfl()), activation ? pc : pc - 1)) return DWARF_CB_ABORT;
  s->out_[s->n_++] = activation ? pc | kExactPc : pc;
  return s->n_ < s->max_ ? DWARF_CB_OK : DWARF_CB_ABORT;
}

}  // namespace

// ---- the handler's side -----------------------------------------------------------------

// Dump markers that ended a system call of the program with EINTR (see
// interrupted_syscall below); read by the dump's stats and warning.
std::atomic<uint64_t> g_spurious_eintr{0};

// True if the signal interrupted a system call that then failed with EINTR:
// the kernel left rip just after the `syscall` instruction (0f 05) with
// -EINTR in rax. A call the kernel restarts (SA_RESTART, restartable call)
// has rip back on the instruction instead, and is not counted. The check
// runs before the runtime's "running" test can be trusted: between the
// requester's read of /proc and the marker's arrival the thread may have
// entered a sleeping call that the marker then cut short (poll, nanosleep,
// epoll_wait: never restarted once a handler ran).
bool interrupted_syscall(const ucontext_t* uc) {
  if (uc->uc_mcontext.gregs[REG_RAX] != -EINTR) return false;
  uint16_t insn = 0;
  uintptr_t rip = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  return copy_own(&insn, rip - 2, sizeof insn) == sizeof insn && insn == 0x050f;
}

bool on_marker(const siginfo_t* si, void* ucv) {
  bool ours = si && si->si_code == SI_QUEUE && si->si_value.sival_ptr == &g_dump_magic &&
              si->si_pid == raw_syscall(SYS_getpid);
  if (ours && interrupted_syscall(static_cast<const ucontext_t*>(ucv))) {
    g_spurious_eintr.fetch_add(1, std::memory_order_relaxed);
  }
  // Also when ours was merged into a pending delivery marker (SIGURG is not
  // queued twice): the request is what counts.
  if (g_req.state.load(std::memory_order_acquire) != kAsked || g_req.tid != raw_syscall(SYS_gettid)) return ours;
  const auto* uc = static_cast<const ucontext_t*>(ucv);
  uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  // On the asked fiber's stack with its TCB current: between a switch's FS
  // write and its jump, one of the two still belongs to the other fiber.
  bool on_fiber = tl_fiber == g_req.fiber && sp >= g_req.lo && sp < g_req.hi;
  int expected = kAsked;
  if (!g_req.state.compare_exchange_strong(expected, on_fiber ? kCopying : kRefused, std::memory_order_acq_rel)) return ours;
  if (on_fiber) {
    Capture* out = g_req.out;
    fill_from_ucontext(uc, out);
    size_t n = g_req.hi - sp < kStackCopy ? g_req.hi - sp : kStackCopy;
    out->copy_lo = sp;
    out->copy_len = copy_own(out->copy, sp, n);
    // Pairs with capture_running's acquire load.
    g_req.state.store(kDone, std::memory_order_release);
  }
  return ours;
}

// ---- the requester's side -----------------------------------------------------------------

uint64_t spurious_eintr() { return g_spurious_eintr.load(std::memory_order_relaxed); }

bool capture_running(const void* fiber, int tid, uintptr_t lo, uintptr_t hi, Capture* out, int timeout_ms) {
  int64_t deadline = mono_ms() + timeout_ms;
  uint64_t eintr_before = spurious_eintr();
  while (!g_req_lock.try_lock()) {
    if (mono_ms() > deadline) return false;
    sleep_us(500);
  }
  g_req.tid = tid;
  g_req.fiber = fiber;
  g_req.lo = lo;
  g_req.hi = hi;
  g_req.out = out;
  // Pairs with on_marker's acquire load: the fields above are seen with it.
  g_req.state.store(kAsked, std::memory_order_release);
  long pid = raw_syscall(SYS_getpid);
  siginfo_t si{};
  si.si_signo = SIGURG;
  si.si_code = SI_QUEUE;
  si.si_pid = static_cast<pid_t>(pid);
  si.si_uid = static_cast<uid_t>(raw_syscall(SYS_getuid));
  si.si_value.sival_ptr = &g_dump_magic;
  int st = kAsked;
  if (raw_syscall(SYS_rt_tgsigqueueinfo, pid, tid, SIGURG, reinterpret_cast<long>(&si)) == 0) {
    for (long us = 50;; us = us < 2000 ? us * 2 : us) {
      st = g_req.state.load(std::memory_order_acquire);
      if (st == kDone || st == kRefused || mono_ms() > deadline) break;
      sleep_us(us);
    }
  }
  if (st == kAsked) {
    // Gave up; a handler that already took the request finishes its copy.
    int expected = kAsked;
    if (!g_req.state.compare_exchange_strong(expected, kIdle, std::memory_order_acq_rel)) {
      while ((st = g_req.state.load(std::memory_order_acquire)) == kCopying) sleep_us(50);
    }
  }
  g_req.state.store(kIdle, std::memory_order_relaxed);
  g_req_lock.unlock();
  if (spurious_eintr() != eintr_before) {
    // Detected, not prevented: say so where the operator looks (README,
    // Limitations; counted as dump_spurious_eintr in the stats).
    LOG_WARN("unblock-ctl dump: reading the stack of OS thread %d interrupted a system call of the program, "
             "which returned EINTR", tid);
  }
  return st == kDone;
}

bool capture_blocked(int tid, Capture* out) {
  char a[256], b[256];
  if (read_task_syscall(tid, a, sizeof a) <= 0 || !strncmp(a, "running", 7)) return false;
  // The last two fields: sp and pc.
  char* last = strrchr(a, ' ');
  if (!last) return false;
  uintptr_t pc = strtoul(last + 1, nullptr, 16);
  char* p = last;
  while (p > a && p[-1] != ' ') --p;
  uintptr_t sp = strtoul(p, nullptr, 16);
  if (!sp || !pc) return false;
  memset(out->regs, 0, sizeof out->regs);
  out->regs[7] = sp;
  out->regs[16] = pc;
  out->all_regs = false;
  out->copy_lo = sp;
  out->copy_len = copy_own(out->copy, sp, kStackCopy);
  // Still in the same call at the same place: the copy is of one instant.
  return read_task_syscall(tid, b, sizeof b) > 0 && strcmp(a, b) == 0;
}

bool main_stack_bounds(uintptr_t* lo, uintptr_t* hi) {
  long fd = raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/maps"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];  // on the caller's stack: the monitor and the control thread may both read
  char line[512];
  size_t len = 0;
  bool found = false;
  for (;;) {
    long n = raw_syscall(SYS_read, fd, reinterpret_cast<long>(buf), sizeof buf);
    if (n <= 0) break;
    for (long i = 0; i < n && !found; ++i) {
      if (buf[i] != '\n') {
        if (len < sizeof line - 1) line[len++] = buf[i];
        continue;
      }
      line[len] = 0;
      len = 0;
      if (strstr(line, "[stack]")) {
        char* end = nullptr;
        *lo = strtoul(line, &end, 16);
        *hi = strtoul(end + 1, nullptr, 16);
        found = *hi > *lo;
      }
    }
    if (found) break;
  }
  raw_syscall(SYS_close, fd);
  return found;
}

namespace {
// 1: private expedited (IPIs to the CPUs running our threads, ~tens of us);
// 2: global (waits for every CPU to schedule, milliseconds); -1: none.
std::atomic<int> g_barrier_mode{0};
}  // namespace

void prepare_runnable_barrier() {
  int m = g_barrier_mode.load(std::memory_order_acquire);
  if (m == 0) {
    long q = raw_syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (q > 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        raw_syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0) {
      m = 1;
    } else if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL)) {
      m = 2;
    } else {
      m = -1;
    }
    g_barrier_mode.store(m, std::memory_order_release);
  }
}

bool runnable_barrier() {
  int m = g_barrier_mode.load(std::memory_order_acquire);
  if (m == 1) return raw_syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
  if (m == 2) return raw_syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0;
  return false;
}

// ---- unwinding ----------------------------------------------------------------------------

bool StackSession::open() {
  if (tried_) return dwfl_ != nullptr;
  tried_ = true;
  if (!dw_loaded()) return false;
  Dwfl* d = g_dw.begin(&g_dw.callbacks);
  if (!d) return false;
  pid_t pid = static_cast<pid_t>(raw_syscall(SYS_getpid));
  if (g_dw.proc_report(d, pid) != 0 || g_dw.report_end(d, nullptr, nullptr) != 0) {
    g_dw.end(d);
    return false;
  }
  dwfl_ = d;
  attached_ = g_dw.attach_state(d, nullptr, pid, &g_dw.thread_callbacks, this);
  return true;
}

StackSession::~StackSession() {
  if (dwfl_) g_dw.end(static_cast<Dwfl*>(dwfl_));
}

int StackSession::unwind(const Capture& c, uintptr_t* out, int max) {
  if (!open() || !attached_ || max <= 0) return 0;
  cur_ = &c;
  out_ = out;
  n_ = 0;
  max_ = max;
  // The thread id is only a key for get_thread (any positive number).
  g_dw.getthread_frames(static_cast<Dwfl*>(dwfl_), 1, frame_cb, this);
  cur_ = nullptr;
  return n_;
}

void StackSession::append_line(uintptr_t ip, char* out, size_t cap) {
  if (!open()) return;
  Dwfl_Line* l = g_dw.getsrc(static_cast<Dwfl*>(dwfl_), frame_lookup_addr(ip));
  if (!l) return;
  int line = 0;
  const char* file = g_dw.lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr);
  if (!file || line <= 0) return;
  size_t n = strlen(out);
  if (n < cap) snprintf(out + n, cap - n, " %s:%d", file, line);
}

}  // namespace unblock::inspect
