#include "runtime/inspect.h"
#include "shim/real.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <link.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <ucontext.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/engine.h"
#include "runtime/fault.h"
#include "runtime/fiber.h"
#include "runtime/inspect_stacks.h"
#include "runtime/monitor.h"
#include "runtime/signals.h"
#include "runtime/scheduler.h"
#include "runtime/spinlock.h"
#include "shim/raw_syscall.h"

namespace unblock::inspect {

std::atomic<int64_t> g_park_clock{0};

// ---- Buffer -----------------------------------------------------------------------

Buffer::~Buffer() {
  if (data_) raw_syscall(SYS_munmap, reinterpret_cast<long>(data_), static_cast<long>(cap_));
}

bool Buffer::reserve(size_t n) {
  if (size_ + n <= cap_) return true;
  size_t cap = cap_ ? cap_ : 64 * 1024;
  while (cap < size_ + n) cap *= 2;
  long p = data_ ? raw_syscall(SYS_mremap, reinterpret_cast<long>(data_), static_cast<long>(cap_), static_cast<long>(cap),
                               MREMAP_MAYMOVE)
                 : raw_syscall(SYS_mmap, 0, static_cast<long>(cap), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p < 0 && p > -4096) return false;
  data_ = reinterpret_cast<char*>(p);
  cap_ = cap;
  return true;
}

void Buffer::append(const char* s, size_t n) {
  if (!reserve(n)) return;
  memcpy(data_ + size_, s, n);
  size_ += n;
}

void Buffer::puts(const char* s) { append(s, strlen(s)); }

void Buffer::printf(const char* fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  append(small, static_cast<size_t>(n) < sizeof small ? n : sizeof small - 1);
}

void Buffer::json_string(const char* s) {
  append("\"", 1);
  for (; *s; ++s) {
    unsigned char c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', static_cast<char>(c)};
      append(e, 2);
    } else if (c < 0x20) {
      printf("\\u%04x", c);
    } else {
      append(s, 1);
    }
  }
  append("\"", 1);
}

namespace {

// ---- reading the process's own memory and /proc without faulting -----------------------

// Copies n bytes at addr of this process; false if not mapped (an object
// freed since its waiter parked). process_vm_readv reports EFAULT instead
// of raising SIGSEGV.
bool peek(const void* addr, void* out, size_t n) {
  iovec local{out, n};
  iovec remote{const_cast<void*>(addr), n};
  long pid = raw_syscall(SYS_getpid);
  return raw_syscall(SYS_process_vm_readv, pid, reinterpret_cast<long>(&local), 1, reinterpret_cast<long>(&remote), 1,
                     0) == static_cast<long>(n);
}

// Reads a small /proc file into buf (NUL-terminated, trailing newline cut).
int read_small(const char* path, char* buf, int cap) {
  long fd = raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long n = raw_syscall(SYS_read, fd, reinterpret_cast<long>(buf), cap - 1);
  raw_syscall(SYS_close, fd);
  if (n < 0) return -1;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) --n;
  buf[n] = 0;
  return static_cast<int>(n);
}

const char* syscall_name(long nr) {
  switch (nr) {
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_readv: return "readv";
    case SYS_writev: return "writev";
    case SYS_pread64: return "pread64";
    case SYS_pwrite64: return "pwrite64";
    case SYS_openat: return "openat";
    case SYS_close: return "close";
    case SYS_poll: return "poll";
    case SYS_ppoll: return "ppoll";
    case SYS_select: return "select";
    case SYS_pselect6: return "pselect6";
    case SYS_epoll_wait: return "epoll_wait";
    case SYS_epoll_pwait: return "epoll_pwait";
    case SYS_nanosleep: return "nanosleep";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_futex: return "futex";
    case SYS_accept: return "accept";
    case SYS_accept4: return "accept4";
    case SYS_connect: return "connect";
    case SYS_recvfrom: return "recvfrom";
    case SYS_sendto: return "sendto";
    case SYS_recvmsg: return "recvmsg";
    case SYS_sendmsg: return "sendmsg";
    case SYS_wait4: return "wait4";
    case SYS_waitid: return "waitid";
    case SYS_flock: return "flock";
    case SYS_fcntl: return "fcntl";
    case SYS_fsync: return "fsync";
    case SYS_fdatasync: return "fdatasync";
    case SYS_io_uring_enter: return "io_uring_enter";
    case SYS_rt_sigtimedwait: return "rt_sigtimedwait";
    case SYS_rt_sigsuspend: return "rt_sigsuspend";
    case SYS_pause: return "pause";
    case SYS_sched_yield: return "sched_yield";
    case SYS_getdents64: return "getdents64";
    case SYS_splice: return "splice";
    case SYS_sendfile: return "sendfile";
    case SYS_msgrcv: return "msgrcv";
    case SYS_semop: return "semop";
    case SYS_semtimedop: return "semtimedop";
    default: return nullptr;
  }
}

// What an OS thread is doing now, from /proc/self/task/TID/syscall:
// "running", or the system call it sleeps in with its first argument.
void describe_task_syscall(int tid, char* out, size_t cap, uintptr_t* pc = nullptr) {
  char path[64], buf[256];
  if (pc) *pc = 0;
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
  if (read_small(path, buf, sizeof buf) <= 0) {
    snprintf(out, cap, "unknown");
    return;
  }
  if (!strncmp(buf, "running", 7)) {
    snprintf(out, cap, "running");
    return;
  }
  char* end = nullptr;
  long nr = strtol(buf, &end, 10);
  if (end == buf) {
    snprintf(out, cap, "%s", buf);
    return;
  }
  unsigned long arg0 = strtoul(end, nullptr, 16);
  if (pc) {
    // "nr a1 a2 a3 a4 a5 a6 sp pc": the last field.
    const char* last = strrchr(buf, ' ');
    if (last) *pc = strtoul(last + 1, nullptr, 16);
  }
  const char* name = syscall_name(nr);
  if (nr == SYS_futex) {
    snprintf(out, cap, "in system call futex 0x%lx", arg0);
  } else if (name) {
    snprintf(out, cap, "in system call %s(%ld, ...)", name, static_cast<long>(arg0));
  } else {
    snprintf(out, cap, "in system call %ld", nr);
  }
}

void format_addr(const sockaddr_storage& ss, socklen_t len, char* out, size_t cap) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
  } else if (ss.ss_family == AF_UNIX) {
    auto* a = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    if (n == 0) snprintf(out, cap, "unix:(unnamed)");
    else if (a->sun_path[0] == 0) snprintf(out, cap, "unix:@%.*s", static_cast<int>(n - 1), a->sun_path + 1);
    else snprintf(out, cap, "unix:%.*s", static_cast<int>(strnlen(a->sun_path, n)), a->sun_path);
  } else {
    snprintf(out, cap, "family %d", ss.ss_family);
  }
}

// "127.0.0.1:41000->127.0.0.1:5000" for a connected socket, the local
// address for a listening one, /proc/self/fd's link otherwise.
void describe_fd(int fd, char* out, size_t cap) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (raw_syscall(SYS_getsockname, fd, reinterpret_cast<long>(&local), reinterpret_cast<long>(&ll)) == 0) {
    char a[128], b[128];
    format_addr(local, ll, a, sizeof a);
    if (raw_syscall(SYS_getpeername, fd, reinterpret_cast<long>(&peer), reinterpret_cast<long>(&pl)) == 0) {
      format_addr(peer, pl, b, sizeof b);
      snprintf(out, cap, "%.120s->%.120s", a, b);
    } else {
      snprintf(out, cap, "%s", a);
    }
    return;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  long n = raw_syscall(SYS_readlinkat, AT_FDCWD, reinterpret_cast<long>(path), reinterpret_cast<long>(out),
                       static_cast<long>(cap - 1));
  if (n < 0) n = 0;
  out[n] = 0;
}

