// Every entry point of an operation checks that operation's libfiu point.
//
// entry_points GROUP [thread]
// Sets up what GROUP needs (unaffected by the group's points), then calls
// each entry point of the group once and prints "NAME ok" or "NAME -1 ERRNO".
// With "thread" the calls run in a second thread (a fiber under unblock).
// Run plain, every line says ok; under unblock with the group's points
// enabled with errno=EIO (tests/fault/run_entry_points.sh), every line says
// EIO - the plain names, the 64 variants and the _FORTIFY_SOURCE entry
// points alike.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

// The fortified entry points, called by name (a _FORTIFY_SOURCE build calls
// them for the plain names).
ssize_t __read_chk(int, void*, size_t, size_t);
ssize_t __pread_chk(int, void*, size_t, off_t, size_t);
ssize_t __pread64_chk(int, void*, size_t, off64_t, size_t);
ssize_t __recv_chk(int, void*, size_t, size_t, int);
ssize_t __recvfrom_chk(int, void*, size_t, size_t, int, struct sockaddr*, socklen_t*);
int __poll_chk(struct pollfd*, nfds_t, int, size_t);
int __ppoll_chk(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*, size_t);
int __open_2(const char*, int);
int __open64_2(const char*, int);
int __openat_2(int, const char*, int);
int __openat64_2(int, const char*, int);

static const char* group;
static char dir[] = "/tmp/unblock-entry-XXXXXX";
static char path[256];

static void show(const char* name, long r) {
  if (r < 0) printf("%s -1 %s\n", name, strerrorname_np(errno));
  else printf("%s ok\n", name);
}

static void die(const char* what) {
  perror(what);
  exit(2);
}

static int file_fd(int flags) {
  int fd = open(path, flags, 0600);
  if (fd < 0) die("open");
  return fd;
}

// A connected TCP pair on loopback (listener closed), with `bytes` queued
// on both sides.
static void tcp_pair(int sv[2], int bytes) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 4) || getsockname(l, (struct sockaddr*)&a, &len))
    die("listen");
  sv[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (sv[0] < 0 || connect(sv[0], (struct sockaddr*)&a, sizeof a)) die("connect");
  sv[1] = accept(l, NULL, NULL);
  if (sv[1] < 0) die("accept");
  close(l);
  char buf[4096] = {0};
  if (bytes && (write(sv[0], buf, bytes) != bytes || write(sv[1], buf, bytes) != bytes)) die("fill");
}

static void run_read(void) {
  int fd = file_fd(O_RDONLY);
  char b[16];
  struct iovec v = {b, sizeof b};
  show("read", read(fd, b, sizeof b));
  show("__read_chk", __read_chk(fd, b, sizeof b, sizeof b));
  show("pread", pread(fd, b, sizeof b, 0));
  show("pread64", pread64(fd, b, sizeof b, 0));
  show("__pread_chk", __pread_chk(fd, b, sizeof b, 0, sizeof b));
  show("__pread64_chk", __pread64_chk(fd, b, sizeof b, 0, sizeof b));
  show("readv", readv(fd, &v, 1));
  show("preadv", preadv(fd, &v, 1, 0));
  show("preadv64", preadv64(fd, &v, 1, 0));
  close(fd);
}

static void run_write(void) {
  int fd = file_fd(O_WRONLY);
  char b[16] = "0123456789abcdef";
  struct iovec v = {b, sizeof b};
  show("write", write(fd, b, sizeof b));
  show("pwrite", pwrite(fd, b, sizeof b, 0));
  show("pwrite64", pwrite64(fd, b, sizeof b, 0));
  show("writev", writev(fd, &v, 1));
  show("pwritev", pwritev(fd, &v, 1, 0));
  show("pwritev64", pwritev64(fd, &v, 1, 0));
  close(fd);
}

static void run_recv(void) {
  int sv[2];
  tcp_pair(sv, 4096);
  char b[16];
  struct sockaddr_storage from;
  socklen_t len = sizeof from;
  struct iovec v = {b, sizeof b};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
  show("recv", recv(sv[1], b, sizeof b, 0));
  show("__recv_chk", __recv_chk(sv[1], b, sizeof b, sizeof b, 0));
  show("recvfrom", recvfrom(sv[1], b, sizeof b, 0, NULL, NULL));
  show("recvfrom+addr", recvfrom(sv[1], b, sizeof b, 0, (struct sockaddr*)&from, &len));
  show("__recvfrom_chk", __recvfrom_chk(sv[1], b, sizeof b, sizeof b, 0, NULL, NULL));
  show("recvmsg", recvmsg(sv[1], &m, 0));
  show("read(socket)", read(sv[1], b, sizeof b));
  close(sv[0]);
  close(sv[1]);
}

static void run_send(void) {
  int sv[2];
  tcp_pair(sv, 0);
  char b[16] = {0};
  struct iovec v = {b, sizeof b};
  struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
  show("send", send(sv[0], b, sizeof b, 0));
  show("sendto", sendto(sv[0], b, sizeof b, 0, NULL, 0));
  show("sendmsg", sendmsg(sv[0], &m, 0));
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  show("sendto+addr", sendto(u, b, sizeof b, 0, (struct sockaddr*)&to, sizeof to));
  close(u);
  close(sv[0]);
  close(sv[1]);
}

