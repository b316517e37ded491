#include "runtime/control.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "runtime/engine.h"
#include "runtime/fault.h"
#include "runtime/inspect.h"
#include "runtime/own_fds.h"
#include "runtime/monitor.h"
#include "runtime/signals.h"
#include "shim/config.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock::control {
namespace {

int g_listen_fd = -1;
// The socket's identity: the program may close our fd (close_range before
// an exec, a daemon closing every fd) and reuse its number.
dev_t g_dev = 0;
ino_t g_ino = 0;
long g_owner_pid = 0;  // the process that created the socket (a forked child must not unlink it)
char g_path[sizeof(sockaddr_un::sun_path)];
std::atomic<bool> g_wanted{false};   // a client connected: start the thread (monitor)
std::atomic<bool> g_started{false};
bool g_armed = false;

// Waits for the first client in worker 0's ring; runs in its scheduler.
void on_first_client(Completion*, int, uint32_t) {
  g_wanted.store(true, std::memory_order_relaxed);
  monitor::kick();
}
Completion g_poll{on_first_client};

void remove_socket() {
  if (g_listen_fd >= 0 && raw_syscall(SYS_getpid) == g_owner_pid) {
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(g_path), 0);
  }
}

// Creates `dir` 0700 if missing; true if it is a directory of the
// effective uid that nobody else may enter.
bool private_dir(const char* dir) {
  raw_syscall(SYS_mkdirat, AT_FDCWD, reinterpret_cast<long>(dir), 0700);
  struct stat st;
  if (raw_syscall(SYS_newfstatat, AT_FDCWD, reinterpret_cast<long>(dir), reinterpret_cast<long>(&st), AT_SYMLINK_NOFOLLOW) != 0)
    return false;
  long euid = raw_syscall(SYS_geteuid);
  if (!S_ISDIR(st.st_mode) || st.st_uid != static_cast<uid_t>(euid) || (st.st_mode & 077) != 0) {
    LOG_WARN("control socket: %s is not a private directory of uid %ld (owner %u, mode %d%d%d); no control channel", dir,
             euid, st.st_uid, (st.st_mode >> 6) & 7, (st.st_mode >> 3) & 7, st.st_mode & 7);
    return false;
  }
  return true;
}

bool choose_dir(char* out, size_t cap) {
  const char* d = config::get().control_dir;
  if (d && *d) {
    snprintf(out, cap, "%s", d);
    return private_dir(out);
  }
  const char* xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg && *xdg == '/') {
    snprintf(out, cap, "%s/unblock", xdg);
    return private_dir(out);
  }
  long euid = raw_syscall(SYS_geteuid);
  if (euid == 0) {
    snprintf(out, cap, "/run/unblock");
    return private_dir(out);
  }
  char base[64];
  snprintf(base, sizeof base, "/run/user/%ld", euid);
  struct stat st;
  if (raw_syscall(SYS_newfstatat, AT_FDCWD, reinterpret_cast<long>(base), reinterpret_cast<long>(&st), 0) != 0 ||
      st.st_uid != static_cast<uid_t>(euid)) {
    LOG_INFO("control socket: no private runtime directory (set XDG_RUNTIME_DIR or UNBLOCK_CONTROL_DIR)");
    return false;
  }
  snprintf(out, cap, "%s/unblock", base);
  return private_dir(out);
}

long write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    long w = raw_syscall(SYS_sendto, fd, reinterpret_cast<long>(p), static_cast<long>(n), MSG_NOSIGNAL, 0, 0);
    if (w == -EINTR) continue;
    if (w <= 0) return w;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

