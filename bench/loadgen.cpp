// loadgen: a closed-loop TCP echo load generator on io_uring.
//
// Each of C connections sends a message of S bytes, waits for the whole echo,
// checks it byte for byte, and sends the next (closed loop, like
// rust_echo_bench). One thread, one ring: on loopback the client pays the
// receiver's TCP path, and an epoll client caps near 110k msg/s here, so the
// generator uses io_uring to stay out of the way. It prints its own CPU share
// so a reader can see it was not the bottleneck.
//
// Modes:
//   echo  (default) run for --duration seconds after --warmup seconds;
//         or --messages N per connection, then stop.
//   hold  open C connections, echo one message on each (verified), keep them
//         open --duration seconds, then echo once more on each and close.
//
// Connections can be spread over several source addresses (--sources
// 127.0.0.2,127.0.0.3) when one address's ephemeral ports would run out.
//
// Connect phase: at most --connect-window (default 512) connections are
// outstanding at a time, a new connect starting as soon as one settles. A
// connection settles when its first message has come back (or it failed),
// not when connect() completes: connect() completes once the kernel finished
// the handshake and queued the connection for accept(), so counting that
// alone let thousands wait in the listen backlog (somaxconn 4096 here) of a
// server that accepts slower than the kernel handshakes, and the overflow
// showed as dropped handshakes and resets. Connections wait idle until all
// are open; then the echo (or hold) phase starts for every one together.
// Failed connects are counted by errno and reported.
//
// Output: one human line, one line of echoes per connection in the measured
// phase (min, p1, median, p99, max, connections with none: a fairness check),
// and, with --json, one JSON object on stdout (last). The CPU share is given
// for the whole run and for the measured phase alone.
#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string addr = "127.0.0.1";
  int port = 7000;
  int conns = 100;
  size_t size = 64;
  double duration = 5;
  double warmup = 1;
  long messages = 0;  // per connection; 0: run by time
  bool hold = false;
  bool json = false;
  int connect_window = 512;
  double connect_timeout = 60;
  std::vector<std::string> sources;
};

enum Phase { kConnecting, kSending, kReceiving, kIdle, kDone, kFailed };

struct Conn {
  int fd = -1;
  Phase phase = kConnecting;
  size_t sent = 0, got = 0;
  uint64_t seq = 0;
  long done_msgs = 0;
  long measured_msgs = 0;  // echoes completed in the measured phase
  double started = 0;
  bool in_window = false;  // counted in Run::window_open until it settles
  std::vector<char> out, in;
};

double now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

void fill(Conn& c, int id) {
  for (size_t i = 0; i < c.out.size(); ++i) c.out[i] = static_cast<char>((id * 131 + c.seq * 17 + i) & 0xff);
}

[[noreturn]] void usage() {
  fprintf(stderr,
          "usage: loadgen [--addr A] [--port P] [--conns C] [--size S] [--duration SEC] [--warmup SEC]\n"
          "               [--messages N] [--hold] [--sources A,B,...] [--connect-window N]\n"
          "               [--connect-timeout SEC] [--json]\n");
  exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--addr") o.addr = val();
    else if (a == "--port") o.port = atoi(val());
    else if (a == "--conns") o.conns = atoi(val());
    else if (a == "--size") o.size = strtoul(val(), nullptr, 10);
    else if (a == "--duration") o.duration = atof(val());
    else if (a == "--warmup") o.warmup = atof(val());
    else if (a == "--messages") o.messages = atol(val());
    else if (a == "--hold") o.hold = true;
    else if (a == "--json") o.json = true;
    else if (a == "--connect-window" || a == "--connect-batch") o.connect_window = atoi(val());
    else if (a == "--connect-timeout") o.connect_timeout = atof(val());
    else if (a == "--sources") {
      std::string s = val();
      size_t p = 0;
      while (p <= s.size()) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        if (q > p) o.sources.push_back(s.substr(p, q - p));
        p = q + 1;
      }
    } else usage();
  }
  if (o.conns < 1 || o.size < 1 || o.port <= 0 || o.connect_window < 1) usage();
  return o;
}

// user_data: connection index << 2 | operation.
enum Op : uint64_t { kOpConnect = 0, kOpSend = 1, kOpRecv = 2 };

