// The control half of fault injection: the shared libfiu (loaded on demand),
// the process's rule table, start-up from the environment, the fiu-ctrl FIFO
// server, the fault log, and the state faults keep between calls (eof_after
// byte counts, hung calls).
//
// Why dlopen: libunblock.so is preloaded into every process a user starts
// (a `make -j` starts hundreds); linking libfiu would map and relocate it in
// each of them. Here a process that configures no fault reads two extra
// environment variables and never sees libfiu (docs/FAULTS.md has the
// numbers). When fiu-run's preload or the program already loaded libfiu,
// dlopen finds that copy, so there is one table of points per process.
//
// The FIFO server is an OS thread of its own (not a fiber: it must answer
// while every worker is busy) that does its I/O with raw system calls, so it
// never reaches a hook or a fault point, and blocks every asynchronous
// signal, so it never takes one meant for the program.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "fault/fault.h"
#include "runtime/parker.h"
#include "runtime/signals.h"
#include "runtime/spinlock.h"
#include "runtime/tls.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::fault {
namespace {

// ---- raw system calls (no errno, no hook) ---------------------------------------

long raw_open(const char* path, int flags, int mode = 0) {
  return raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), flags, mode);
}
long raw_write(int fd, const void* buf, size_t n) {
  return raw_syscall(SYS_write, fd, reinterpret_cast<long>(buf), static_cast<long>(n));
}
void raw_close(int fd) { raw_syscall(SYS_close, fd); }

// log::format with a variable argument list: no allocation, no locale, no errno.
int format(char* buf, int cap, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = log::format(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}
void raw_sleep_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000};
  raw_syscall(SYS_nanosleep, reinterpret_cast<long>(&ts), 0);
}

// ---- state ------------------------------------------------------------------------

enum : int { kUnknown, kReady, kUnavailable };
std::atomic<int> g_state{kUnknown};
SpinLock g_init_lock{LockRank::kFaultInit};
Libfiu g_fiu;

// Rule changes are serialised here; readers (decide) need no lock.
SpinLock g_control_lock{LockRank::kFaultControl};
RuleTable g_rules;

uint64_t g_seed = 0;
const char* g_seed_source = "";
int g_log_fd = -1;
timespec g_start{};

thread_local Call* tl_call __attribute__((tls_model("initial-exec"))) = nullptr;

// libfiu's external callback for every rule unblock creates: find our rule by
// the pattern libfiu matched, and let decide() judge the call the hook is
// checking (tl_call), or - for checks that do not come from our hooks - the
// bare rule. Runs inside fiu_fail, under libfiu's read lock, on the checking
// thread; must not block.
int decide_callback(const char* pattern, int*, void**, unsigned*) {
  Rule* r = g_rules.find(pattern);
  if (!r) return 0;
  return decide(*r, tl_call, g_seed) ? 1 : 0;
}

template <class Fn>
bool resolve(void* h, const char* name, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(h, name));
  return *out != nullptr;
}

void init_seed() {
  long configured = config::get().fault_seed;
  const char* fiu_seed = getenv("FIU_PRNG_SEED");
  if (configured >= 0) {
    g_seed = static_cast<uint64_t>(configured);
    g_seed_source = "UNBLOCK_FAULT_SEED";
  } else if (fiu_seed && *fiu_seed) {
    g_seed = strtoull(fiu_seed, nullptr, 10);
    g_seed_source = "FIU_PRNG_SEED";
  } else {
    timespec ts;
    real::clock_gettime(CLOCK_REALTIME, &ts);
    // A fresh seed per run; printed in the log so the run can be replayed.
    g_seed = (static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(ts.tv_sec) << 20) ^
              (static_cast<uint64_t>(getpid()) << 40)) % 1000000007ull;
    g_seed_source = "the clock";
  }
}

void open_log() {
  const char* path = config::get().fault_log;
  if (!path) return;
  long fd = raw_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    log::always("UNBLOCK_FAULT_LOG=\"%s\" ignored: %s", path, strerror(static_cast<int>(-fd)));
    return;
  }
  g_log_fd = static_cast<int>(fd);
  char line[256];
  int n = snprintf(line, sizeof line,
                   "# unblock fault log: pid %d, seed %lu (from %s); replay with UNBLOCK_FAULT_SEED=%lu\n", getpid(),
                   static_cast<unsigned long>(g_seed), g_seed_source, static_cast<unsigned long>(g_seed));
  if (n > 0) raw_write(g_log_fd, line, static_cast<size_t>(n < static_cast<int>(sizeof line) ? n : sizeof line - 1));
}