void serve(int fd) {
  ucred cr{};
  socklen_t len = sizeof cr;
  long euid = raw_syscall(SYS_geteuid);
  if (raw_syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_PEERCRED, reinterpret_cast<long>(&cr), reinterpret_cast<long>(&len)) != 0 ||
      (cr.uid != static_cast<uid_t>(euid) && cr.uid != 0)) {
    static const char kRefused[] = "error: permission denied (not the owner of this process, nor root)\n";
    write_all(fd, kRefused, sizeof kRefused - 1);
    return;
  }
  timeval tv{5, 0};
  raw_syscall(SYS_setsockopt, fd, SOL_SOCKET, SO_RCVTIMEO, reinterpret_cast<long>(&tv), sizeof tv);
  raw_syscall(SYS_setsockopt, fd, SOL_SOCKET, SO_SNDTIMEO, reinterpret_cast<long>(&tv), sizeof tv);
  char line[256];
  size_t n = 0;
  while (n < sizeof line - 1) {
    long r = raw_syscall(SYS_recvfrom, fd, reinterpret_cast<long>(line + n), static_cast<long>(sizeof line - 1 - n), 0, 0, 0);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    n += static_cast<size_t>(r);
    if (memchr(line, '\n', n)) break;
  }
  line[n] = 0;
  if (char* nl = strchr(line, '\n')) *nl = 0;
  bool json = strstr(line, " json") != nullptr;
  inspect::Buffer out;
  if (!strncmp(line, "stats", 5)) {
    inspect::stats(&out, json);
  } else if (!strncmp(line, "dump", 4)) {
    inspect::dump(&out, json);
  } else if (!strcmp(line, "faults list")) {
    fault::for_each_rule(
        [](const fault::Rule& r, void* arg) {
          auto* b = static_cast<inspect::Buffer*>(arg);
          b->printf("%s fired=%u%s", r.pattern, r.fired.load(std::memory_order_relaxed), r.ours ? "" : " (libfiu)");
          if (r.random) b->printf(" probability=%.4f", static_cast<double>(r.threshold) / 18446744073709551616.0);
          if (r.scope.fd >= 0) b->printf(" fd=%d", r.scope.fd);
          if (r.scope.port >= 0) b->printf(" port=%d", r.scope.port);
          if (r.scope.lport >= 0) b->printf(" lport=%d", r.scope.lport);
          if (r.scope.every) b->printf(" every=%u", r.scope.every);
          if (r.scope.after) b->printf(" after=%u", r.scope.after);
          if (r.scope.count) b->printf(" count=%u", r.scope.count);
          b->puts("\n");
        },
        &out);
  } else if (!strncmp(line, "faults add ", 11)) {
    // libfiu's remote-control syntax, as fiu-ctrl and UNBLOCK_FAULTS take it.
    const char* error = nullptr;
    if (fault::apply(line + 11, &error) == 0) out.puts("ok\n");
    else out.printf("error: %s\n", error ? error : "refused");
  } else if (!strncmp(line, "faults remove ", 14)) {
    if (fault::disable(line + 14) == 0) out.puts("ok\n");
    else out.printf("error: no fault point %s, or libfiu unavailable\n", line + 14);
  } else {
    out.printf("error: unknown request \"%s\" (stats, dump, faults list|add|remove)\n", line);
  }
  write_all(fd, out.data(), out.size());
}

bool still_ours() {
  struct stat st;
  return raw_syscall(SYS_fstat, g_listen_fd, reinterpret_cast<long>(&st)) == 0 && st.st_dev == g_dev && st.st_ino == g_ino;
}

int64_t now_ns() {
  timespec ts;
  real::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// UNBLOCK_TRACE: "1s", "500ms", "2" (seconds); 0 if unset or malformed.
int64_t trace_period_ns() {
  const char* t = config::get().trace;
  if (!t || !*t) return 0;
  char* end = nullptr;
  double v = strtod(t, &end);
  if (end == t || v <= 0) return 0;
  if (!strcmp(end, "ms")) v /= 1000;
  else if (*end && strcmp(end, "s") != 0) return 0;
  int64_t ns = static_cast<int64_t>(v * 1e9);
  return ns < 10 * 1000 * 1000 ? 10 * 1000 * 1000 : ns;
}

void* control_main(void*) {
  // As ps and /proc show it; dumps list it as the runtime's.
  raw_syscall(SYS_prctl, PR_SET_NAME, reinterpret_cast<long>("unblock-ctl"));
  int64_t period = trace_period_ns();
  int64_t next = period ? now_ns() + period : 0;
  bool listening = g_listen_fd >= 0;
  for (;;) {
    if (listening && !still_ours()) {
      LOG_WARN("control socket: its file descriptor was closed by the program; unblock-ctl no longer answers");
      listening = false;
    }
    if (!listening && !period) return nullptr;
    // The listening socket is non-blocking: wait here, for a client or the
    // next trace line.
    pollfd p{listening ? g_listen_fd : -1, POLLIN, 0};
    timespec ts{}, *timeout = nullptr;
    if (period) {
      int64_t left = next - now_ns();
      if (left < 0) left = 0;
      ts.tv_sec = left / 1000000000;
      ts.tv_nsec = left % 1000000000;
      timeout = &ts;
    }
    long r = raw_syscall(SYS_ppoll, reinterpret_cast<long>(&p), 1, reinterpret_cast<long>(timeout), 0, 8);
    if (period && now_ns() >= next) {
      inspect::Buffer line;
      inspect::trace_line(&line);
      line.append("", 1);
      log::always("%s", line.data());
      next += period;
      if (next < now_ns()) next = now_ns() + period;
    }
    if (r <= 0 || !listening || !(p.revents & POLLIN)) continue;
    long fd = raw_syscall(SYS_accept4, g_listen_fd, 0, 0, SOCK_CLOEXEC);
    if (fd < 0) {
      if (fd == -EBADF || fd == -EINVAL || fd == -ENOTSOCK) listening = false;
      continue;
    }
    // A client's connection is the library's too: out of the program's
    // numbers and its closing sweeps while it is served.
    int client = own_fds::adopt(static_cast<int>(fd));
    if (client < 0) continue;  // closed by the program's sweep meanwhile
    serve(client);
    own_fds::release(client);
    raw_syscall(SYS_close, client);
  }
}

void start_thread() {
  if (g_started.exchange(true, std::memory_order_relaxed)) return;
  int err = signals::start_runtime_thread(control_main, nullptr, 256 * 1024);
  if (err != 0) LOG_WARN("cannot start the control thread: %s", strerror(err));
}

}  // namespace