const char* io_op_name(int kind) {
  static const char* const kNames[] = {"read", "write", "readv", "writev", "recv", "send", "recvmsg", "sendmsg",
                                       "accept", "connect", "poll", "openat", "fsync", "close", "splice"};
  if (kind < 0 || kind >= static_cast<int>(sizeof kNames / sizeof kNames[0])) return "io";
  return kNames[kind];
}

// ---- the snapshot -----------------------------------------------------------------

enum class State : uint8_t { kRunning, kRunnable, kParked, kHandedOff, kExited };

const char* state_name(State s) {
  switch (s) {
    case State::kRunning: return "running";
    case State::kRunnable: return "runnable";
    case State::kParked: return "parked";
    case State::kHandedOff: return "handed off";
    case State::kExited: return "exited, not joined";
  }
  return "?";
}

constexpr int kMaxFrames = 32;

int64_t g_barrier_ns = 0;  // the last snapshot's longest membarrier (dump's header)
int64_t g_capture_ns = 0;  // its longest capture of a running or blocked thread (JSON)

// Where a thread's stack was read: its saved context (parked, or runnable
// and held), its carrier's registers at a marker (running), or /proc's sp
// and pc of an OS thread in a system call.
enum class StackFrom : uint8_t { kNone, kSaved, kMarker, kSyscall };

const char* stack_from_name(StackFrom f) {
  switch (f) {
    case StackFrom::kSaved: return "saved context";
    case StackFrom::kMarker: return "marker";
    case StackFrom::kSyscall: return "system call";
    case StackFrom::kNone: break;
  }
  return "none";
}
// Fibers per registry pass (see snapshot).
constexpr int kChunk = 128;

// ---- stacks: libunwind, loaded when the first dump asks -----------------------------

// dlopen'ed, not linked: a process that is never dumped never maps it.
struct Unwinder {
  bool tried = false;
  bool ok = false;
  int (*init_local)(unw_cursor_t*, unw_context_t*) = nullptr;
  int (*step)(unw_cursor_t*) = nullptr;
  int (*get_reg)(unw_cursor_t*, unw_regnum_t, unw_word_t*) = nullptr;
  int (*get_proc_name)(unw_cursor_t*, char*, size_t, unw_word_t*) = nullptr;
  uintptr_t own_base = 0;  // libunblock.so's load address and the end of its
  uintptr_t own_end = 0;   // last loaded segment: its frames are left out
};
Unwinder g_unw;
SpinLock g_unw_lock{LockRank::kInspectUnwinder};  // the first dump (control or signal thread) and a stall report (monitor) may race to load it

template <typename Fn>
bool sym(void* h, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(h, name));
  return *out != nullptr;
}

bool unwinder() {
  SpinGuard guard(g_unw_lock);
  if (g_unw.tried) return g_unw.ok;
  g_unw.tried = true;
  void* h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  g_unw.ok = sym(h, "_ULx86_64_init_local", &g_unw.init_local) && sym(h, "_ULx86_64_step", &g_unw.step) &&
             sym(h, "_ULx86_64_get_reg", &g_unw.get_reg) && sym(h, "_ULx86_64_get_proc_name", &g_unw.get_proc_name);
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&unwinder), &info)) {
    g_unw.own_base = reinterpret_cast<uintptr_t>(info.dli_fbase);
    dl_iterate_phdr(
        [](dl_phdr_info* pi, size_t, void*) -> int {
          if (pi->dlpi_addr != g_unw.own_base) return 0;
          for (int i = 0; i < pi->dlpi_phnum; ++i) {
            if (pi->dlpi_phdr[i].p_type != PT_LOAD) continue;
            uintptr_t end = pi->dlpi_addr + pi->dlpi_phdr[i].p_vaddr + pi->dlpi_phdr[i].p_memsz;
            if (end > g_unw.own_end) g_unw.own_end = end;
          }
          return 1;
        },
        nullptr);
  }
  return g_unw.ok;
}

// One comparison per frame: dladdr would take the loader's lock each time.
bool own_frame(uintptr_t ip) {
  ip = frame_addr(ip);
  return ip > g_unw.own_base && ip <= g_unw.own_end;
}

