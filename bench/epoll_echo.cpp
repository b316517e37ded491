// epoll_echo: the reference event-loop echo server (one thread, epoll,
// non-blocking sockets, level-triggered reads, writes queued on EAGAIN).
// A ceiling to compare the thread-per-connection server against; not part of
// the library. Prints "listening on ADDR:PORT"; stops on SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

struct Conn {
  std::string pending;  // bytes read but not yet written back
};

}  // namespace

int main(int argc, char** argv) {
  const char* addr = "127.0.0.1";
  int port = 7100;
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
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
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
  printf("listening on %s:%d\n", addr, ntohs(sa.sin_port));
  fflush(stdout);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ls;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  std::vector<Conn> conns(rl.rlim_cur);
  std::vector<epoll_event> events(1024);
  char buf[65536];
  long accepted = 0;
  while (!g_stop) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event ce{};
          ce.events = EPOLLIN;
          ce.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
          ++accepted;
        }
        continue;
      }
      Conn& c = conns[fd];
      bool closed = false;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) c.pending.append(buf, static_cast<size_t>(r));
        else if (r == 0 || errno != EAGAIN) closed = true;
      }
      if (!closed && !c.pending.empty()) {
        ssize_t w = write(fd, c.pending.data(), c.pending.size());
        if (w > 0) c.pending.erase(0, static_cast<size_t>(w));
        else if (w < 0 && errno != EAGAIN) closed = true;
        epoll_event ce{};
        ce.events = c.pending.empty() ? EPOLLIN : (EPOLLIN | EPOLLOUT);
        ce.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ce);
      }
      if (closed) {
        c.pending.clear();
        close(fd);
      }
    }
  }
  printf("connections %ld\n", accepted);
  return 0;
}