struct Run {
  Options o;
  io_uring ring{};
  std::vector<Conn> conns;
  std::vector<sockaddr_in> sources;
  sockaddr_in target{};
  long connected = 0, connect_failed = 0, errors = 0, verify_failed = 0;
  long measured_msgs = 0;
  std::vector<float> latencies_us;
  bool measuring = false;
  bool stopping = false;
  bool connect_phase = true;  // echoes stop after the first until every connection is open
  int active = 0;  // operations in flight
  int next_connect = 0;  // connections [0, next_connect) were started
  int window_open = 0;   // started and not yet settled (see the header)
  // Failed connects by errno: Linux errnos end at EHWPOISON (133); the last slot counts anything else.
  static constexpr int kErrnoSlots = 135;
  int connect_errno[kErrnoSlots] = {};

  void count_connect_failure(int err) {
    ++connect_failed;
    ++connect_errno[err > 0 && err < kErrnoSlots - 1 ? err : kErrnoSlots - 1];
  }

  void settle(Conn& c) {
    if (!c.in_window) return;
    c.in_window = false;
    --window_open;
  }

  // Starts connects until the window is full or every connection started.
  void fill_window() {
    while (window_open < o.connect_window && next_connect < static_cast<int>(conns.size())) {
      submit_connect(next_connect++);
    }
  }