static void run_accept(void) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 4) || getsockname(l, (struct sockaddr*)&a, &len))
    die("listen");
  int c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c1, (struct sockaddr*)&a, sizeof a) || connect(c2, (struct sockaddr*)&a, sizeof a)) die("connect");
  int r = accept(l, NULL, NULL);
  show("accept", r);
  if (r >= 0) close(r);
  r = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  show("accept4", r);
  if (r >= 0) close(r);
  close(c1);
  close(c2);
  close(l);
}

static void run_connect(void) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 4) || getsockname(l, (struct sockaddr*)&a, &len))
    die("listen");
  int c = socket(AF_INET, SOCK_STREAM, 0);
  show("connect", connect(c, (struct sockaddr*)&a, sizeof a));
  close(c);
  close(l);
}

static void run_open(void) {
  // volatile flags keep the compiler from picking an entry point itself.
  volatile int rd = O_RDONLY;
  int fd;
#define TRY(name, call)   \
  fd = (call);            \
  show(name, fd);         \
  if (fd >= 0) close(fd)
  TRY("open", open(path, rd));
  TRY("open64", open64(path, rd));
  TRY("openat", openat(AT_FDCWD, path, rd));
  TRY("openat64", openat64(AT_FDCWD, path, rd));
  TRY("creat", creat(path, 0600));
  TRY("creat64", creat64(path, 0600));
  TRY("__open_2", __open_2(path, rd));
  TRY("__open64_2", __open64_2(path, rd));
  TRY("__openat_2", __openat_2(AT_FDCWD, path, rd));
  TRY("__openat64_2", __openat64_2(AT_FDCWD, path, rd));
#undef TRY
}

static void run_sync(void) {
  int fd = file_fd(O_WRONLY);
  show("fsync", fsync(fd));
  show("fdatasync", fdatasync(fd));
  show("close", close(fd));
  // Linux releases the descriptor even when close fails: it must be gone.
  errno = 0;
  printf("closed-fd-gone %s\n", fcntl(fd, F_GETFD) < 0 && errno == EBADF ? "yes" : "no");
}

static void run_poll(void) {
  int p[2];
  if (pipe(p)) die("pipe");
  struct pollfd pf = {.fd = p[0], .events = POLLIN};
  struct timespec ts = {0, 1000000};
  fd_set r;
  struct timeval tv = {0, 1000};
  show("poll", poll(&pf, 1, 1));
  show("__poll_chk", __poll_chk(&pf, 1, 1, sizeof pf));
  show("ppoll", ppoll(&pf, 1, &ts, NULL));
  show("__ppoll_chk", __ppoll_chk(&pf, 1, &ts, NULL, sizeof pf));
  FD_ZERO(&r);
  FD_SET(p[0], &r);
  show("select", select(p[0] + 1, &r, NULL, NULL, &tv));
  FD_ZERO(&r);
  FD_SET(p[0], &r);
  show("pselect", pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL));
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
  show("epoll_wait", epoll_wait(ep, &ev, 1, 1));
  show("epoll_pwait", epoll_pwait(ep, &ev, 1, 1, NULL));
  close(ep);
  close(p[0]);
  close(p[1]);
}

static void run_splice(void) {
  int sv[2];
  tcp_pair(sv, 0);
  int fd = file_fd(O_RDONLY);
  int p[2];
  if (pipe(p)) die("pipe");
  off64_t off = 0;
  show("splice", splice(fd, &off, p[1], NULL, 8, 0));
  off_t o = 0;
  show("sendfile", sendfile(sv[0], fd, &o, 8));
  off64_t o64 = 0;
  show("sendfile64", sendfile64(sv[0], fd, &o64, 8));
  close(fd);
  close(p[0]);
  close(p[1]);
  close(sv[0]);
  close(sv[1]);
}

static void run_socket(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  show("socket", s);
  if (s >= 0) close(s);
}

static void* run(void* arg) {
  static const struct {
    const char* name;
    void (*fn)(void);
  } groups[] = {{"read", run_read},     {"write", run_write},     {"recv", run_recv}, {"send", run_send},
                {"accept", run_accept}, {"connect", run_connect}, {"open", run_open}, {"sync", run_sync},
                {"poll", run_poll},     {"splice", run_splice},   {"socket", run_socket}};
  for (size_t i = 0; i < sizeof groups / sizeof *groups; ++i) {
    if (!strcmp(group, groups[i].name)) {
      groups[i].fn();
      return arg;
    }
  }
  fprintf(stderr, "unknown group %s\n", group);
  exit(2);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: entry_points GROUP [thread]\n");
    return 2;
  }
  group = argv[1];
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!mkdtemp(dir)) die("mkdtemp");
  snprintf(path, sizeof path, "%s/file", dir);
  // Created with raw-ish calls that no group's points touch.
  FILE* f = fopen(path, "w");
  if (!f) die("fopen");
  fputs("0123456789abcdef0123456789abcdef", f);
  fclose(f);
  if (argc > 2 && !strcmp(argv[2], "thread")) {
    pthread_t t;
    pthread_create(&t, NULL, run, NULL);
    pthread_join(t, NULL);
  } else {
    run(NULL);
  }
  unlink(path);
  rmdir(dir);
  return 0;
}