void setup() {
  if (!config::get().control || g_listen_fd >= 0) return;
  char dir[sizeof g_path];
  if (!choose_dir(dir, sizeof dir - 16)) return;
  long pid = raw_syscall(SYS_getpid);
  int n = snprintf(g_path, sizeof g_path, "%s/%ld.sock", dir, pid);
  if (n <= 0 || n >= static_cast<int>(sizeof g_path)) return;
  long fd = raw_syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return;
  // The directory keeps everyone else out already; 0600 on the socket too.
  raw_syscall(SYS_fchmod, fd, 0600);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, g_path, static_cast<size_t>(n) + 1);
  long r = raw_syscall(SYS_bind, fd, reinterpret_cast<long>(&addr), sizeof addr);
  if (r == -EADDRINUSE) {
    // Named after our pid: left by an earlier process with this pid (killed,
    // or this one before an exec). Replace it.
    raw_syscall(SYS_unlinkat, AT_FDCWD, reinterpret_cast<long>(g_path), 0);
    r = raw_syscall(SYS_bind, fd, reinterpret_cast<long>(&addr), sizeof addr);
  }
  if (r == 0) {
    raw_syscall(SYS_fchmodat, AT_FDCWD, reinterpret_cast<long>(g_path), 0600);
    r = raw_syscall(SYS_listen, fd, 16);
  }
  if (r != 0) {
    LOG_WARN("control socket %s: %s", g_path, strerror(static_cast<int>(-r)));
    raw_syscall(SYS_close, fd);
    return;
  }
  struct stat st;
  if (raw_syscall(SYS_fstat, fd, reinterpret_cast<long>(&st)) != 0) {
    raw_syscall(SYS_close, fd);
    return;
  }
  g_dev = st.st_dev;
  g_ino = st.st_ino;
  int own = own_fds::adopt(static_cast<int>(fd));
  if (own < 0) return;  // the program closed the number meanwhile
  g_listen_fd = own;
  g_owner_pid = pid;
  atexit(remove_socket);
  LOG_INFO("control socket: %s", g_path);
}

void arm(Engine& e) {
  if (g_listen_fd < 0 || g_armed) return;
  g_armed = true;
  e.arm_background_poll(g_listen_fd, &g_poll);
}

void on_monitor_tick(bool worker0_stuck, long period_us) {
  if (g_started.load(std::memory_order_relaxed) || g_listen_fd < 0) return;
  if (!g_wanted.load(std::memory_order_relaxed)) {
    static long stuck_us = 0;
    if (!worker0_stuck) {
      stuck_us = 0;
      return;
    }
    stuck_us += period_us;
    if (stuck_us < 100 * 1000) return;
    stuck_us = 0;
    pollfd p{g_listen_fd, POLLIN, 0};
    timespec zero{0, 0};
    if (raw_syscall(SYS_ppoll, reinterpret_cast<long>(&p), 1, reinterpret_cast<long>(&zero), 0, 8) <= 0) return;
  }
  start_thread();
}

void start_if_tracing() {
  if (trace_period_ns() > 0) start_thread();
}

void dump_to_log() {
  inspect::Buffer b;
  inspect::dump(&b, false);
  b.append("", 1);
  char* p = const_cast<char*>(b.data());
  while (*p) {
    char* nl = strchr(p, '\n');
    if (nl) *nl = 0;
    log::always("%s", p);
    if (!nl) break;
    p = nl + 1;
  }
}

void forget_after_fork() {
  if (g_listen_fd < 0) return;
  own_fds::release(g_listen_fd);
  raw_syscall(SYS_close, g_listen_fd);
  g_listen_fd = -1;
}

}  // namespace unblock::control
