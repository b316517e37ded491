#include "shim/config.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "shim/log.h"
#include "shim/raw_syscall.h"

namespace unblock {
namespace config {
namespace {

Config g_config;

enum class Kind { kBool, kInt, kLong, kSize, kLevel, kString, kChoice };

struct Option {
  const char* name;
  Kind kind;
  long min;
  long max;
  void* field;
  const char* help;
  const char* const* choices = nullptr;  // kChoice: the accepted words; the field gets the index
};

const char* const kFsSwitchChoices[] = {"auto", "wrfsbase", "arch_prctl", nullptr};
const char* const kEngineChoices[] = {"auto", "uring", "epoll", "off", nullptr};

// clang-format off
const Option kOptions[] = {
  {"UNBLOCK_DISABLE", Kind::kBool, 0, 1, &g_config.disabled,
   "1: load but do nothing; every call goes straight to libc"},
  {"UNBLOCK_WORKERS", Kind::kInt, 1, 1024, &g_config.workers,
   "worker threads that carry the fibers (default: the CPUs the process may run on)"},
  {"UNBLOCK_STACK_SIZE", Kind::kSize, 16 * 1024, 1L << 30, &g_config.stack_size,
   "stack per thread when the program sets none (default: glibc's default, usually 8M); touched pages only cost memory"},
  {"UNBLOCK_GUARD_SIZE", Kind::kSize, 4096, 16L << 20, &g_config.guard_size,
   "guard region below every fiber stack (default 64k)"},
  {"UNBLOCK_LOG", Kind::kLevel, 0, 4, &g_config.log_level,
   "off|error|warn|info|debug (default off: the library prints nothing)"},
  {"UNBLOCK_LOG_FILE", Kind::kString, 0, 0, &g_config.log_file,
   "append log lines to this file instead of stderr"},
  {"UNBLOCK_HANDOFF_US", Kind::kLong, 50, 10L * 1000 * 1000, &g_config.handoff_us,
   "a worker stuck this long in one thread while others wait hands them to another OS thread (default 1000)"},
  {"UNBLOCK_MAX_THREADS", Kind::kInt, 0, 100000, &g_config.max_threads,
   "bound on extra OS threads created for hand-off (default 256)"},
  {"UNBLOCK_FS_SWITCH", Kind::kChoice, 0, 0, &g_config.fs_switch,
   "auto|wrfsbase|arch_prctl: how fibers switch the FS base (default auto: wrfsbase where the CPU has FSGSBASE)",
   kFsSwitchChoices},
  {"UNBLOCK_ENGINE", Kind::kChoice, 0, 0, &g_config.engine,
   "auto|uring|epoll|off: what waits for the kernel (default auto: io_uring if it can be set up, else epoll; off: every call passes through)",
   kEngineChoices},
  {"UNBLOCK_RING_ENTRIES", Kind::kInt, 8, 32768, &g_config.ring_entries,
   "io_uring submission queue entries per worker (default 1024)"},
  {"UNBLOCK_STATS", Kind::kString, 0, 0, &g_config.stats,
   "write runtime counters at exit to stderr (\"stderr\") or to a file"},
  {"UNBLOCK_CONTROL", Kind::kBool, 0, 1, &g_config.control,
   "0: no control socket for unblock-ctl (default 1: one Unix socket, served only once a client connects)"},
  {"UNBLOCK_CONTROL_DIR", Kind::kString, 0, 0, &g_config.control_dir,
   "directory of the control socket (default $XDG_RUNTIME_DIR/unblock, /run/unblock for root, /run/user/EUID/unblock); must be the owner's alone"},
  {"UNBLOCK_TRACE", Kind::kString, 0, 0, &g_config.trace,
   "write a line of scheduler counters to the log at this period, e.g. 1s or 500ms (schedtrace)"},
  {"UNBLOCK_STALL_MS", Kind::kLong, 0, 3600L * 1000, &g_config.stall_ms,
   "report (once per call site, in the log) a thread that keeps its worker longer than this (default 0: off)"},
  {"UNBLOCK_DUMP_SIGNAL", Kind::kString, 0, 0, &g_config.dump_signal,
   "a signal (USR1, USR2, HUP, WINCH or a number) that writes a thread dump to the log instead of reaching the program (default: none)"},
  {"UNBLOCK_FAULTS", Kind::kString, 0, 0, &g_config.faults,
   "fault commands applied at start-up, ';'-separated, e.g. 'enable_random name=posix/io/net/recv,probability=0.1' (docs/FAULTS.md)"},
  {"UNBLOCK_FAULT_SEED", Kind::kLong, 0, LONG_MAX, &g_config.fault_seed,
   "seed of every fault decision: the same seed gives the same faults for the same calls (default: FIU_PRNG_SEED, else the clock)"},
  {"UNBLOCK_FAULT_LOG", Kind::kString, 0, 0, &g_config.fault_log,
   "append every injected fault to this file (time, thread, call, fd, point, what)"},
  {"UNBLOCK_FAULT_FIFO", Kind::kString, 0, 0, &g_config.fault_fifo,
   "serve fiu-ctrl on BASE-PID.in/.out: 1 for ${TMPDIR:-/tmp}/fiu-ctrl, or a base path"},
};
// clang-format on

void complain(const char* name, const char* value, const char* why) {
  // Configuration mistakes are reported even with logging off: the user set
  // an UNBLOCK_* variable and deserves to know it was not taken.
  log::always("%s=\"%s\" ignored: %s; using the default", name, value, why);
}

bool parse_long(const char* text, long* out) {
  if (!*text) return false;
  char* end = nullptr;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || *end) return false;
  *out = v;
  return true;
}

bool parse_level(const char* text, int* out) {
  static const char* const kNames[] = {"off", "error", "warn", "info", "debug"};
  for (int i = 0; i < 5; ++i) {
    if (strcasecmp(text, kNames[i]) == 0) {
      *out = i;
      return true;
    }
  }
  long v;
  if (parse_long(text, &v) && v >= 0 && v <= 4) {
    *out = static_cast<int>(v);
    return true;
  }
  return false;
}

void apply(const Option& o, const char* value) {
  switch (o.kind) {
    case Kind::kBool: {
      if (!strcmp(value, "1") || !strcasecmp(value, "yes") || !strcasecmp(value, "true")) {
        *static_cast<bool*>(o.field) = true;
      } else if (!strcmp(value, "0") || !strcasecmp(value, "no") || !strcasecmp(value, "false") || !*value) {
        *static_cast<bool*>(o.field) = false;
      } else {
        complain(o.name, value, "expected 0 or 1");
      }
      return;
    }
    case Kind::kInt:
    case Kind::kLong: {
      long v;
      if (!parse_long(value, &v)) return complain(o.name, value, "not a number");
      if (v < o.min || v > o.max) return complain(o.name, value, "out of range");
      if (o.kind == Kind::kInt) *static_cast<int*>(o.field) = static_cast<int>(v);
      else *static_cast<long*>(o.field) = v;
      return;
    }
    case Kind::kSize: {
      size_t v;
      if (!parse_size(value, &v)) return complain(o.name, value, "not a size (e.g. 256k, 8M)");
      if (v < static_cast<size_t>(o.min) || v > static_cast<size_t>(o.max)) {
        return complain(o.name, value, "out of range");
      }
      *static_cast<size_t*>(o.field) = v;
      return;
    }
    case Kind::kLevel: {
      int v;
      if (!parse_level(value, &v)) return complain(o.name, value, "expected off|error|warn|info|debug");
      *static_cast<int*>(o.field) = v;
      return;
    }
    case Kind::kString:
      *static_cast<const char**>(o.field) = *value ? value : nullptr;
      return;
    case Kind::kChoice: {
      for (int i = 0; o.choices[i]; ++i) {
        if (strcasecmp(value, o.choices[i]) == 0) {
          *static_cast<int*>(o.field) = i;
          return;
        }
      }
      char expected[128] = "expected ";
      for (int i = 0; o.choices[i]; ++i) {
        if (i) strncat(expected, "|", sizeof expected - strlen(expected) - 1);
        strncat(expected, o.choices[i], sizeof expected - strlen(expected) - 1);
      }
      return complain(o.name, value, expected);
    }
  }
}

}  // namespace

bool parse_size(const char* text, size_t* out) {
  if (!text || !*text) return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || end == text || text[0] == '-') return false;
  unsigned shift = 0;
  switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; ++end; break;
    case 'm': case 'M': shift = 20; ++end; break;
    case 'g': case 'G': shift = 30; ++end; break;
    default: return false;
  }
  if (*end == 'i' || *end == 'I') ++end;
  if (*end == 'b' || *end == 'B') ++end;
  if (*end) return false;
  if (shift && v > (ULLONG_MAX >> shift)) return false;
  *out = static_cast<size_t>(v << shift);
  return true;
}