  void submit_connect(int i) {
    Conn& c = conns[i];
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c.fd < 0) {
      c.phase = kFailed;
      count_connect_failure(errno);
      return;
    }
    c.in_window = true;
    ++window_open;
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!sources.empty()) {
      sockaddr_in& s = sources[i % sources.size()];
      bind(c.fd, reinterpret_cast<sockaddr*>(&s), sizeof s);
    }
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_connect(sqe, c.fd, reinterpret_cast<sockaddr*>(&target), sizeof target);
    io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(i) << 2 | kOpConnect);
    ++active;
  }

  io_uring_sqe* get_sqe() {
    io_uring_sqe* s;
    while (!(s = io_uring_get_sqe(&ring))) io_uring_submit(&ring);
    return s;
  }

  void submit_send(int i) {
    Conn& c = conns[i];
    if (c.sent == 0) {
      fill(c, i);
      c.started = now();
    }
    io_uring_sqe* s = get_sqe();
    io_uring_prep_send(s, c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, static_cast<uint64_t>(i) << 2 | kOpSend);
    c.phase = kSending;
    ++active;
  }

  void submit_recv(int i) {
    Conn& c = conns[i];
    io_uring_sqe* s = get_sqe();
    io_uring_prep_recv(s, c.fd, c.in.data() + c.got, c.in.size() - c.got, 0);
    io_uring_sqe_set_data64(s, static_cast<uint64_t>(i) << 2 | kOpRecv);
    c.phase = kReceiving;
    ++active;
  }

  void fail(int i) {
    Conn& c = conns[i];
    if (c.phase != kFailed) ++errors;
    c.phase = kFailed;
    settle(c);
  }

  // Called when a whole message came back; decides what the connection does next.
  void message_done(int i, bool another) {
    Conn& c = conns[i];
    if (memcmp(c.in.data(), c.out.data(), c.out.size()) != 0) ++verify_failed;
    if (measuring) {
      ++measured_msgs;
      ++c.measured_msgs;
      latencies_us.push_back(static_cast<float>((now() - c.started) * 1e6));
    }
    ++c.done_msgs;
    ++c.seq;
    c.sent = c.got = 0;
    settle(c);
    if (another && !stopping && !connect_phase) submit_send(i);
    else c.phase = kIdle;
  }

  bool wants_more(const Conn& c) const {
    if (o.hold) return false;
    if (o.messages) return c.done_msgs + 1 < o.messages;
    return true;
  }

  void handle(io_uring_cqe* cqe) {
    int i = static_cast<int>(cqe->user_data >> 2);
    Op op = static_cast<Op>(cqe->user_data & 3);
    int res = cqe->res;
    Conn& c = conns[i];
    --active;
    switch (op) {
      case kOpConnect:
        if (c.phase == kFailed) return;  // given up at the connect deadline; counted then
        if (res < 0) {
          c.phase = kFailed;
          count_connect_failure(-res);
          settle(c);
          close(c.fd);
          c.fd = -1;
          return;
        }
        ++connected;
        submit_send(i);
        return;
      case kOpSend:
        if (res <= 0) return fail(i);
        c.sent += static_cast<size_t>(res);
        if (c.sent < c.out.size()) submit_send(i);
        else submit_recv(i);
        return;
      case kOpRecv:
        if (res <= 0) return fail(i);
        c.got += static_cast<size_t>(res);
        if (c.got < c.in.size()) submit_recv(i);
        else message_done(i, wants_more(c));
        return;
    }
  }

  void pump(double until) {
    while (active > 0 && now() < until) {
      io_uring_submit(&ring);
      __kernel_timespec ts{0, 100 * 1000 * 1000};
      io_uring_cqe* cqe;
      int r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
      if (r < 0 && r != -ETIME && r != -EINTR) break;
      unsigned head, n = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        handle(cqe);
        ++n;
      }
      io_uring_cq_advance(&ring, n);
      if (connect_phase) fill_window();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Run run;
  run.o = parse(argc, argv);
  const Options& o = run.o;
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < static_cast<rlim_t>(o.conns) + 64) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, static_cast<rlim_t>(o.conns) + 64);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  run.target.sin_family = AF_INET;
  run.target.sin_port = htons(static_cast<uint16_t>(o.port));
  if (inet_pton(AF_INET, o.addr.c_str(), &run.target.sin_addr) != 1) usage();
  for (const std::string& s : o.sources) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (inet_pton(AF_INET, s.c_str(), &a.sin_addr) != 1) usage();
    run.sources.push_back(a);
  }
  io_uring_params p{};
  // The generator must not tax the server. Without these flags every
  // completion the server's send causes here is signalled with an IPI
  // (TWA_SIGNAL), even while this thread is running, and the server's CPU
  // pays for it inside its send: at 1,000 echo connections that was 36% of
  // the server's time under unblock and 29% for the io_uring server, and the
  // share grew as a server batched its sends less (docs/benchmarks/README.md).
  // Deferred task running posts completions only when this thread asks for
  // them (it is the ring's only user) and wakes it only when it waits;
  // cooperative task running (older kernels) at least never interrupts it.
  const unsigned tries[] = {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                            IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0};
  int ret = -EINVAL;
  for (unsigned extra : tries) {
    p = io_uring_params{};
    p.flags = IORING_SETUP_CQSIZE | extra;
    p.cq_entries = static_cast<unsigned>(std::max(4096, o.conns * 2));
    ret = io_uring_queue_init_params(4096, &run.ring, &p);
    if (ret != -EINVAL) break;
  }
  if (ret < 0) {
    errno = -ret;
    perror("io_uring");
    return 1;
  }
  run.conns.resize(o.conns);
  for (Conn& c : run.conns) {
    c.out.resize(o.size);
    c.in.resize(o.size);
  }
  double cpu0 = cpu_seconds();
  double t0 = now();
  // Connect phase: a bounded window of outstanding connections (see the header).
  double connect_deadline = t0 + o.connect_timeout;
  run.fill_window();
  while ((run.window_open > 0 || run.next_connect < o.conns) && now() < connect_deadline) {
    run.pump(std::min(connect_deadline, now() + 0.05));
    run.fill_window();
  }
  // Connections still not connected at the deadline count as failed connects.
  long connect_timed_out = 0;
  for (int i = 0; i < o.conns; ++i) {
    Conn& c = run.conns[i];
    if (i >= run.next_connect || c.phase == kConnecting) {
      c.phase = kFailed;
      run.settle(c);
      run.count_connect_failure(ETIMEDOUT);
      ++connect_timed_out;
    }
  }
  run.connect_phase = false;
  double connect_secs = now() - t0;
  // Every open connection echoed once; the echo modes now start them all.
  if (!o.hold) {
    for (int i = 0; i < o.conns; ++i) {
      Conn& c = run.conns[i];
      if (c.phase == kIdle && run.wants_more(c)) run.submit_send(i);
    }
  }
  long msgs = 0;
  double elapsed = 0;
  double cpu_m0 = 0, cpu_m = -1;  // CPU time of the measured phase
  if (o.hold) {
    // Every connection echoed once; hold them, then echo once more on each.
    run.pump(now() + 30);
    double hold_until = now() + o.duration;
    while (now() < hold_until) usleep(50000);
    for (int i = 0; i < o.conns; ++i) {
      if (run.conns[i].phase == kIdle) run.submit_send(i);
    }
    run.measuring = true;
    cpu_m0 = cpu_seconds();
    double h0 = now();
    run.pump(now() + 60);
    elapsed = now() - h0;
    cpu_m = cpu_seconds() - cpu_m0;
    msgs = run.measured_msgs;
  } else if (o.messages) {
    run.measuring = true;
    cpu_m0 = cpu_seconds();
    double m0 = now();
    run.pump(now() + 3600);
    elapsed = now() - m0;
    cpu_m = cpu_seconds() - cpu_m0;
    msgs = 0;
    for (const Conn& c : run.conns) msgs += c.done_msgs;
  } else {
    run.pump(now() + o.warmup);
    run.measuring = true;
    cpu_m0 = cpu_seconds();
    double m0 = now();
    run.pump(m0 + o.duration);
    elapsed = now() - m0;
    cpu_m = cpu_seconds() - cpu_m0;
    run.stopping = true;
    run.measuring = false;
    run.pump(now() + 5);
    msgs = run.measured_msgs;
  }
  double cpu = cpu_seconds() - cpu0;
  double wall = now() - t0;
  long verified_ok = 0;
  for (const Conn& c : run.conns) {
    if (c.phase != kFailed && c.done_msgs > 0) ++verified_ok;
  }
  // Failed connects by errno, e.g. "ECONNRESET:3,ETIMEDOUT:2" ("" if none).
  std::string why;
  for (int e = 1; e < Run::kErrnoSlots; ++e) {
    if (!run.connect_errno[e]) continue;
    const char* name = e == Run::kErrnoSlots - 1 ? "other" : strerrorname_np(e);
    why += (why.empty() ? "" : ",") + std::string(name ? name : "?") + ":" + std::to_string(run.connect_errno[e]);
  }
  double share = wall > 0 ? cpu / wall : 0;
  // getrusage ticks are coarse: a phase shorter than 0.1 s gives no share of its own.
  double share_m = cpu_m >= 0 && elapsed >= 0.1 ? cpu_m / elapsed : share;
  std::vector<float>& l = run.latencies_us;
  std::sort(l.begin(), l.end());
  auto pct = [&](double q) { return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<size_t>(q * l.size()))]; };
  double rate = elapsed > 0 ? msgs / elapsed : 0;
  printf("conns %d connected %ld connect_failed %ld%s%s%s errors %ld verify_failed %ld msgs %ld rate %.0f msg/s "
         "p50 %.0f us p99 %.0f us p999 %.0f us connect %.2f s (window %d) loadgen_cpu %.0f%% (measured phase %.0f%%)\n",
         o.conns, run.connected, run.connect_failed, why.empty() ? "" : " (", why.c_str(), why.empty() ? "" : ")",
         run.errors, run.verify_failed, msgs, rate, pct(0.5), pct(0.99), pct(0.999), connect_secs, o.connect_window,
         100.0 * share, 100.0 * share_m);
  // Fairness: how evenly the measured echoes spread over the connections. A
  // closed loop served in FIFO order gives every connection about the same
  // count; a latency tail made by starved connections shows as a low minimum.
  std::vector<long> per;
  for (const Conn& c : run.conns) {
    if (c.phase != kFailed) per.push_back(c.measured_msgs);
  }
  std::sort(per.begin(), per.end());
  auto cpct = [&](double q) {
    return per.empty() ? 0L : per[std::min(per.size() - 1, static_cast<size_t>(q * per.size()))];
  };
  long starved = 0;
  for (long n : per) starved += n == 0;
  long per_max = per.empty() ? 0L : per.back();
  printf("per-connection messages: min %ld p1 %ld p50 %ld p99 %ld max %ld, connections with none %ld\n", cpct(0),
         cpct(0.01), cpct(0.5), cpct(0.99), per_max, starved);
  if (o.json) {
    printf("{\"conns\": %d, \"connected\": %ld, \"connect_failed\": %ld, \"errors\": %ld, \"verify_failed\": %ld, "
           "\"messages\": %ld, \"rate\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
           "\"measured_seconds\": %.3f, \"connect_seconds\": %.3f, \"connect_timed_out\": %ld, \"connect_failed_by_errno\": \"%s\", "
           "\"loadgen_cpu_share\": %.3f, \"loadgen_cpu_share_measured\": %.3f, \"conns_ok\": %ld, "
           "\"per_conn_min\": %ld, \"per_conn_p1\": %ld, \"per_conn_p50\": %ld, \"per_conn_max\": %ld, "
           "\"conns_starved\": %ld}\n",
           o.conns, run.connected, run.connect_failed, run.errors, run.verify_failed, msgs, rate, pct(0.5),
           pct(0.99), pct(0.999), elapsed, connect_secs, connect_timed_out, why.c_str(), share, share_m, verified_ok,
           cpct(0), cpct(0.01), cpct(0.5), per_max, starved);
  }
  for (Conn& c : run.conns) {
    if (c.fd >= 0) close(c.fd);
  }
  io_uring_queue_exit(&run.ring);
  bool ok = run.verify_failed == 0 && run.errors == 0 && run.connect_failed == 0;
  return ok ? 0 : 1;
}