struct Loaded {
  const char* part;
  bool found;
};

int find_object(dl_phdr_info* info, size_t, void* arg) {
  auto* l = static_cast<Loaded*>(arg);
  if (info->dlpi_name && strstr(info->dlpi_name, l->part)) l->found = true;
  return l->found;
}

bool object_loaded(const char* part) {
  Loaded l{part, false};
  dl_iterate_phdr(find_object, &l);
  return l.found;
}

// Applies the commands in `list`, separated by any of `seps`; '#' starts a
// comment. Bad commands are reported (the user asked for them) and skipped.
void apply_list(const char* var, const char* list, const char* seps) {
  const char* p = list;
  while (*p) {
    size_t n = strcspn(p, seps);
    char cmd[512];
    size_t len = n < sizeof cmd - 1 ? n : sizeof cmd - 1;
    memcpy(cmd, p, len);
    cmd[len] = '\0';
    char* s = cmd;
    while (*s == ' ' || *s == '\t' || *s == '\r') ++s;
    if (*s && *s != '#') {
      const char* error = nullptr;
      if (apply(s, &error) != 0) log::always("%s: \"%s\" ignored: %s", var, s, error ? error : "libfiu refused it");
    }
    p += n;
    if (*p) ++p;
  }
}

// ---- eof_after byte counts ----------------------------------------------------------

constexpr int kEofChunk = 1024;
constexpr int kEofChunks = 64;  // descriptors below 65536 are tracked
std::atomic<std::atomic<uint64_t>*> g_eof[kEofChunks];

std::atomic<uint64_t>* eof_slot(int fd, bool create) {
  if (fd < 0 || fd >= kEofChunk * kEofChunks) return nullptr;
  std::atomic<uint64_t>* chunk = g_eof[fd / kEofChunk].load(std::memory_order_acquire);
  if (!chunk && create) {
    void* mem = mmap(nullptr, kEofChunk * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    auto* fresh = static_cast<std::atomic<uint64_t>*>(mem);
    std::atomic<uint64_t>* expected = nullptr;
    // acq_rel: publishes the zeroed chunk; pairs with the acquire load above.
    if (g_eof[fd / kEofChunk].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
      chunk = fresh;
    } else {
      munmap(mem, kEofChunk * sizeof(uint64_t));
      chunk = expected;
    }
  }
  return chunk ? &chunk[fd % kEofChunk] : nullptr;
}

void reset_eof_counts() {
  for (auto& c : g_eof) {
    std::atomic<uint64_t>* chunk = c.load(std::memory_order_acquire);
    if (!chunk) continue;
    for (int i = 0; i < kEofChunk; ++i) chunk[i].store(0, std::memory_order_relaxed);
  }
}

// ---- hung calls ---------------------------------------------------------------------

SpinLock g_hang_lock{LockRank::kFaultHang};
HangWaiter* g_hang_head = nullptr;

void wake_hung() {
  SpinGuard g(g_hang_lock);
  for (HangWaiter* w = g_hang_head; w; w = w->next) w->parker->unpark();
}

// ---- rule changes ---------------------------------------------------------------------

// Called with g_control_lock held, before the rule is registered with libfiu.
void reset_counts_for(const char* pattern) {
  bool eof = false;
  for (int o = 0; o < kOps; ++o) {
    for (int k = 0; k < kKinds; ++k) {
      const char* name = point_name(static_cast<Op>(o), static_cast<Kind>(k));
      if (!name || !pattern_matches(pattern, name)) continue;
      g_point_calls[point_id(static_cast<Op>(o), static_cast<Kind>(k))].store(0, std::memory_order_relaxed);
      eof |= static_cast<Kind>(k) == Kind::kEofAfter;
    }
  }
  if (eof) reset_eof_counts();
}

int enable_ours(const Command& c) {
  int rc;
  {
    SpinGuard g(g_control_lock);
    Rule* r = g_rules.add(c, true);
    if (!r) {
      log::always("fault rule table full (%d rules): \"%s\" not enabled", RuleTable::kMaxRules, c.name);
      return -1;
    }
    reset_counts_for(c.name);
    rc = g_fiu.enable_external(c.name, c.failnum, reinterpret_cast<void*>(c.failinfo), c.flags, decide_callback);
    if (rc != 0) {
      r->state.store(Rule::kFree, std::memory_order_release);
    } else {
      // libfiu replaced any older rule of this pattern under its write lock:
      // no decide() can still be running for the old slot.
      g_rules.drop(c.name, r);
      g_rules.compute_masks(g_mask);
    }
  }
  wake_hung();
  LOG_INFO("fault rule enabled: %s", c.name);
  return rc;
}

// ---- the fiu-ctrl FIFO server -------------------------------------------------------------

struct FifoServer {
  char base[256];
  char in[300];
  char out[300];
  int pid;  // the process that serves it (a forked child does not)
};
constexpr int kMaxServers = 4;
FifoServer g_servers[kMaxServers];
int g_server_count = 0;
bool g_atexit_registered = false;

void remove_fifos() {
  int pid = static_cast<int>(raw_syscall(SYS_getpid));
  for (int i = 0; i < g_server_count; ++i) {
    if (g_servers[i].pid != pid) continue;
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(g_servers[i].in), 0);
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(g_servers[i].out), 0);
  }
}