void load() {
  int saved_errno = errno;
  // The log level first, so that later complaints about files are visible.
  for (const Option& o : kOptions) {
    const char* value = getenv(o.name);
    if (value) apply(o, value);
  }
  log::set_level(static_cast<log::Level>(g_config.log_level));
  if (g_config.log_file) {
    int fd = static_cast<int>(raw_syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(g_config.log_file),
                                          O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (fd >= 0) log::set_fd(fd);
    else complain("UNBLOCK_LOG_FILE", g_config.log_file, strerror(-fd));
  }
  errno = saved_errno;
}

void resolve_defaults() {
  int saved_errno = errno;
  if (g_config.workers == 0) {
    // The CPUs this process may run on (taskset, cpusets), as nproc(1)
    // counts them: more carriers than that only preempt each other.
    cpu_set_t set;
    CPU_ZERO(&set);
    long n = raw_syscall(SYS_sched_getaffinity, 0, sizeof set, reinterpret_cast<long>(&set)) > 0 ? CPU_COUNT(&set)
                                                                                          : sysconf(_SC_NPROCESSORS_ONLN);
    g_config.workers = n > 0 ? static_cast<int>(n < 1024 ? n : 1024) : 1;
  }
  if (g_config.stack_size == 0) {
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_default_np(&attr) == 0) {
      pthread_attr_getstacksize(&attr, &size);
      pthread_attr_destroy(&attr);
    }
    g_config.stack_size = size >= 16 * 1024 ? size : 8u << 20;
  }
  errno = saved_errno;
}

const Config& get() { return g_config; }

const char* describe() {
  static char text[4096];
  if (text[0]) return text;
  size_t len = 0;
  for (const Option& o : kOptions) {
    int n = snprintf(text + len, sizeof text - len, "  %-22s %s\n", o.name, o.help);
    if (n < 0 || len + n >= sizeof text) break;
    len += n;
  }
  return text;
}

}  // namespace config
}  // namespace unblock