// Unwinds a context saved by jump_fcontext (Boost.Context, x86-64 SysV):
// at ctx: mxcsr/x87 control word, r12, r13, r14, r15, rbx, rbp, then the
// return address; the stack pointer after the jump returns is ctx + 0x40.
// The fiber must be held (hold_parked) meanwhile. Keeps the program's frames.
int unwind_saved(const void* ctx, uintptr_t* out, int max) {
  const auto* saved = static_cast<const uint64_t*>(ctx);
  unw_context_t uc;
  memset(&uc, 0, sizeof uc);
  greg_t* g = uc.uc_mcontext.gregs;
  g[REG_R12] = static_cast<greg_t>(saved[1]);
  g[REG_R13] = static_cast<greg_t>(saved[2]);
  g[REG_R14] = static_cast<greg_t>(saved[3]);
  g[REG_R15] = static_cast<greg_t>(saved[4]);
  g[REG_RBX] = static_cast<greg_t>(saved[5]);
  g[REG_RBP] = static_cast<greg_t>(saved[6]);
  g[REG_RIP] = static_cast<greg_t>(saved[7]);
  g[REG_RSP] = static_cast<greg_t>(reinterpret_cast<uintptr_t>(ctx) + 0x40);
  unw_cursor_t cur;
  if (g_unw.init_local(&cur, &uc) < 0) return 0;
  int n = 0;
  for (int depth = 0; depth < 128 && n < max; ++depth) {
    unw_word_t ip = 0;
    if (g_unw.get_reg(&cur, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    if (!own_frame(ip)) out[n++] = ip;
    if (g_unw.step(&cur) <= 0) break;
  }
  return n;
}

// ---- file:line: libdw's Dwfl, loaded when the first dump asks ---------------------------

struct Lines {
  bool tried = false;
  bool ok = false;
  Dwfl* (*begin)(const Dwfl_Callbacks*) = nullptr;
  int (*proc_report)(Dwfl*, pid_t) = nullptr;
  int (*report_end)(Dwfl*, int (*)(Dwfl_Module*, void*, const char*, Dwarf_Addr, void*), void*) = nullptr;
  Dwfl_Line* (*getsrc)(Dwfl*, Dwarf_Addr) = nullptr;
  const char* (*lineinfo)(Dwfl_Line*, Dwarf_Addr*, int*, int*, Dwarf_Word*, Dwarf_Word*) = nullptr;
  void (*end)(Dwfl*) = nullptr;
  Dwfl_Callbacks callbacks{};
  char* debuginfo_path = nullptr;
  Dwfl* dwfl = nullptr;  // this dump's view of the process's objects
};
Lines g_lines;

bool lines_loaded() {
  if (g_lines.tried) return g_lines.ok;
  g_lines.tried = true;
  void* h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  g_lines.ok = sym(h, "dwfl_begin", &g_lines.begin) && sym(h, "dwfl_linux_proc_report", &g_lines.proc_report) &&
               sym(h, "dwfl_report_end", &g_lines.report_end) && sym(h, "dwfl_getsrc", &g_lines.getsrc) &&
               sym(h, "dwfl_lineinfo", &g_lines.lineinfo) && sym(h, "dwfl_end", &g_lines.end) &&
               sym(h, "dwfl_linux_proc_find_elf", &g_lines.callbacks.find_elf);
  // Only the debug information inside the mapped objects: the standard
  // search would also ask debuginfod servers (DEBUGINFOD_URLS) - network
  // access from inside the program, for a dump.
  g_lines.callbacks.find_debuginfo = [](Dwfl_Module*, void**, const char*, Dwarf_Addr, const char*, const char*, GElf_Word,
                                        char**) { return -1; };
  g_lines.callbacks.debuginfo_path = &g_lines.debuginfo_path;
  return g_lines.ok;
}

// Opens this dump's view (the objects mapped now); false without libdw.
bool lines_begin() {
  if (!lines_loaded()) return false;
  g_lines.dwfl = g_lines.begin(&g_lines.callbacks);
  if (!g_lines.dwfl) return false;
  if (g_lines.proc_report(g_lines.dwfl, static_cast<pid_t>(raw_syscall(SYS_getpid))) != 0 ||
      g_lines.report_end(g_lines.dwfl, nullptr, nullptr) != 0) {
    g_lines.end(g_lines.dwfl);
    g_lines.dwfl = nullptr;
  }
  return g_lines.dwfl != nullptr;
}

void lines_end() {
  if (g_lines.dwfl) g_lines.end(g_lines.dwfl);
  g_lines.dwfl = nullptr;
}

// " file.c:73" for a return address, or nothing without debug information.
void append_line(uintptr_t ip, char* out, size_t cap) {
  if (!g_lines.dwfl) return;
  Dwfl_Line* l = g_lines.getsrc(g_lines.dwfl, frame_lookup_addr(ip));
  if (!l) return;
  int line = 0;
  const char* file = g_lines.lineinfo(l, nullptr, &line, nullptr, nullptr, nullptr);
  if (!file || line <= 0) return;
  size_t n = strlen(out);
  if (n < cap) snprintf(out + n, cap - n, " %s:%d", file, line);
}

// "function+0x1a (object)" for a frame address (inspect_stacks.h).
void symbol_name(uintptr_t frame, char* out, size_t cap) {
  uintptr_t ip = frame_addr(frame), at = frame_lookup_addr(frame);
  Dl_info info{};
  bool have_obj = dladdr(reinterpret_cast<void*>(at), &info);
  const char* obj = have_obj && info.dli_fname ? strrchr(info.dli_fname, '/') : nullptr;
  obj = obj ? obj + 1 : (have_obj && info.dli_fname ? info.dli_fname : "?");
  char name[256];
  unw_word_t off = 0;
  // libunwind reads the object's full symbol table (static functions too);
  // a cursor whose only register is the address is enough for that.
  unw_context_t uc;
  memset(&uc, 0, sizeof uc);
  uc.uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(at);
  uc.uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(reinterpret_cast<uintptr_t>(&uc));
  unw_cursor_t cur;
  if (g_unw.ok && g_unw.init_local(&cur, &uc) >= 0 && g_unw.get_proc_name(&cur, name, sizeof name, &off) == 0) {
    snprintf(out, cap, "%s+0x%lx (%s)", name, static_cast<unsigned long>(off + (ip - at)), obj);
  } else if (have_obj && info.dli_sname) {
    snprintf(out, cap, "%s+0x%lx (%s)", info.dli_sname, static_cast<unsigned long>(ip - reinterpret_cast<uintptr_t>(info.dli_saddr)), obj);
  } else {
    snprintf(out, cap, "0x%lx (%s+0x%lx)", static_cast<unsigned long>(ip), obj,
             static_cast<unsigned long>(ip - reinterpret_cast<uintptr_t>(info.dli_fbase)));
  }
}

// "function+0x1a (object) file.c:73" for a return address, during a dump.
void symbolize(uintptr_t ip, char* out, size_t cap) {
  symbol_name(ip, out, cap);
  append_line(ip, out, cap);
}

// One fiber's fields, copied under the registry lock.
struct Snap {
  int tid;
  int worker;
  int carrier_tid;
  State state;
  WaitReason reason;
  uint8_t wait_op;
  bool is_main;
  bool detached;
  const void* wait_obj;
  int64_t wait_arg;
  int64_t wait_since;
  Deadline deadline;
  char name[16];
  // Running or handed off: the fiber (an identity for the marker's handler,
  // never dereferenced after the snapshot) and its stack's bounds.
  const void* fiber;
  uintptr_t stack_lo, stack_hi;
  StackFrom stack_from;
  uint8_t nframes;  // program frames (the library's own are left out)
  uintptr_t frames[kMaxFrames];
};

struct Collect {
  Snap* snaps;
  long cap;
  long count;
  long missed;
  // This chunk's parked and runnable fibers held for unwinding, and their
  // snapshots. A runnable one is held by Fiber::dump_hold (sched::hold_parked
  // describes both ways); `runnable` says which.
  Fiber* held[kChunk];
  Snap* held_snap[kChunk];
  bool runnable[kChunk];
  int nheld;
  int64_t barrier_ns;  // the longest membarrier (confirm_runnable_holds)
};

// The end of a chunk, still under the registry lock (so every fiber in it
// is alive): a runnable fiber marked with dump_hold is held if it is still
// kRunnable after the barrier - from then on begin_run sees the mark and
// puts it back in its run queue; one that began running meanwhile is let go.
void confirm_runnable_holds(Collect* c) {
  bool any = false;
  for (int i = 0; i < c->nheld; ++i) any |= c->runnable[i];
  if (!any) return;
  timespec a, b;
  real::clock_gettime(CLOCK_MONOTONIC, &a);
  bool ordered = runnable_barrier();
  real::clock_gettime(CLOCK_MONOTONIC, &b);
  int64_t ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
  if (ns > c->barrier_ns) c->barrier_ns = ns;
  for (int i = 0; i < c->nheld; ++i) {
    Fiber* f = c->held[i];
    if (!c->runnable[i] || !f) continue;
    if (ordered && f->run_state.load(std::memory_order_acquire) == static_cast<int>(RunState::kRunnable)) continue;
    f->dump_hold.store(false, std::memory_order_release);
    c->held[i] = nullptr;
  }
}

void collect_cb(Fiber* f, void* arg) {
  auto* c = static_cast<Collect*>(arg);
  if (!f) {
    confirm_runnable_holds(c);
    return;
  }
  if (c->count == c->cap) {
    ++c->missed;
    return;
  }
  Snap& s = c->snaps[c->count++];
  int rs = f->run_state.load(std::memory_order_acquire);
  s.tid = f->tid;
  s.worker = f->worker ? f->worker->index : -1;
  s.carrier_tid = 0;
  s.is_main = f->is_main;
  s.detached = f->join_state.load(std::memory_order_relaxed) == kDetached;
  s.reason = f->reason;
  s.wait_op = f->wait_op;
  s.wait_obj = f->wait_obj;
  s.wait_arg = f->wait_arg;
  s.wait_since = f->wait_since;
  // The park's deadline lives in its frame while it is parked (and the
  // stack stays mapped while the fiber lives): copied, not trusted beyond.
  if (const Deadline* d = f->wait_deadline) s.deadline = *d;
  else s.deadline = Deadline::never();
  // An unnamed thread has its process's name, as pthread_getname_np says.
  strncpy(s.name, f->name[0] ? f->name : program_invocation_short_name, sizeof s.name - 1);
  s.name[15] = 0;
  s.nframes = 0;
  s.stack_from = StackFrom::kNone;
  s.fiber = f;
  s.stack_lo = f->region.base ? reinterpret_cast<uintptr_t>(f->region.stack_low()) : 0;
  s.stack_hi = f->region.base ? reinterpret_cast<uintptr_t>(f->region.top()) : 0;
  switch (static_cast<RunState>(rs)) {
    case RunState::kRunnable:
      s.state = State::kRunnable;
      // Marked here, held only if still runnable after the barrier (confirm_runnable_holds).
      if (g_unw.ok && c->nheld < kChunk && !f->dump_hold.load(std::memory_order_relaxed)) {
        f->dump_hold.store(true, std::memory_order_relaxed);
        c->runnable[c->nheld] = true;
        c->held[c->nheld] = f;
        c->held_snap[c->nheld++] = &s;
      }
      break;
    case RunState::kParked:
      s.state = State::kParked;
      if (g_unw.ok && c->nheld < kChunk && sched::hold_parked(f)) {
        c->runnable[c->nheld] = false;
        c->held[c->nheld] = f;
        c->held_snap[c->nheld++] = &s;
      }
      break;
    case RunState::kDone: s.state = State::kExited; break;
    case RunState::kRunning: {
      s.state = State::kRunning;
      Carrier* car = f->carrier;
      if (car) {
        s.carrier_tid = car->tid;
        // The worker's owner is another carrier: the monitor handed the
        // worker away while this fiber kept its OS thread in the program's code.
        uint64_t owner = f->worker ? f->worker->owner_state.load(std::memory_order_relaxed) : 0;
        if (f->worker && static_cast<int>(owner >> 1) - 1 != car->index) s.state = State::kHandedOff;
      }
      break;
    }
  }
}

// The program's frames of a capture (the library's own left out).
int program_frames(StackSession* session, const Capture& cap, uintptr_t* out, int max) {
  uintptr_t all[kMaxFrames * 2];
  int n = session->unwind(cap, all, kMaxFrames * 2);
  int k = 0;
  for (int i = 0; i < n && k < max; ++i) {
    if (!own_frame(all[i])) out[k++] = all[i];
  }
  return k;
}

// Stacks of the threads that run (on their worker, or handed off): a
// thread in a system call is read from /proc (never signalled: the call
// would see EINTR), a thread in the program's code through the marker.
// Its carrier's /proc entry is read first; a thread that enters a system
// call between that read and the marker is the one case a marker can
// still interrupt a call (docs/DESIGN.md, 11a). Control thread.
void capture_active(Snap* snaps, long n) {
  static Capture cap;
  StackSession session;
  uintptr_t main_lo = 0, main_hi = 0;
  bool main_known = false;
  for (long i = 0; i < n; ++i) {
    Snap& s = snaps[i];
    if ((s.state != State::kRunning && s.state != State::kHandedOff) || s.carrier_tid <= 0) continue;
    char what[160];
    timespec t0, t1;
    real::clock_gettime(CLOCK_MONOTONIC, &t0);
    describe_task_syscall(s.carrier_tid, what, sizeof what);
    StackFrom from = StackFrom::kNone;
    if (strcmp(what, "running") != 0) {
      if (capture_blocked(s.carrier_tid, &cap)) from = StackFrom::kSyscall;
    } else {
      if (!s.stack_hi && !main_known) main_known = main_stack_bounds(&main_lo, &main_hi);
      uintptr_t lo = s.stack_hi ? s.stack_lo : main_lo, hi = s.stack_hi ? s.stack_hi : main_hi;
      if (hi && capture_running(s.fiber, s.carrier_tid, lo, hi, &cap, 200)) from = StackFrom::kMarker;
    }
    real::clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
    if (ns > g_capture_ns) g_capture_ns = ns;
    if (from == StackFrom::kNone) continue;
    s.nframes = static_cast<uint8_t>(program_frames(&session, cap, s.frames, kMaxFrames));
    s.stack_from = s.nframes ? from : StackFrom::kNone;
  }
}

// The stack of a plain OS thread of the program that sleeps in a system
// call (never signalled), or 0 frames. Control thread.
int blocked_thread_stack(int tid, StackSession* session, uintptr_t* out) {
  static Capture cap;
  if (!g_unw.ok || !capture_blocked(tid, &cap)) return 0;
  return program_frames(session, cap, out, kMaxFrames);
}

int compare_tid(const void* a, const void* b) {
  return static_cast<const Snap*>(a)->tid - static_cast<const Snap*>(b)->tid;
}


// Takes the snapshot in chunks of kChunk fibers: the registry lock is held
// while a chunk's fields are copied and its parked fibers are held; then,
// with the lock released, their stacks are unwound and each is let go. A
// fiber is held at most one chunk's unwinding (~a millisecond); the
// longest single lock hold is reported. Fibers created meanwhile may be
// missed or seen twice (duplicates are dropped).
long snapshot(Snap** out, long* cap_out, long* missed, int64_t* held_ns) {
  long cap = sched::live_fibers() + 256;
  *cap_out = cap;
  size_t bytes = static_cast<size_t>(cap) * sizeof(Snap);
  long p = raw_syscall(SYS_mmap, 0, static_cast<long>(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p < 0 && p > -4096) return -1;
  if (unwinder()) prepare_runnable_barrier();
  static Collect c;
  c.snaps = reinterpret_cast<Snap*>(p);
  c.cap = cap;
  c.count = 0;
  c.missed = 0;
  c.barrier_ns = 0;
  *held_ns = 0;
  for (long skip = 0;;) {
    c.nheld = 0;
    timespec a, b;
    real::clock_gettime(CLOCK_MONOTONIC, &a);
    long visited = sched::for_some_fibers(skip, kChunk, collect_cb, &c);
    real::clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
    if (ns > *held_ns) *held_ns = ns;
    for (int i = 0; i < c.nheld; ++i) {
      Fiber* f = c.held[i];
      if (!f) continue;  // a runnable fiber that began running before the barrier
      Snap* s = c.held_snap[i];
      s->nframes = static_cast<uint8_t>(unwind_saved(f->ctx, s->frames, kMaxFrames));
      s->stack_from = StackFrom::kSaved;
      // The scheduler may resume it again (begin_run reads the flag; the
      // dump wrote nothing the fiber reads).
      if (c.runnable[i]) f->dump_hold.store(false, std::memory_order_relaxed);
      else sched::release_hold(f);
    }
    skip += visited;
    if (visited < kChunk) break;
  }
  // Drop duplicates (a fiber seen in two chunks).
  qsort(c.snaps, static_cast<size_t>(c.count), sizeof(Snap), compare_tid);
  long n = 0;
  for (long i = 0; i < c.count; ++i) {
    if (n == 0 || c.snaps[n - 1].tid != c.snaps[i].tid) c.snaps[n++] = c.snaps[i];
  }
  g_capture_ns = 0;
  if (g_unw.ok) capture_active(c.snaps, n);
  *out = c.snaps;
  *missed = c.missed;
  g_barrier_ns = c.barrier_ns;
  return n;
}

// The kind of wait, without the object: threads with equal kinds form a group.
void describe_kind(const Snap& s, char* out, size_t cap) {
  switch (s.state) {
    case State::kRunning: snprintf(out, cap, "running on worker %d", s.worker); return;
    case State::kRunnable: snprintf(out, cap, "runnable on worker %d", s.worker); return;
    case State::kHandedOff: snprintf(out, cap, "handed off to an OS thread"); return;
    case State::kExited: snprintf(out, cap, "exited, not joined"); return;
    case State::kParked: break;
  }
  const char* what = nullptr;
  switch (s.reason) {
    case WaitReason::kIo:
      if (s.wait_op >= kWaitIoBase) what = io_op_name(s.wait_op - kWaitIoBase);
      else if (s.wait_op == kWaitPoll) what = "poll";
      else if (s.wait_op == kWaitFault) what = "injected fault";
      else what = "io";
      break;
    case WaitReason::kSignal: what = s.wait_op == kWaitSigwait ? "sigwait" : "sigsuspend"; break;
    case WaitReason::kCond: what = "cond"; break;
    case WaitReason::kSemaphore: what = "sem"; break;
    default: what = wait_reason_name(s.reason); break;
  }
  snprintf(out, cap, "parked: %s", what);
}

// A lock's address and, when its owner word (at `owner_off` in the lock,
// read without faulting) names a thread, "<verb> by thread N".
size_t describe_lock(const void* obj, size_t owner_off, const char* verb, char* out, size_t cap) {
  int owner = 0;
  if (obj && peek(static_cast<const char*>(obj) + owner_off, &owner, sizeof owner) && owner != 0) {
    return static_cast<size_t>(snprintf(out, cap, "%p %s by thread %d", obj, verb, owner));
  }
  return static_cast<size_t>(snprintf(out, cap, "%p", obj));
}

// The object: "fd=7 127.0.0.1:41000->127.0.0.1:5000", "0x... held by thread 12", ...
void describe_object(const Snap& s, int64_t now, char* out, size_t cap) {
  out[0] = 0;
  if (s.state == State::kHandedOff) {
    describe_task_syscall(s.carrier_tid, out, cap);
    return;
  }
  if (s.state != State::kParked) return;
  size_t n = 0;
  switch (s.reason) {
    case WaitReason::kIo:
      if (s.wait_op >= kWaitIoBase) {
        char d[256];
        describe_fd(static_cast<int>(s.wait_arg), d, sizeof d);
        n = snprintf(out, cap, "fd=%d %s", static_cast<int>(s.wait_arg), d);
      } else if (s.wait_op == kWaitPoll) {
        n = snprintf(out, cap, "%ld fds", static_cast<long>(s.wait_arg));
      }
      break;
    case WaitReason::kMutex:
      // glibc's pthread_mutex_t: __owner at offset 8 (runtime/sync.h).
      n = describe_lock(s.wait_obj, offsetof(pthread_mutex_t, __data.__owner), "held", out, cap);
      break;
    case WaitReason::kRwlock:
      n = describe_lock(s.wait_obj, offsetof(pthread_rwlock_t, __data.__cur_writer), "write-locked", out, cap);
      break;
    case WaitReason::kJoin: n = snprintf(out, cap, "thread %ld", static_cast<long>(s.wait_arg)); break;
    case WaitReason::kSleep: break;
    case WaitReason::kSignal: break;
    default:
      if (s.wait_obj) n = snprintf(out, cap, "%p", s.wait_obj);
      break;
  }
  if (n >= cap) n = cap - 1;
  if (!s.deadline.infinite) {
    int64_t left = s.deadline.remaining_ns();
    snprintf(out + n, cap - n, "%s%.1f s left", n ? ", " : "", left > 0 ? left / 1e9 : 0.0);
  }
  (void)now;
}

int compare_groups(const void* a, const void* b) {
  auto* x = static_cast<const Snap*>(a);
  auto* y = static_cast<const Snap*>(b);
  if (x->state != y->state) return static_cast<int>(x->state) - static_cast<int>(y->state);
  // A thread that is not parked keeps the reason of its last park: not part of its group.
  if (x->state != State::kParked) return x->worker != y->worker ? x->worker - y->worker : x->tid - y->tid;
  if (x->reason != y->reason) return static_cast<int>(x->reason) - static_cast<int>(y->reason);
  if (x->wait_op != y->wait_op) return x->wait_op - y->wait_op;
  if (x->state != State::kParked && x->worker != y->worker) return x->worker - y->worker;
  if (x->nframes != y->nframes) return x->nframes - y->nframes;
  for (int i = 0; i < x->nframes; ++i) {
    if (x->frames[i] != y->frames[i]) return x->frames[i] < y->frames[i] ? -1 : 1;
  }
  return x->tid - y->tid;
}

bool same_kind(const Snap& x, const Snap& y) {
  if (x.state != y.state) return false;
  if (x.state != State::kParked) return x.worker == y.worker;
  return x.reason == y.reason && x.wait_op == y.wait_op;
}

// Symbol names by address, each looked up once per dump.
class SymCache {
 public:
  const char* get(uintptr_t ip) {
    if (!slots_) {
      long p = raw_syscall(SYS_mmap, 0, kSlots * sizeof(Slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p < 0 && p > -4096) return fallback(ip);
      slots_ = reinterpret_cast<Slot*>(p);
    }
    size_t h = (ip * 0x9E3779B97F4A7C15ull) >> 51;  // 13 bits
    for (size_t i = 0; i < kSlots; ++i) {
      Slot& s = slots_[(h + i) & (kSlots - 1)];
      if (s.ip == ip) return names_.data() + s.off;
      if (s.ip == 0) {
        if (used_ * 4 > kSlots * 3) return fallback(ip);
        char buf[320];
        symbolize(ip, buf, sizeof buf);
        s.ip = ip;
        s.off = names_.size();
        names_.append(buf, strlen(buf) + 1);
        ++used_;
        return names_.data() + s.off;
      }
    }
    return fallback(ip);
  }
  ~SymCache() {
    if (slots_) raw_syscall(SYS_munmap, reinterpret_cast<long>(slots_), kSlots * sizeof(Slot));
  }

 private:
  static constexpr size_t kSlots = 8192;
  struct Slot {
    uintptr_t ip;
    size_t off;
  };
  const char* fallback(uintptr_t ip) {
    symbolize(ip, tmp_, sizeof tmp_);
    return tmp_;
  }
  Slot* slots_ = nullptr;
  size_t used_ = 0;
  Buffer names_;
  char tmp_[320];
};

// Same state, same wait kind, same stack: one group (pprof's debug=1).
bool same_group(const Snap& x, const Snap& y) {
  return same_kind(x, y) && x.nframes == y.nframes && memcmp(x.frames, y.frames, x.nframes * sizeof(uintptr_t)) == 0;
}

// The library's own OS threads and the program's plain ones, from /proc/self/task.
struct Task {
  int tid;
  const char* role;  // "carrier N" etc.; nullptr: a plain thread of the program
  int carrier;       // carrier index or -1
  char name[16];
};

int list_tasks(Task* tasks, int cap) {
  long dfd = raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>("/proc/self/task"),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 0;
  int count = 0;
  char buf[4096];
  for (;;) {
    long n = raw_syscall(SYS_getdents64, dfd, reinterpret_cast<long>(buf), sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      if (d->d_name[0] < '0' || d->d_name[0] > '9' || count == cap) continue;
      Task& t = tasks[count++];
      t.tid = atoi(d->d_name);
      t.role = nullptr;
      t.carrier = -1;
      char path[64];
      snprintf(path, sizeof path, "/proc/self/task/%d/comm", t.tid);
      if (read_small(path, t.name, sizeof t.name) < 0) t.name[0] = 0;
      for (int i = 0; i < sched::carrier_count(); ++i) {
        Carrier* c = sched::carrier_at(i);
        if (c && c->tid == t.tid) {
          t.role = "carrier";
          t.carrier = i;
        }
      }
      if (!t.role && t.tid == monitor::thread_id()) t.role = "monitor";
      if (!t.role && t.tid == signals::signal_thread_id()) t.role = "signal thread";
      if (!t.role && t.tid == static_cast<int>(raw_syscall(SYS_gettid))) t.role = "control thread";
      if (!t.role && !strcmp(t.name, "unblock-faults")) t.role = "fault control (fiu-ctrl)";
    }
  }
  raw_syscall(SYS_close, dfd);
  return count;
}

// "driving worker 0", "spare", or "handed off worker 0 (runs one thread in the program's code)".
void carrier_role(int index, char* out, size_t cap) {
  Carrier* c = sched::carrier_at(index);
  Worker* w = c ? c->worker : nullptr;
  if (!w) {
    snprintf(out, cap, "spare");
    return;
  }
  uint64_t owner = w->owner_state.load(std::memory_order_relaxed);
  if (static_cast<int>(owner >> 1) - 1 == index) snprintf(out, cap, "driving worker %d", w->index);
  else snprintf(out, cap, "gave worker %d away (keeps one thread in the program's code)", w->index);
}

void json_snap(Buffer* out, const Snap& s, int64_t now, SymCache* syms) {
  char kind[96], obj[384];
  describe_kind(s, kind, sizeof kind);
  describe_object(s, now, obj, sizeof obj);
  out->printf("{\"id\":%d,\"name\":", s.tid);
  out->json_string(s.name);
  out->printf(",\"main\":%s,\"state\":\"%s\",\"worker\":%d", s.is_main ? "true" : "false", state_name(s.state), s.worker);
  if (s.state == State::kParked) {
    const char* what = strchr(kind, ':') ? strchr(kind, ':') + 2 : kind;
    out->printf(",\"wait\":\"%s\",\"reason\":\"%s\",\"object\":", what, wait_reason_name(s.reason));
    out->json_string(obj);
    if (s.wait_obj) out->printf(",\"address\":\"%p\"", s.wait_obj);
    if (s.wait_op >= kWaitIoBase || s.wait_op == kWaitPoll) out->printf(",\"%s\":%ld", s.wait_op == kWaitPoll ? "nfds" : "fd", static_cast<long>(s.wait_arg));
    if (s.reason == WaitReason::kJoin) out->printf(",\"joins\":%ld", static_cast<long>(s.wait_arg));
    out->printf(",\"waited_s\":%.3f", (now - s.wait_since) / 1e9);
    if (!s.deadline.infinite) out->printf(",\"left_s\":%.3f", s.deadline.remaining_ns() / 1e9);
  } else if (s.state == State::kHandedOff || s.state == State::kRunning) {
    out->printf(",\"os_thread\":%d", s.carrier_tid);
    if (s.state == State::kHandedOff) {
      out->puts(",\"syscall\":");
      out->json_string(obj);
    }
  }
  if (s.nframes) {
    out->printf(",\"stack_from\":\"%s\"", stack_from_name(s.stack_from));
    out->puts(",\"stack\":[");
    for (int i = 0; i < s.nframes; ++i) {
      if (i) out->puts(",");
      out->json_string(syms->get(s.frames[i]));
    }
    out->puts("]");
  }
  out->puts("}");
}

const char* fmt_duration(int64_t ns, char* buf, size_t cap) {
  double s = ns / 1e9;
  if (s < 1) snprintf(buf, cap, "%.0f ms", s * 1e3);
  else if (s < 60) snprintf(buf, cap, "%.1f s", s);
  else if (s < 3600) snprintf(buf, cap, "%.1f min", s / 60);
  else snprintf(buf, cap, "%.1f h", s / 3600);
  return buf;
}

}  // namespace

void dump(Buffer* out, bool json) {
  Snap* snaps = nullptr;
  long missed = 0;
  int64_t held = 0;
  long cap_for_unmap = 0;
  timespec t0, t1;
  real::clock_gettime(CLOCK_MONOTONIC, &t0);
  long n = snapshot(&snaps, &cap_for_unmap, &missed, &held);
  real::clock_gettime(CLOCK_MONOTONIC, &t1);
  double snap_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  if (n < 0) {
    out->puts(json ? "{\"error\":\"out of memory\"}\n" : "error: out of memory\n");
    return;
  }
  int64_t now = coarse_now_ns();
  SymCache syms;
  StackSession session;  // plain OS threads' stacks
  if (g_unw.ok) lines_begin();
  qsort(snaps, static_cast<size_t>(n), sizeof(Snap), compare_groups);
  static Task tasks[1024];
  int ntasks = list_tasks(tasks, 1024);
  long pid = raw_syscall(SYS_getpid);
  long counts[5] = {};
  for (long i = 0; i < n; ++i) ++counts[static_cast<int>(snaps[i].state)];
  int plain = 0;
  for (int i = 0; i < ntasks; ++i) plain += tasks[i].role == nullptr;

  if (json) {
    out->printf("{\"pid\":%ld,\"threads\":%ld,\"missed\":%ld,\"registry_held_us\":%.1f,\"membarrier_us\":%.1f,\"capture_us\":%.1f,"
                "\"snapshot_ms\":%.1f,\"stacks\":%s,"
                "\"workers\":%d,\"summary\":{",
                pid, n, missed, held / 1e3, g_barrier_ns / 1e3, g_capture_ns / 1e3, snap_ms, g_unw.ok ? "true" : "false",
                sched::worker_count());
    for (int s = 0; s < 5; ++s) out->printf("%s\"%s\":%ld", s ? "," : "", state_name(static_cast<State>(s)), counts[s]);
    out->printf(",\"plain OS thread\":%d},\"fibers\":[", plain);
    for (long i = 0; i < n; ++i) {
      if (i) out->puts(",\n");
      json_snap(out, snaps[i], now, &syms);
    }
    out->puts("],\"os_threads\":[");
    for (int i = 0; i < ntasks; ++i) {
      char what[128];
      describe_task_syscall(tasks[i].tid, what, sizeof what);
      out->printf("%s{\"tid\":%d,\"name\":", i ? ",\n" : "", tasks[i].tid);
      out->json_string(tasks[i].name);
      out->printf(",\"role\":\"%s\"", tasks[i].role ? tasks[i].role : "plain OS thread");
      if (tasks[i].carrier >= 0) {
        char role[96];
        carrier_role(tasks[i].carrier, role, sizeof role);
        out->printf(",\"carrier\":%d,\"carrier_state\":\"%s\"", tasks[i].carrier, role);
      }
      out->puts(",\"now\":");
      out->json_string(what);
      uintptr_t frames[kMaxFrames];
      int nf = tasks[i].role ? 0 : blocked_thread_stack(tasks[i].tid, &session, frames);
      if (nf) {
        out->puts(",\"stack_from\":\"system call\",\"stack\":[");
        for (int k = 0; k < nf; ++k) {
          if (k) out->puts(",");
          out->json_string(syms.get(frames[k]));
        }
        out->puts("]");
      }
      out->puts("}");
    }
    out->puts("]}\n");
  } else {
    out->printf("unblock dump of pid %ld: %ld threads on %d workers (snapshot %.1f ms, registry lock held at most %.0f us",
                pid, n + plain, sched::worker_count(), snap_ms, held / 1e3);
    if (g_barrier_ns) out->printf(", membarrier at most %.0f us", g_barrier_ns / 1e3);
    out->printf("%s)\n", g_unw.ok ? "" : ", no stacks: libunwind.so.8 not found");
    if (missed) out->printf("(%ld threads created during the dump are not shown)\n", missed);
    out->puts("summary:");
    for (int s = 0; s < 5; ++s) {
      if (counts[s]) out->printf(" %ld %s,", counts[s], state_name(static_cast<State>(s)));
    }
    out->printf(" %d plain OS threads\n", plain);
    // Parked threads by wait kind.
    out->puts("waiting:");
    for (long i = 0; i < n;) {
      long j = i + 1;
      while (j < n && same_kind(snaps[i], snaps[j])) ++j;
      if (snaps[i].state == State::kParked) {
        char kind[96];
        describe_kind(snaps[i], kind, sizeof kind);
        out->printf(" %ld %s,", j - i, kind + 8);
      }
      i = j;
    }
    out->puts("\n");
    for (long i = 0; i < n;) {
      long j = i + 1;
      while (j < n && same_group(snaps[i], snaps[j])) ++j;
      char kind[96];
      describe_kind(snaps[i], kind, sizeof kind);
      out->printf("\n%ld thread%s %s\n", j - i, j - i == 1 ? "" : "s", kind);
      for (int k = 0; k < snaps[i].nframes; ++k) out->printf("    #%d %s\n", k, syms.get(snaps[i].frames[k]));
      for (long k = i; k < j; ++k) {
        const Snap& s = snaps[k];
        char obj[384], d[32];
        describe_object(s, now, obj, sizeof obj);
        out->printf("  thread %d \"%s\"%s", s.tid, s.name[0] ? s.name : (s.is_main ? "main" : ""), s.is_main ? " (main)" : "");
        if (s.state == State::kParked) {
          const char* what = kind + 8;
          out->printf(": %s%s%s, %s", what, obj[0] ? " " : "", obj, fmt_duration(now - s.wait_since, d, sizeof d));
        } else if (s.state == State::kHandedOff) {
          out->printf(": on OS thread %d, %s", s.carrier_tid, obj);
        } else if (s.state == State::kRunning) {
          out->printf(": on OS thread %d", s.carrier_tid);
        }
        out->puts("\n");
      }
      i = j;
    }
    out->puts("\nOS threads:\n");
    for (int i = 0; i < ntasks; ++i) {
      char what[128];
      describe_task_syscall(tasks[i].tid, what, sizeof what);
      if (tasks[i].carrier >= 0) {
        char role[96];
        carrier_role(tasks[i].carrier, role, sizeof role);
        out->printf("  tid %d \"%s\" carrier %d %s: %s\n", tasks[i].tid, tasks[i].name, tasks[i].carrier, role, what);
      } else {
        out->printf("  tid %d \"%s\" %s: %s\n", tasks[i].tid, tasks[i].name,
                    tasks[i].role ? tasks[i].role : "plain OS thread", what);
        uintptr_t frames[kMaxFrames];
        int nf = tasks[i].role ? 0 : blocked_thread_stack(tasks[i].tid, &session, frames);
        for (int k = 0; k < nf; ++k) out->printf("    #%d %s\n", k, syms.get(frames[k]));
      }
    }
  }
  lines_end();
  raw_syscall(SYS_munmap, reinterpret_cast<long>(snaps), static_cast<long>(cap_for_unmap) * static_cast<long>(sizeof(Snap)));
}

// ---- stats --------------------------------------------------------------------------

namespace {

struct StateCount {
  long by_state[5];
  long by_reason[16];
};

void count_cb(Fiber* f, void* arg) {
  if (!f) return;
  auto* c = static_cast<StateCount*>(arg);
  int rs = f->run_state.load(std::memory_order_relaxed);
  switch (static_cast<RunState>(rs)) {
    case RunState::kRunnable: ++c->by_state[1]; break;
    case RunState::kParked:
      ++c->by_state[2];
      if (static_cast<int>(f->reason) < 16) ++c->by_reason[static_cast<int>(f->reason)];
      break;
    case RunState::kDone: ++c->by_state[4]; break;
    case RunState::kRunning: {
      Carrier* car = f->carrier;
      uint64_t owner = f->worker ? f->worker->owner_state.load(std::memory_order_relaxed) : 0;
      if (car && f->worker && static_cast<int>(owner >> 1) - 1 != car->index) ++c->by_state[3];
      else ++c->by_state[0];
      break;
    }
  }
}

}  // namespace

void stats(Buffer* out, bool json) {
  sched::Stats& st = sched::stats();
  StateCount sc{};
  sched::for_each_fiber(count_cb, &sc);
  int nw = sched::worker_count();
  uint64_t tot_sw = 0, tot_parks = 0, tot_enters = 0, tot_direct_sends = 0, tot_direct_sw = 0, tot_urgent = 0,
           tot_deferred = 0, tot_fs = 0;
  long inflight = 0;
  int busy = 0;
  for (int i = 0; i < nw; ++i) {
    Worker* w = sched::worker_at(i);
    tot_sw += w->switches.load(std::memory_order_relaxed);
    tot_parks += w->parks.load(std::memory_order_relaxed);
    tot_enters += w->engine.enters();
    tot_direct_sends += w->direct_sends.load(std::memory_order_relaxed);
    tot_direct_sw += w->direct_switches.load(std::memory_order_relaxed);
    tot_urgent += w->urgent_reaps.load(std::memory_order_relaxed);
    tot_deferred += w->reaps_deferred.load(std::memory_order_relaxed);
    tot_fs += w->fs_writes.load(std::memory_order_relaxed);
    inflight += w->engine.inflight() - 1;  // less the eventfd read always armed
    busy += !w->sleeping.load(std::memory_order_relaxed);
  }
  int carriers = sched::carrier_count();
  int spare = 0;
  for (int i = 0; i < carriers; ++i) {
    Carrier* c = sched::carrier_at(i);
    if (c && !c->worker) ++spare;
  }
  unsigned long faults_fired = 0;
  fault::for_each_rule([](const fault::Rule& r, void* arg) { *static_cast<unsigned long*>(arg) += r.fired.load(std::memory_order_relaxed); },
                       &faults_fired);
  struct Kv {
    const char* k;
    unsigned long v;
  } kv[] = {
      {"pid", static_cast<unsigned long>(raw_syscall(SYS_getpid))},
      {"workers", static_cast<unsigned long>(nw)},
      {"workers_busy", static_cast<unsigned long>(busy)},
      {"workers_idle", static_cast<unsigned long>(nw - busy)},
      {"threads", static_cast<unsigned long>(sched::live_fibers())},
      {"threads_running", static_cast<unsigned long>(sc.by_state[0])},
      {"threads_runnable", static_cast<unsigned long>(sc.by_state[1])},
      {"threads_parked", static_cast<unsigned long>(sc.by_state[2])},
      {"threads_handed_off", static_cast<unsigned long>(sc.by_state[3])},
      {"os_threads_carriers", static_cast<unsigned long>(carriers)},
      {"os_threads_spare", static_cast<unsigned long>(spare)},
      {"fibers_spawned", st.fibers_spawned.load()},
      {"fibers_exited", st.fibers_exited.load()},
      {"switches", tot_sw},
      {"parks", tot_parks},
      {"direct_switches", tot_direct_sw},
      {"fs_writes", tot_fs},
      {"ring_enters", tot_enters},
      {"ops_in_flight", static_cast<unsigned long>(inflight < 0 ? 0 : inflight)},
      {"urgent_reaps", tot_urgent},
      {"reaps_deferred", tot_deferred},
      {"direct_sends", tot_direct_sends},
      {"handoffs", st.handoffs.load()},
      {"handoff_refused", st.handoff_refused.load()},
      {"carriers_created", st.carriers_created.load()},
      {"migrations", st.migrations.load()},
      {"stalls", st.stalls.load()},
      {"stall_reports", st.stall_reports.load()},
      {"dump_held_back", st.dump_held_back.load()},
      {"dump_spurious_eintr", spurious_eintr()},
      {"faults_fired", faults_fired},
  };
  if (json) out->puts("{");
  bool first = true;
  for (const Kv& e : kv) {
    if (json) out->printf("%s\"%s\":%lu", first ? "" : ",", e.k, e.v);
    else out->printf("%s %lu\n", e.k, e.v);
    first = false;
  }
  // Which engine the workers run (runtime/engine.cpp): a word, not a counter.
  if (json) out->printf(",\"engine\":\"%s\"", engine::chosen());
  else out->printf("engine %s\n", engine::chosen());
  for (int r = 1; r < 13; ++r) {
    if (!sc.by_reason[r]) continue;
    const char* name = wait_reason_name(static_cast<WaitReason>(r));
    char key[48];
    snprintf(key, sizeof key, "parked_%s", static_cast<WaitReason>(r) == WaitReason::kIo ? "io" : name);
    for (char* p = key; *p; ++p) {
      if (*p == ' ' || *p == '/') *p = '_';
    }
    if (json) out->printf(",\"%s\":%ld", key, sc.by_reason[r]);
    else out->printf("%s %ld\n", key, sc.by_reason[r]);
  }
  if (json) out->puts(",\"per_worker\":[");
  for (int i = 0; i < nw; ++i) {
    Worker* w = sched::worker_at(i);
    unsigned sq = 0, cq = 0;
    w->engine.occupancy(&sq, &cq);
    uint64_t owner = w->owner_state.load(std::memory_order_relaxed);
    int carrier = static_cast<int>(owner >> 1) - 1;
    const char* where = w->sleeping.load(std::memory_order_relaxed) ? "idle" : (owner & Worker::kUserBit) ? "program" : "runtime";
    long infl = w->engine.inflight() - 1;
    if (json) {
      out->printf("%s{\"worker\":%d,\"carrier\":%d,\"in\":\"%s\",\"run_queue\":%d,\"inbox\":%d,\"in_flight\":%ld,\"sq\":%u,\"cq\":%u,"
                  "\"switches\":%lu,\"parks\":%lu,\"ring_enters\":%lu,\"fibers\":%d}",
                  i ? "," : "", i, carrier, where, w->run_count.load(), w->inbox_count.load(), infl < 0 ? 0 : infl, sq, cq,
                  static_cast<unsigned long>(w->switches.load()), static_cast<unsigned long>(w->parks.load()),
                  static_cast<unsigned long>(w->engine.enters()), w->fibers.load());
    } else {
      out->printf("worker.%d carrier=%d in=%s run_queue=%d inbox=%d in_flight=%ld sq=%u cq=%u switches=%lu parks=%lu "
                  "ring_enters=%lu fibers=%d\n",
                  i, carrier, where, w->run_count.load(), w->inbox_count.load(), infl < 0 ? 0 : infl, sq, cq,
                  static_cast<unsigned long>(w->switches.load()), static_cast<unsigned long>(w->parks.load()),
                  static_cast<unsigned long>(w->engine.enters()), w->fibers.load());
    }
  }
  if (json) out->puts("]}\n");
}

void describe_os_thread(int tid, char* out, size_t cap, uintptr_t* pc) { describe_task_syscall(tid, out, cap, pc); }

void stall_stack(int tid, const void* fiber, uintptr_t lo, uintptr_t hi, Buffer* out) {
  static Capture cap;  // the monitor's own (the control thread's is capture_active's)
  if (!unwinder()) return;
  char what[160];
  describe_task_syscall(tid, what, sizeof what);
  bool got;
  if (strcmp(what, "running") != 0) {
    got = capture_blocked(tid, &cap);
  } else {
    if (!hi && !main_stack_bounds(&lo, &hi)) return;
    got = capture_running(fiber, tid, lo, hi, &cap, 200);
  }
  if (!got) return;
  StackSession session;
  uintptr_t frames[kMaxFrames];
  int n = program_frames(&session, cap, frames, kMaxFrames);
  for (int i = 0; i < n; ++i) {
    char name[320];
    symbol_name(frames[i], name, sizeof name);
    session.append_line(frames[i], name, sizeof name);
    out->printf("    #%d %s\n", i, name);
  }
}

void symbol_of(uintptr_t pc, char* out, size_t cap) {
  Dl_info info{};
  if (!pc || !dladdr(reinterpret_cast<void*>(pc), &info)) {
    snprintf(out, cap, "0x%lx", static_cast<unsigned long>(pc));
    return;
  }
  const char* obj = info.dli_fname ? strrchr(info.dli_fname, '/') : nullptr;
  obj = obj ? obj + 1 : (info.dli_fname ? info.dli_fname : "?");
  if (info.dli_sname) {
    snprintf(out, cap, "%s+0x%lx (%s)", info.dli_sname, static_cast<unsigned long>(pc - reinterpret_cast<uintptr_t>(info.dli_saddr)), obj);
  } else {
    snprintf(out, cap, "0x%lx (%s+0x%lx)", static_cast<unsigned long>(pc), obj,
             static_cast<unsigned long>(pc - reinterpret_cast<uintptr_t>(info.dli_fbase)));
  }
}

void trace_line(Buffer* out) {
  static uint64_t prev_sw = 0, prev_parks = 0, prev_enters = 0, prev_handoffs = 0;
  static int64_t prev_ns = 0;
  static int64_t start_ns = 0;
  timespec now_ts;
  real::clock_gettime(CLOCK_MONOTONIC, &now_ts);
  int64_t now = static_cast<int64_t>(now_ts.tv_sec) * 1000000000 + now_ts.tv_nsec;
  if (!start_ns) start_ns = now;
  StateCount sc{};
  sched::for_each_fiber(count_cb, &sc);
  int nw = sched::worker_count();
  uint64_t sw = 0, parks = 0, enters = 0;
  int idle = 0;
  long inflight = 0;
  for (int i = 0; i < nw; ++i) {
    Worker* w = sched::worker_at(i);
    sw += w->switches.load(std::memory_order_relaxed);
    parks += w->parks.load(std::memory_order_relaxed);
    enters += w->engine.enters();
    idle += w->sleeping.load(std::memory_order_relaxed);
    inflight += w->engine.inflight() - 1;
  }
  uint64_t handoffs = sched::stats().handoffs.load();
  double dt = prev_ns ? (now - prev_ns) / 1e9 : 0;
  auto rate = [&](uint64_t cur, uint64_t prev) { return dt > 0 ? (cur - prev) / dt : 0.0; };
  int spare = 0, carriers = sched::carrier_count();
  for (int i = 0; i < carriers; ++i) {
    Carrier* c = sched::carrier_at(i);
    if (c && !c->worker) ++spare;
  }
  out->printf("trace %ldms: workers=%d idle=%d threads=%ld running=%ld runnable=%ld parked=%ld handedoff=%ld carriers=%d "
              "spare=%d switches/s=%.0f parks/s=%.0f enters/s=%.0f handoffs=%lu(+%lu) inflight=%ld stalls=%lu runqueue=[",
              static_cast<long>((now - start_ns) / 1000000), nw, idle, sched::live_fibers(), sc.by_state[0], sc.by_state[1],
              sc.by_state[2], sc.by_state[3], carriers, spare, rate(sw, prev_sw), rate(parks, prev_parks),
              rate(enters, prev_enters), static_cast<unsigned long>(handoffs), static_cast<unsigned long>(handoffs - prev_handoffs),
              inflight < 0 ? 0 : inflight, static_cast<unsigned long>(sched::stats().stalls.load()));
  for (int i = 0; i < nw; ++i) out->printf("%s%d", i ? " " : "", sched::worker_at(i)->run_count.load(std::memory_order_relaxed));
  out->puts("]");
  prev_sw = sw;
  prev_parks = parks;
  prev_enters = enters;
  prev_handoffs = handoffs;
  prev_ns = now;
}

}  // namespace unblock::inspect