bool is_own_fifo(const struct stat& st) { return S_ISFIFO(st.st_mode) && st.st_uid == geteuid(); }

// Removes <base>-<pid>.in/.out FIFOs whose process is gone (killed before it
// could clean up). Only FIFOs of ours with a dead pid are touched.
void sweep_stale(const char* base) {
  char dir[256];
  const char* slash = strrchr(base, '/');
  const char* prefix = slash ? slash + 1 : base;
  size_t dlen = slash ? static_cast<size_t>(slash - base) : 0;
  if (dlen >= sizeof dir) return;
  if (dlen == 0) {
    dir[0] = slash ? '/' : '.';
    dir[1] = '\0';
  } else {
    memcpy(dir, base, dlen);
    dir[dlen] = '\0';
  }
  long dfd = raw_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  size_t plen = strlen(prefix);
  alignas(8) char buf[4096];
  for (;;) {
    long n = raw_syscall(SYS_getdents64, dfd, reinterpret_cast<long>(buf), sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<struct dirent64*>(buf + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      if (strncmp(name, prefix, plen) != 0 || name[plen] != '-') continue;
      char* end = nullptr;
      long pid = strtol(name + plen + 1, &end, 10);
      if (pid <= 0 || end == name + plen + 1 || (strcmp(end, ".in") != 0 && strcmp(end, ".out") != 0)) continue;
      if (raw_syscall(SYS_kill, pid, 0) != -ESRCH) continue;
      struct stat st;
      if (raw_syscall(SYS_newfstatat, dfd, reinterpret_cast<long>(name), reinterpret_cast<long>(&st), AT_SYMLINK_NOFOLLOW) != 0)
        continue;
      if (!is_own_fifo(st)) continue;
      raw_syscall(SYS_unlinkat, dfd, reinterpret_cast<long>(name), 0);
      LOG_INFO("removed stale fault-control FIFO %s/%s", dir, name);
    }
  }
  raw_close(static_cast<int>(dfd));
}

// The reply FIFO: fiu-ctrl opens it for reading right after writing the
// command. Without a reader, give up after two seconds rather than block.
int open_reply(const char* path) {
  for (int i = 0; i < 2000; ++i) {
    long fd = raw_open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) return static_cast<int>(fd);
    if (fd != -ENXIO && fd != -EINTR) return -1;
    raw_sleep_ms(1);
  }
  return -1;
}

