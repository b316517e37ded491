// unblock-ctl: asks a process running under unblock what its threads do.
//
//   unblock-ctl dump PID [--json]    every thread, its state and what it waits for
//   unblock-ctl stats PID [--json]   the runtime's counters, now
//   unblock-ctl top PID [-d SECONDS] [-n COUNT]   the counters as rates, refreshed
//   unblock-ctl faults PID list|add CMD|remove NAME  fault rules (fiu-ctrl's syntax)
//
// It talks to the process's control socket (runtime/control.h): PID.sock in
// the directory the process chose, found from its environment
// (/proc/PID/environ: UNBLOCK_CONTROL_DIR, XDG_RUNTIME_DIR) or the defaults
// (/run/unblock, /run/user/UID/unblock). Only the process's owner and root
// get an answer.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

int usage() {
  fprintf(stderr,
          "usage: unblock-ctl dump PID [--json]\n"
          "       unblock-ctl stats PID [--json]\n"
          "       unblock-ctl top PID [-d SECONDS] [-n COUNT]\n"
          "       unblock-ctl faults PID list | add 'COMMAND' | remove NAME\n"
          "         (COMMAND as fiu-ctrl takes it: enable name=posix/io/net/recv,failinfo=104,fd=5 ...)\n");
  return 2;
}

std::string env_of(long pid, const char* name) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/environ", pid);
  FILE* f = fopen(path, "r");
  if (!f) return "";
  std::string all;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) all.append(buf, n);
  fclose(f);
  std::string key = std::string(name) + "=";
  for (size_t i = 0; i < all.size();) {
    size_t end = all.find('\0', i);
    if (end == std::string::npos) end = all.size();
    if (all.compare(i, key.size(), key) == 0) return all.substr(i + key.size(), end - i - key.size());
    i = end + 1;
  }
  return "";
}

// Connects to PID's socket; -1 with a message if none answers.
int connect_to(long pid) {
  std::vector<std::string> dirs;
  std::string d = env_of(pid, "UNBLOCK_CONTROL_DIR");
  if (!d.empty()) dirs.push_back(d);
  d = env_of(pid, "XDG_RUNTIME_DIR");
  if (!d.empty()) dirs.push_back(d + "/unblock");
  dirs.push_back("/run/unblock");
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld", pid);
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "unblock-ctl: no process %ld\n", pid);
    return -1;
  }
  dirs.push_back("/run/user/" + std::to_string(st.st_uid) + "/unblock");
  int last_err = ENOENT;
  for (const std::string& dir : dirs) {
    std::string p = dir + "/" + std::to_string(pid) + ".sock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (p.size() >= sizeof addr.sun_path) continue;
    memcpy(addr.sun_path, p.c_str(), p.size() + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    if (errno != ENOENT || last_err == ENOENT) last_err = errno;
    close(fd);
  }
  if (last_err == EACCES || last_err == EPERM) {
    fprintf(stderr, "unblock-ctl: permission denied: process %ld belongs to another user\n", pid);
  } else {
    fprintf(stderr,
            "unblock-ctl: process %ld has no control socket (%s): not running under unblock, its runtime not started "
            "(no thread created yet), or UNBLOCK_CONTROL=0\n",
            pid, strerror(last_err));
  }
  return -1;
}

// Sends one request and returns the whole answer; false on failure.
bool ask(long pid, const char* request, std::string* out) {
  int fd = connect_to(pid);
  if (fd < 0) return false;
  std::string line = std::string(request) + "\n";
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    perror("unblock-ctl: send");
    close(fd);
    return false;
  }
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  close(fd);
  if (out->compare(0, 7, "error: ") == 0) {
    fprintf(stderr, "unblock-ctl: %s", out->c_str() + 7);
    return false;
  }
  return true;
}

using Counters = std::map<std::string, double>;

// "key value" lines and "worker.N k=v ..." lines into one map.
Counters parse(const std::string& text, std::vector<std::string>* worker_lines) {
  Counters c;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\n', i);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(i, end - i);
    i = end + 1;
    if (line.compare(0, 7, "worker.") == 0) {
      worker_lines->push_back(line);
      std::string w = line.substr(0, line.find(' '));
      size_t p = line.find(' ');
      while (p != std::string::npos) {
        size_t q = line.find(' ', p + 1);
        std::string kv = line.substr(p + 1, q == std::string::npos ? std::string::npos : q - p - 1);
        size_t eq = kv.find('=');
        if (eq != std::string::npos) c[w + "." + kv.substr(0, eq)] = atof(kv.c_str() + eq + 1);
        p = q;
      }
      continue;
    }
    size_t sp = line.find(' ');
    if (sp != std::string::npos) c[line.substr(0, sp)] = atof(line.c_str() + sp + 1);
  }
  return c;
}

