// uring_echo: the reference io_uring echo server (one thread, one ring,
// a recv and then a send in flight per connection, multishot accept,
// completions handled in batches, one io_uring_enter per loop). The ceiling
// unblock is measured against; not part of the library.
// Prints "listening on ADDR:PORT"; stops on SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

constexpr size_t kBuf = 16384;
enum : uint64_t { kAccept = 1, kRecv = 2, kSend = 3 };

struct Conn {
  char* buf = nullptr;
  size_t len = 0, sent = 0;
};

io_uring ring;

io_uring_sqe* sqe() {
  io_uring_sqe* s;
  while (!(s = io_uring_get_sqe(&ring))) io_uring_submit(&ring);
  return s;
}

uint64_t data(int fd, uint64_t op) { return static_cast<uint64_t>(fd) << 8 | op; }

io_uring_sqe* g_last;  // the SQE being filled

void post_recv(std::vector<Conn>& conns, int fd) {
  io_uring_prep_recv(g_last, fd, conns[fd].buf, kBuf, 0);
  io_uring_sqe_set_data64(g_last, data(fd, kRecv));
}

}  // namespace

int main(int argc, char** argv) {
  const char* addr = "127.0.0.1";
  int port = 7200;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-a")) addr = argv[i + 1];
    else if (!strcmp(argv[i], "-p")) port = atoi(argv[i + 1]);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, addr, &sa.sin_addr);
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) || listen(ls, 4096)) {
    perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof sa;
  getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len);
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
  p.cq_entries = 65536;
  if (io_uring_queue_init_params(4096, &ring, &p) < 0) {
    p.flags = IORING_SETUP_CQSIZE;
    if (io_uring_queue_init_params(4096, &ring, &p) < 0) {
      perror("io_uring");
      return 1;
    }
  }
  printf("listening on %s:%d\n", addr, ntohs(sa.sin_port));
  fflush(stdout);
  std::vector<Conn> conns(rl.rlim_cur);
  g_last = sqe();
  io_uring_prep_multishot_accept(g_last, ls, nullptr, nullptr, 0);
  io_uring_sqe_set_data64(g_last, data(ls, kAccept));
  long accepted = 0;
  while (!g_stop) {
    __kernel_timespec ts{0, 200 * 1000 * 1000};
    io_uring_cqe* cqe;
    int r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
    if (r < 0 && r != -ETIME && r != -EINTR) break;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++n;
      int fd = static_cast<int>(cqe->user_data >> 8);
      uint64_t op = cqe->user_data & 0xff;
      int res = cqe->res;
      if (op == kAccept) {
        if (!(cqe->flags & IORING_CQE_F_MORE)) {  // re-arm
          g_last = sqe();
          io_uring_prep_multishot_accept(g_last, ls, nullptr, nullptr, 0);
          io_uring_sqe_set_data64(g_last, data(ls, kAccept));
        }
        if (res < 0) continue;
        ++accepted;
        setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!conns[res].buf) conns[res].buf = static_cast<char*>(malloc(kBuf));
        g_last = sqe();
        post_recv(conns, res);
      } else if (op == kRecv) {
        if (res <= 0) {
          close(fd);
          continue;
        }
        conns[fd].len = static_cast<size_t>(res);
        conns[fd].sent = 0;
        g_last = sqe();
        io_uring_prep_send(g_last, fd, conns[fd].buf, conns[fd].len, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(g_last, data(fd, kSend));
      } else if (op == kSend) {
        if (res <= 0) {
          close(fd);
          continue;
        }
        Conn& c = conns[fd];
        c.sent += static_cast<size_t>(res);
        g_last = sqe();
        if (c.sent < c.len) {
          io_uring_prep_send(g_last, fd, c.buf + c.sent, c.len - c.sent, MSG_NOSIGNAL);
          io_uring_sqe_set_data64(g_last, data(fd, kSend));
        } else {
          post_recv(conns, fd);
        }
      }
    }
    io_uring_cq_advance(&ring, n);
  }
  printf("connections %ld\n", accepted);
  return 0;
}