void serve_line(char* line, const char* out_path, int* out_fd) {
  size_t len = strlen(line);
  while (len && (line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = '\0';
  if (!len) return;
  const char* error = nullptr;
  int r = apply(line, &error);
  if (r != 0) LOG_WARN("fault control: \"%s\" failed: %s", line, error ? error : "libfiu refused it");
  if (*out_fd < 0) *out_fd = open_reply(out_path);
  if (*out_fd < 0) return;
  const char* reply = r == 0 ? "0\n" : "-1\n";
  raw_write(*out_fd, reply, strlen(reply));
}

void* server_main(void* arg) {
  auto* s = static_cast<FifoServer*>(arg);
  raw_syscall(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>("unblock-faults"));  // as ps and /proc show it
  sweep_stale(s->base);
  int errors = 0;
  for (;;) {
    // Blocks until a writer (fiu-ctrl's echo) opens it.
    long in = raw_open(s->in, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in == -EINTR) continue;
    if (in < 0) {
      if (++errors > 10) {
        LOG_WARN("fault control FIFO %s unusable (%s); not serving it", s->in, strerror(static_cast<int>(-in)));
        return nullptr;
      }
      raw_sleep_ms(100);
      continue;
    }
    struct stat st;
    if (raw_syscall(SYS_fstat, in, reinterpret_cast<long>(&st)) != 0 || !is_own_fifo(st)) {
      LOG_WARN("fault control: %s is not our FIFO; not serving it", s->in);
      raw_close(static_cast<int>(in));
      return nullptr;
    }
    int out = -1;
    char line[512];
    size_t len = 0;
    for (;;) {
      char buf[512];
      long n = raw_syscall(SYS_read, in, reinterpret_cast<long>(buf), sizeof buf);
      if (n == -EINTR) continue;
      if (n <= 0) break;
      for (long i = 0; i < n; ++i) {
        if (buf[i] == '\n' || buf[i] == '\0') {
          line[len] = '\0';
          serve_line(line, s->out, &out);
          len = 0;
        } else if (len < sizeof line - 1) {
          line[len++] = buf[i];
        }
      }
    }
    if (len) {
      line[len] = '\0';
      serve_line(line, s->out, &out);
    }
    if (out >= 0) raw_close(out);
    raw_close(static_cast<int>(in));
  }
}

bool make_fifo(const char* path) {
  long r = raw_syscall(SYS_mknodat, AT_FDCWD, reinterpret_cast<long>(path), S_IFIFO | 0600, 0);
  struct stat st;
  if (r == -EEXIST) {
    // Left by an earlier process with our pid: reuse it if it is ours.
    long err = raw_syscall(SYS_newfstatat, AT_FDCWD, reinterpret_cast<long>(path), reinterpret_cast<long>(&st),
                   AT_SYMLINK_NOFOLLOW);
    if (err != 0 || !is_own_fifo(st))
      return false;
  } else if (r != 0) {
    return false;
  }
  // Exactly 0600 whatever the umask.
  raw_syscall(SYS_fchmodat, AT_FDCWD, reinterpret_cast<long>(path), 0600);
  return true;
}

}  // namespace

// ---- public ---------------------------------------------------------------------------

const Libfiu& libfiu() { return g_fiu; }
bool ready() { return g_state.load(std::memory_order_acquire) == kReady; }
uint64_t seed() { return g_seed; }

bool ensure_ready() {
  int s = g_state.load(std::memory_order_acquire);
  if (s != kUnknown) return s == kReady;
  SpinGuard g(g_init_lock);
  s = g_state.load(std::memory_order_relaxed);
  if (s != kUnknown) return s == kReady;
  int saved_errno = errno;
  void* h = dlopen("libfiu.so.0", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (!h) h = dlopen("libfiu.so.0", RTLD_NOW | RTLD_LOCAL);
  bool ok = h && resolve(h, "fiu_init", &g_fiu.init) && resolve(h, "fiu_fail", &g_fiu.fail) &&
            resolve(h, "fiu_failinfo", &g_fiu.failinfo) && resolve(h, "fiu_enable_external", &g_fiu.enable_external) &&
            resolve(h, "fiu_enable_stack", &g_fiu.enable_stack) &&
            resolve(h, "fiu_enable_stack_by_name", &g_fiu.enable_stack_by_name) &&
            resolve(h, "fiu_disable", &g_fiu.disable);
  if (!ok || g_fiu.init(0) != 0) {
    const char* why = dlerror();
    log::always("fault injection unavailable: cannot use libfiu.so.0 (%s); install libfiu0",
                why ? why : "missing symbols");
    g_state.store(kUnavailable, std::memory_order_release);
    errno = saved_errno;
    return false;
  }
  real::clock_gettime(CLOCK_MONOTONIC, &g_start);
  init_seed();
  open_log();
  LOG_INFO("fault injection ready: seed %lu (from %s)", static_cast<unsigned long>(g_seed), g_seed_source);
  // Pairs with the acquire loads above and in ready(): g_fiu is complete.
  g_state.store(kReady, std::memory_order_release);
  errno = saved_errno;
  return true;
}

void start_from_env() {
  const Config& cfg = config::get();
  const char* fiu_enable = getenv("FIU_ENABLE");
  const char* fiu_fifo = getenv("FIU_CTRL_FIFO");
  bool fifo = cfg.fault_fifo && strcmp(cfg.fault_fifo, "0") != 0;
  if (!cfg.faults && !fifo && !(fiu_enable && *fiu_enable) && !(fiu_fifo && *fiu_fifo)) return;
  int saved_errno = errno;
  if (!ensure_ready()) {
    errno = saved_errno;
    return;
  }
  // fiu-run's preload applies FIU_ENABLE and serves FIU_CTRL_FIFO itself,
  // through fiu_rc_string/fiu_rc_fifo - which are ours (fault/fiu_api.cpp).
  bool fiu_run = object_loaded("fiu_run_preload");
  if (object_loaded("fiu_posix_preload")) {
    log::always(
        "fiu_posix_preload.so is loaded with unblock: its wrappers neither see I/O that runs through io_uring nor keep "
        "their recursion guard across fiber switches, so its posix/* faults are unreliable; unblock checks the same "
        "points itself - drop fiu-run's -x (docs/FAULTS.md)");
  }
  if (cfg.faults) apply_list("UNBLOCK_FAULTS", cfg.faults, ";\n");
  if (fiu_enable && *fiu_enable && !fiu_run) apply_list("FIU_ENABLE", fiu_enable, "\n");
  if (fifo) {
    char base[256];
    const char* b = cfg.fault_fifo;
    if (!strcmp(b, "1")) {
      const char* tmp = getenv("TMPDIR");
      snprintf(base, sizeof base, "%s/fiu-ctrl", tmp && *tmp ? tmp : "/tmp");
      b = base;
    }
    if (serve_fifo(b) != 0) log::always("UNBLOCK_FAULT_FIFO: cannot serve %s-%d.in/.out", b, getpid());
  }
  if (fiu_fifo && *fiu_fifo && !fiu_run && serve_fifo(fiu_fifo) != 0) {
    log::always("FIU_CTRL_FIFO: cannot serve %s-%d.in/.out", fiu_fifo, getpid());
  }
  errno = saved_errno;
}

int apply(const char* line, const char** error) {
  Command c;
  if (!parse(line, &c, error)) return -1;
  int r = apply(c);
  if (r != 0 && error) *error = ready() ? "libfiu refused it" : "libfiu unavailable";
  return r;
}

namespace {
int register_stack(void* arg) {
  auto* c = static_cast<const Command*>(arg);
  return g_fiu.enable_stack_by_name(c->name, c->failnum, reinterpret_cast<void*>(c->failinfo), c->flags, c->func_name,
                                    c->pos_in_stack);
}
}  // namespace

int apply(const Command& c) {
  if (!ensure_ready()) return -1;
  switch (c.verb) {
    case Command::kDisable:
      return disable(c.name);
    case Command::kEnableStackByName:
      return enable_foreign(c.name, register_stack, const_cast<Command*>(&c));
    case Command::kEnable:
    case Command::kEnableRandom:
      break;
  }
  return enable_ours(c);
}

int enable_foreign(const char* name, int (*register_fn)(void*), void* arg) {
  if (!name || !ensure_ready()) return -1;
  Command c;
  size_t n = strlen(name);
  if (n >= Command::kNameMax) return -1;
  memcpy(c.name, name, n + 1);
  SpinGuard g(g_control_lock);
  Rule* r = g_rules.add(c, false);
  if (!r) return -1;
  int rc = register_fn(arg);
  if (rc != 0) {
    r->state.store(Rule::kFree, std::memory_order_release);
    return rc;
  }
  g_rules.drop(name, r);
  g_rules.compute_masks(g_mask);
  return 0;
}

void for_each_rule(void (*fn)(const Rule& r, void* arg), void* arg) {
  SpinGuard g(g_control_lock);
  for (int i = 0; i < RuleTable::kMaxRules; ++i) {
    const Rule& r = g_rules.at(i);
    if (r.state.load(std::memory_order_acquire) == Rule::kLive) fn(r, arg);
  }
}

int disable(const char* name) {
  if (!name || !ensure_ready()) return -1;
  int rc;
  {
    SpinGuard g(g_control_lock);
    rc = g_fiu.disable(name);
    g_rules.drop(name);
    g_rules.compute_masks(g_mask);
  }
  wake_hung();
  LOG_INFO("fault rule disabled: %s", name);
  return rc;
}

int serve_fifo(const char* basename) {
  if (!basename || !*basename || strlen(basename) >= sizeof(FifoServer::base) || !ensure_ready()) return -1;
  int pid = getpid();
  SpinGuard g(g_control_lock);
  FifoServer* s = nullptr;
  for (int i = 0; i < g_server_count; ++i) {
    if (g_servers[i].pid == pid && !strcmp(g_servers[i].base, basename)) return 0;  // one server per FIFO
    if (g_servers[i].pid != pid && !s) s = &g_servers[i];  // inherited from the parent: reuse
  }
  if (!s) {
    if (g_server_count == kMaxServers) return -1;
    s = &g_servers[g_server_count++];
  }
  snprintf(s->base, sizeof s->base, "%s", basename);
  snprintf(s->in, sizeof s->in, "%s-%d.in", basename, pid);
  snprintf(s->out, sizeof s->out, "%s-%d.out", basename, pid);
  s->pid = 0;
  if (!make_fifo(s->in) || !make_fifo(s->out)) {
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(s->in), 0);
    return -1;
  }
  int err = signals::start_runtime_thread(server_main, s, 64 * 1024);
  if (err != 0) {
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(s->in), 0);
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(s->out), 0);
    return -1;
  }
  s->pid = pid;
  if (!g_atexit_registered) {
    g_atexit_registered = true;
    atexit(remove_fifos);
  }
  LOG_INFO("fault control: serving %s (fiu-ctrl)", s->in);
  return 0;
}

