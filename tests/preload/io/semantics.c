// Kernel semantics kept for blocking calls made by threads: O_NONBLOCK,
// socket timeouts, EPIPE/SIGPIPE, connect, poll/select/epoll timeouts and
// result sets (fds above 1024 too), shutdown waking a blocked reader,
// SCM_RIGHTS, inherited fds, regular files. Prints results, not timings.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char* en(int e) {
  switch (e) {
    case 0: return "0";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case EINPROGRESS: return "EINPROGRESS";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EBADF: return "EBADF";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case ENOTSOCK: return "ENOTSOCK";
    default: return "other";
  }
}

static long long ms_since(struct timespec* t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int s) { (void)s; sigpipes++; }

static void* shutdown_reader(void* arg) {
  int fd = (int)(long)arg;
  char c;
  return (void*)recv(fd, &c, 1, 0);
}

static void* run(void* arg) {
  (void)arg;
  int sv[2];
  char buf[64];
  struct timespec t0;

  // O_NONBLOCK set by the program: EAGAIN at once, the flag left as set.
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  errno = 0;
  ssize_t r = read(sv[0], buf, sizeof buf);
  printf("nonblocking read: %zd %s\n", r, en(errno));
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("nonblocking recv: %zd %s, flag kept %d\n", r, en(errno), (fcntl(sv[0], F_GETFL) & O_NONBLOCK) != 0);
  int on = 1;
  ioctl(sv[1], FIONBIO, &on);
  r = read(sv[1], buf, sizeof buf);
  printf("FIONBIO read: %zd %s\n", r, en(errno));
  int d = dup(sv[1]);
  on = 0;
  ioctl(d, FIONBIO, &on);  // the shared description becomes blocking again
  write(sv[0], "x", 1);
  r = read(sv[1], buf, sizeof buf);
  printf("read after dup made it blocking: %zd\n", r);
  close(d);
  close(sv[0]);
  close(sv[1]);

  // MSG_DONTWAIT on a blocking socket.
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  r = recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
  printf("MSG_DONTWAIT recv: %zd %s\n", r, en(errno));

  // SO_RCVTIMEO: EAGAIN when nothing came, else what came.
  struct timeval tv = {0, 50000};
  setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("SO_RCVTIMEO recv: %zd %s waited>=50ms %d\n", r, en(errno), ms_since(&t0) >= 49);
  r = read(sv[0], buf, sizeof buf);
  printf("SO_RCVTIMEO read: %zd %s\n", r, en(errno));
  write(sv[1], "abc", 3);
  r = recv(sv[0], buf, sizeof buf, 0);
  printf("SO_RCVTIMEO with data: %zd\n", r);

  // SO_SNDTIMEO: a big send nobody reads returns the partial count.
  int small = 4096;
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(sv[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  static char big[1 << 20];
  r = send(sv[1], big, sizeof big, 0);
  printf("SO_SNDTIMEO send: partial %d\n", r > 0 && r < (ssize_t)sizeof big);
  r = send(sv[1], big, sizeof big, 0);
  printf("SO_SNDTIMEO send on full buffer: %zd %s\n", r, en(errno));
  close(sv[0]);

  // EPIPE and SIGPIPE.
  r = send(sv[1], "x", 1, MSG_NOSIGNAL);
  printf("send to closed peer, MSG_NOSIGNAL: %zd %s sigpipes %d\n", r, en(errno), (int)sigpipes);
  r = send(sv[1], "x", 1, 0);
  printf("send to closed peer: %zd %s sigpipes %d\n", r, en(errno), (int)sigpipes);
  r = write(sv[1], "x", 1);
  printf("write to closed peer: %zd %s sigpipes %d\n", r, en(errno), (int)sigpipes);
  close(sv[1]);

  // connect: blocking refused, non-blocking in progress.
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(ls, (struct sockaddr*)&a, sizeof a);
  socklen_t alen = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &alen);
  close(ls);  // nobody listens on that port now
  int c = socket(AF_INET, SOCK_STREAM, 0);
  r = connect(c, (struct sockaddr*)&a, sizeof a);
  printf("blocking connect to closed port: %zd %s\n", r, en(errno));
  close(c);
  ls = socket(AF_INET, SOCK_STREAM, 0);
  a.sin_port = 0;
  bind(ls, (struct sockaddr*)&a, sizeof a);
  getsockname(ls, (struct sockaddr*)&a, &alen);
  listen(ls, 4);
  c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  r = connect(c, (struct sockaddr*)&a, sizeof a);
  int e = errno;
  struct pollfd p = {c, POLLOUT, 0};
  int pr = poll(&p, 1, 1000);
  int soerr = -1;
  socklen_t sl = sizeof soerr;
  getsockopt(c, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  printf("non-blocking connect: %zd %s, poll %d POLLOUT %d, SO_ERROR %s\n", r, en(e), pr, (p.revents & POLLOUT) != 0,
         en(soerr));
  close(c);
  r = accept(ls, NULL, NULL);
  printf("accept pending connection: %d\n", r >= 0);
  if (r >= 0) close((int)r);
  fcntl(ls, F_SETFL, O_NONBLOCK);
  r = accept(ls, NULL, NULL);
  printf("non-blocking accept, nothing pending: %zd %s\n", r, en(errno));
  close(ls);

  // poll / select / epoll.
  int pp[2];
  pipe(pp);
  struct pollfd pf[3] = {{pp[0], POLLIN, 0}, {-1, POLLIN, 0}, {pp[1], POLLOUT, 0}};
  pr = poll(pf, 3, 30);
  printf("poll: %d in %d out %d\n", pr, pf[0].revents, pf[2].revents);
  pf[2].events = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pr = poll(pf, 2, 30);
  printf("poll timeout: %d waited>=30ms %d\n", pr, ms_since(&t0) >= 29);
  struct pollfd bad = {4000, POLLIN, 0};
  pr = poll(&bad, 1, 10);
  printf("poll closed fd: %d POLLNVAL %d\n", pr, (bad.revents & POLLNVAL) != 0);
  int high = dup2(pp[0], 1500);
  write(pp[1], "y", 1);
  struct pollfd hp = {high, POLLIN, 0};
  pr = poll(&hp, 1, 1000);
  printf("poll fd 1500: %d POLLIN %d\n", pr, (hp.revents & POLLIN) != 0);
  read(high, buf, 1);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = high};
  epoll_ctl(ep, EPOLL_CTL_ADD, high, &ev);
  struct epoll_event out[4];
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pr = epoll_wait(ep, out, 4, 30);
  printf("epoll timeout: %d waited>=30ms %d\n", pr, ms_since(&t0) >= 29);
  write(pp[1], "z", 1);
  pr = epoll_wait(ep, out, 4, 1000);
  printf("epoll ready: %d fd %d\n", pr, pr > 0 ? out[0].data.fd : -1);
  read(high, buf, 1);
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(pp[0], &rs);
  struct timeval st = {0, 30000};
  pr = select(pp[0] + 1, &rs, NULL, NULL, &st);
  printf("select timeout: %d set %d tv %ld.%06ld\n", pr, FD_ISSET(pp[0], &rs), (long)st.tv_sec, (long)st.tv_usec);
  write(pp[1], "w", 1);
  FD_SET(pp[0], &rs);
  st.tv_sec = 1;
  pr = select(pp[0] + 1, &rs, NULL, NULL, &st);
  printf("select ready: %d set %d\n", pr, FD_ISSET(pp[0], &rs));
  close(ep);
  close(high);
  close(pp[0]);
  close(pp[1]);

  // shutdown wakes a reader blocked in recv.
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pthread_t t;
  pthread_create(&t, NULL, shutdown_reader, (void*)(long)sv[0]);
  usleep(20000);
  shutdown(sv[0], SHUT_RDWR);
  void* rr;
  pthread_join(t, &rr);
  printf("recv after shutdown: %ld\n", (long)rr);
  close(sv[0]);
  close(sv[1]);

  // SCM_RIGHTS: a passed fd works like any other.
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pipe(pp);
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {"m", 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &pp[0], sizeof(int));
  sendmsg(sv[0], &msg, 0);
  char m;
  struct iovec riov = {&m, 1};
  char rc[CMSG_SPACE(sizeof(int))];
  struct msghdr rmsg = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rc, .msg_controllen = sizeof rc};
  r = recvmsg(sv[1], &rmsg, 0);
  int passed = -1;
  memcpy(&passed, CMSG_DATA(CMSG_FIRSTHDR(&rmsg)), sizeof(int));
  write(pp[1], "passed", 6);
  r = read(passed, buf, sizeof buf);
  printf("read on an fd received over SCM_RIGHTS: %zd '%.*s'\n", r, (int)(r > 0 ? r : 0), buf);
  close(passed);
  close(pp[0]);
  close(pp[1]);
  close(sv[0]);
  close(sv[1]);

  // An fd opened before the program started (stdin is /dev/null).
  printf("read inherited stdin: %zd\n", read(0, buf, sizeof buf));

  // Regular files: position, pread/pwrite, fsync.
  char path[] = "/tmp/unblock-io-XXXXXX";
  int f = mkstemp(path);
  write(f, "hello world", 11);
  printf("fsync %d fdatasync %d\n", fsync(f), fdatasync(f));
  lseek(f, 6, SEEK_SET);
  r = read(f, buf, 5);
  printf("read at position: %.*s, position now %ld\n", (int)r, buf, (long)lseek(f, 0, SEEK_CUR));
  pwrite(f, "HELLO", 5, 0);
  r = pread(f, buf, 11, 0);
  printf("pread: %.*s\n", (int)r, buf);
  printf("read at EOF: %zd\n", read(f, buf, sizeof buf));
  r = read(999, buf, 1);
  printf("read bad fd: %zd %s\n", r, en(errno));
  close(f);
  unlink(path);
  return NULL;
}

int main(void) {
  signal(SIGPIPE, on_sigpipe);
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  return 0;
}