int top(long pid, double delay, long count) {
  std::string prev_text;
  if (!ask(pid, "stats", &prev_text)) return 1;
  std::vector<std::string> wl;
  Counters prev = parse(prev_text, &wl);
  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  bool tty = isatty(1);
  for (long iter = 0; count <= 0 || iter < count; ++iter) {
    timespec ts{static_cast<time_t>(delay), static_cast<long>((delay - static_cast<long>(delay)) * 1e9)};
    nanosleep(&ts, nullptr);
    std::string text;
    if (!ask(pid, "stats", &text)) return 1;
    timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    t0 = t1;
    wl.clear();
    Counters cur = parse(text, &wl);
    auto rate = [&](const char* k) { return (cur[k] - prev[k]) / dt; };
    if (tty) printf("\033[H\033[2J");
    printf("unblock-ctl top - pid %ld, every %.1f s\n", pid, delay);
    printf("workers %.0f (busy %.0f, idle %.0f)   OS threads: %.0f carriers (%.0f spare)\n", cur["workers"],
           cur["workers_busy"], cur["workers_idle"], cur["os_threads_carriers"], cur["os_threads_spare"]);
    printf("threads %.0f: %.0f running, %.0f runnable, %.0f parked, %.0f handed off\n", cur["threads"],
           cur["threads_running"], cur["threads_runnable"], cur["threads_parked"], cur["threads_handed_off"]);
    printf("parked by reason:");
    for (auto& [k, v] : cur) {
      if (k.compare(0, 7, "parked_") == 0) printf(" %s %.0f", k.c_str() + 7, v);
    }
    printf("\n");
    printf("switches/s %.0f   parks/s %.0f   direct switches/s %.0f   ring enters/s %.0f\n", rate("switches"),
           rate("parks"), rate("direct_switches"), rate("ring_enters"));
    printf("direct sends/s %.0f   ops in flight %.0f   hand-offs/s %.1f (total %.0f, refused %.0f)   threads created/s %.0f\n",
           rate("direct_sends"), cur["ops_in_flight"], rate("handoffs"), cur["handoffs"], cur["handoff_refused"],
           rate("fibers_spawned"));
    printf("\n%-8s %-8s %-8s %9s %6s %10s %5s %5s %12s %10s\n", "WORKER", "CARRIER", "IN", "RUNQUEUE", "INBOX",
           "IN_FLIGHT", "SQ", "CQ", "SWITCHES/s", "PARKS/s");
    for (int w = 0; w < static_cast<int>(cur["workers"]); ++w) {
      std::string p = "worker." + std::to_string(w) + ".";
      std::string in = "?";
      const std::string& line = w < static_cast<int>(wl.size()) ? wl[w] : std::string();
      size_t a = line.find(" in=");
      if (a != std::string::npos) in = line.substr(a + 4, line.find(' ', a + 4) - a - 4);
      printf("%-8d %-8.0f %-8s %9.0f %6.0f %10.0f %5.0f %5.0f %12.0f %10.0f\n", w, cur[p + "carrier"], in.c_str(),
             cur[p + "run_queue"], cur[p + "inbox"], cur[p + "in_flight"], cur[p + "sq"], cur[p + "cq"],
             (cur[p + "switches"] - prev[p + "switches"]) / dt, (cur[p + "parks"] - prev[p + "parks"]) / dt);
    }
    fflush(stdout);
    prev = cur;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  std::string cmd = argv[1];
  char* end = nullptr;
  long pid = strtol(argv[2], &end, 10);
  if (!*argv[2] || *end || pid <= 0) return usage();
  signal(SIGPIPE, SIG_IGN);
  if (cmd == "faults") {
    if (argc < 4) return usage();
    std::string sub = argv[3], req = "faults " + sub;
    if (sub == "add" || sub == "remove") {
      if (argc != 5) return usage();
      req += " " + std::string(argv[4]);
    } else if (sub != "list" || argc != 4) {
      return usage();
    }
    if (req.find('\n') != std::string::npos) return usage();
    std::string out;
    if (!ask(pid, req.c_str(), &out)) return 1;
    fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  bool json = false;
  double delay = 1.0;
  long count = 0;
  for (int i = 3; i < argc; ++i) {
    if (!strcmp(argv[i], "--json")) json = true;
    else if (!strcmp(argv[i], "-d") && i + 1 < argc) delay = atof(argv[++i]);
    else if (!strcmp(argv[i], "-n") && i + 1 < argc) count = atol(argv[++i]);
    else return usage();
  }
  if (delay < 0.1) delay = 0.1;
  signal(SIGPIPE, SIG_IGN);
  if (cmd == "dump" || cmd == "stats") {
    std::string out;
    if (!ask(pid, (cmd + (json ? " json" : "")).c_str(), &out)) return 1;
    fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  if (cmd == "top") return top(pid, delay, count);
  return usage();
}