bool check(Call& c, uintptr_t* info) {
  const char* name = point_name(c.op, c.kind);
  if (!name || !ready()) return false;
  c.k = 0;
  tl_call = &c;
  int r = g_fiu.fail(name);
  tl_call = nullptr;
  if (!r) return false;
  *info = reinterpret_cast<uintptr_t>(g_fiu.failinfo());
  // A rule decided by libfiu or the program did not count the call.
  if (c.k == 0) c.k = g_point_calls[point_id(c.op, c.kind)].fetch_add(1, std::memory_order_relaxed) + 1;
  return true;
}

void record(const Call& c, const char* what_fmt, ...) {
  bool debug = log::enabled(log::Level::kDebug);
  if (g_log_fd < 0 && !debug) return;
  timespec now;
  real::clock_gettime(CLOCK_MONOTONIC, &now);
  long sec = now.tv_sec - g_start.tv_sec;
  long nsec = now.tv_nsec - g_start.tv_nsec;
  if (nsec < 0) {
    nsec += 1000000000;
    --sec;
  }
  char what[160];
  va_list ap;
  va_start(ap, what_fmt);
  log::format(what, sizeof what, what_fmt, ap);
  va_end(ap);
  char line[384];
  int n = format(line, sizeof line - 1, "%ld.%06ld pid=%d thread=%d call=%s fd=%d point=%s k=%lu %s", sec, nsec / 1000,
                 static_cast<int>(raw_syscall(SYS_getpid)), current_thread_id(), op_function(c.op), c.fd,
                 point_name(c.op, c.kind), static_cast<unsigned long>(c.k), what);
  if (debug) LOG_DEBUG("fault: %s", line);
  line[n++] = '\n';
  if (g_log_fd >= 0) raw_write(g_log_fd, line, static_cast<size_t>(n));
}

uint64_t eof_bytes(int fd) {
  std::atomic<uint64_t>* s = eof_slot(fd, false);
  return s ? s->load(std::memory_order_relaxed) : 0;
}

void add_eof_bytes(int fd, uint64_t n) {
  std::atomic<uint64_t>* s = eof_slot(fd, true);
  if (s) s->fetch_add(n, std::memory_order_relaxed);
}

void forget_fd(int fd) {
  std::atomic<uint64_t>* s = eof_slot(fd, false);
  if (s) s->store(0, std::memory_order_relaxed);
}

void add_hang_waiter(HangWaiter* w) {
  SpinGuard g(g_hang_lock);
  w->prev = nullptr;
  w->next = g_hang_head;
  if (g_hang_head) g_hang_head->prev = w;
  g_hang_head = w;
}

void remove_hang_waiter(HangWaiter* w) {
  SpinGuard g(g_hang_lock);
  if (w->prev) w->prev->next = w->next;
  else g_hang_head = w->next;
  if (w->next) w->next->prev = w->prev;
}

}  // namespace unblock::fault
