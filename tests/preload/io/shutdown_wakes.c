// shutdown() and close() of an fd other threads are blocked on, under
// contention. Linux: shutdown(SHUT_RD) wakes a blocked recv with 0 (end of
// stream) and a blocked accept with EINVAL; shutdown(SHUT_WR) wakes a
// blocked send with EPIPE; poll sees the shutdown. close() wakes nobody: the
// blocked call keeps the open file and completes when its data arrives.
// Prints results, not timings.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { kReaders = 100, kAcceptors = 50 };

static atomic_int entered;
static atomic_int finished;  // reads that returned

static const char* en(int e) {
  switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL";
    case EPIPE: return "EPIPE";
    case EBADF: return "EBADF";
    case ECONNABORTED: return "ECONNABORTED";
    default: return strerror(e);
  }
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

// Waits until n threads announced they are about to block, then a little
// longer so that they very likely are. The outcome is the same either way:
// a call made after the shutdown returns what a woken one does.
static void await_entered(int n) {
  while (atomic_load(&entered) < n) sleep_ms(1);
  sleep_ms(50);
}

// Not so for close: a read that starts after it fails (EBADF) or reads the
// pipe that reused the number, and its thread is never joined. So the
// closing waits until each reader is in read(): /proc/self/task/ID/syscall
// gives the number of the system call a thread sleeps in ("running"
// otherwise). Bounded: 10 s. A thread whose id has no /proc entry (a fiber
// under the preload) is covered by the sleep of await_entered only.
static void await_in_read(pid_t tid) {
  char path[64], line[128];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  for (int i = 0; i < 10000; ++i) {
    FILE* f = fopen(path, "r");
    if (!f) return;
    int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    long nr;
    if (got && sscanf(line, "%ld", &nr) == 1 && nr == SYS_read) return;
    sleep_ms(1);
  }
}

struct Result {
  long ret;
  int err;
};

static void* do_recv(void* arg) {
  int fd = (int)(long)arg;
  char c;
  atomic_fetch_add(&entered, 1);
  struct Result* r = malloc(sizeof *r);
  errno = 0;
  r->ret = recv(fd, &c, 1, 0);
  r->err = errno;
  return r;
}

static void* do_accept(void* arg) {
  int fd = (int)(long)arg;
  atomic_fetch_add(&entered, 1);
  struct Result* r = malloc(sizeof *r);
  errno = 0;
  r->ret = accept(fd, NULL, NULL);
  r->err = errno;
  return r;
}

static char big[1 << 20];
static void* do_send(void* arg) {
  int fd = (int)(long)arg;
  atomic_fetch_add(&entered, 1);
  struct Result* r = malloc(sizeof *r);
  errno = 0;
  r->ret = send(fd, big, sizeof big, 0);
  r->err = errno;
  return r;
}

static void* do_poll(void* arg) {
  int fd = (int)(long)arg;
  atomic_fetch_add(&entered, 1);
  struct Result* r = malloc(sizeof *r);
  struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
  errno = 0;
  r->ret = poll(&p, 1, -1);
  r->err = p.revents;  // the events, not an errno
  return r;
}

static atomic_int read_slots;
static _Atomic pid_t reader_tids[32];

static void* do_read(void* arg) {
  int fd = (int)(long)arg;
  static char buf[64];
  atomic_store(&reader_tids[atomic_fetch_add(&read_slots, 1)], gettid());
  atomic_fetch_add(&entered, 1);
  struct Result* r = malloc(sizeof *r);
  errno = 0;
  r->ret = read(fd, buf, sizeof buf);
  r->err = errno;
  atomic_fetch_add(&finished, 1);
  return r;
}

static struct Result join(pthread_t t) {
  void* p;
  pthread_join(t, &p);
  struct Result r = *(struct Result*)p;
  free(p);
  return r;
}

static int tcp_listener(void) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(l, (struct sockaddr*)&a, sizeof a);
  listen(l, 64);
  return l;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);

  // 100 readers blocked in recv on their own unix sockets; shutdown(SHUT_RD)
  // of each, in an order unrelated to the order they blocked in.
  {
    int sv[kReaders][2];
    pthread_t t[kReaders];
    atomic_store(&entered, 0);
    for (int i = 0; i < kReaders; ++i) {
      socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]);
      pthread_create(&t[i], NULL, do_recv, (void*)(long)sv[i][0]);
    }
    await_entered(kReaders);
    for (int i = 0; i < kReaders; ++i) shutdown(sv[(i * 37) % kReaders][0], SHUT_RD);
    int zero = 0;
    for (int i = 0; i < kReaders; ++i) {
      struct Result r = join(t[i]);
      if (r.ret == 0) ++zero;
      else printf("  reader %d: %ld %s\n", i, r.ret, en(r.err));
      close(sv[i][0]);
      close(sv[i][1]);
    }
    printf("recv, unix, SHUT_RD by another thread: %d of %d returned 0\n", zero, kReaders);
  }

  // A TCP connection: SHUT_RDWR wakes the reader with 0.
  {
    int l = tcp_listener();
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr*)&a, &len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (struct sockaddr*)&a, sizeof a);
    int s = accept(l, NULL, NULL);
    pthread_t t;
    atomic_store(&entered, 0);
    pthread_create(&t, NULL, do_recv, (void*)(long)s);
    await_entered(1);
    shutdown(s, SHUT_RDWR);
    struct Result r = join(t);
    printf("recv, tcp, SHUT_RDWR: %ld %s\n", r.ret, en(r.err));
    char ch;
    printf("peer sees end of stream: %zd\n", recv(c, &ch, 1, 0));
    close(s);
    close(c);
    close(l);
  }

  // 50 acceptors blocked on one listener; shutdown(SHUT_RD) of the listener
  // wakes all of them with EINVAL.
  {
    int l = tcp_listener();
    pthread_t t[kAcceptors];
    atomic_store(&entered, 0);
    for (int i = 0; i < kAcceptors; ++i) pthread_create(&t[i], NULL, do_accept, (void*)(long)l);
    await_entered(kAcceptors);
    shutdown(l, SHUT_RD);
    int einval = 0;
    for (int i = 0; i < kAcceptors; ++i) {
      struct Result r = join(t[i]);
      if (r.ret == -1 && r.err == EINVAL) ++einval;
      else printf("  acceptor %d: %ld %s\n", i, r.ret, en(r.err));
    }
    printf("accept, SHUT_RD of the listener: %d of %d failed with EINVAL\n", einval, kAcceptors);
    close(l);
  }

  // A sender blocked on a full socket: SHUT_WR of its own fd gives EPIPE
  // (SIGPIPE ignored) or the count already sent.
  {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    while (send(sv[0], big, sizeof big, MSG_DONTWAIT) > 0) {
    }
    pthread_t t;
    atomic_store(&entered, 0);
    pthread_create(&t, NULL, do_send, (void*)(long)sv[0]);
    await_entered(1);
    shutdown(sv[0], SHUT_WR);
    struct Result r = join(t);
    printf("send on a full socket, SHUT_WR: %ld %s\n", r.ret, en(r.err));
    close(sv[0]);
    close(sv[1]);
  }

  // poll for input: SHUT_RD makes the socket readable (end of stream).
  {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pthread_t t;
    atomic_store(&entered, 0);
    pthread_create(&t, NULL, do_poll, (void*)(long)sv[0]);
    await_entered(1);
    shutdown(sv[0], SHUT_RD);
    struct Result r = join(t);
    printf("poll, SHUT_RD: %ld, POLLIN %d POLLRDHUP %d\n", r.ret, (r.err & POLLIN) != 0, (r.err & POLLRDHUP) != 0);
    close(sv[0]);
    close(sv[1]);
  }

  // close() wakes nobody: 20 readers blocked on pipes whose read ends are
  // closed go on waiting, and each gets the data written afterwards (the
  // blocked call holds the open file). No completion lands after the fd
  // number was reused: every number is taken by a new pipe meanwhile.
  {
    enum { kPipes = 20 };
    int pp[kPipes][2], reuse[kPipes][2];
    pthread_t t[kPipes];
    atomic_store(&entered, 0);
    for (int i = 0; i < kPipes; ++i) {
      if (pipe(pp[i]) != 0) return 1;
      pthread_create(&t[i], NULL, do_read, (void*)(long)pp[i][0]);
    }
    await_entered(kPipes);
    for (int i = 0; i < kPipes; ++i) await_in_read(atomic_load(&reader_tids[i]));
    for (int i = 0; i < kPipes; ++i) close(pp[i][0]);
    for (int i = 0; i < kPipes; ++i)
      if (pipe(reuse[i]) != 0) return 1;
    sleep_ms(20);
    int still = kPipes - atomic_load(&finished);
    printf("read, pipe, read end closed: %d of %d still blocked\n", still, kPipes);
    int got = 0;
    for (int i = 0; i < kPipes; ++i) {
      if (write(pp[i][1], "hello", 5) != 5) return 1;
      struct Result r = join(t[i]);
      if (r.ret == 5) ++got;
      else printf("  reader %d: %ld %s\n", i, r.ret, en(r.err));
      close(pp[i][1]);
    }
    printf("then written to: %d of %d read 5 bytes\n", got, kPipes);
    int clean = 0;
    for (int i = 0; i < kPipes; ++i) {
      if (write(reuse[i][1], "x", 1) != 1) return 1;
      char c;
      clean += read(reuse[i][0], &c, 1) == 1 && c == 'x';
      close(reuse[i][0]);
      close(reuse[i][1]);
    }
    printf("pipes reusing the numbers intact: %d of %d\n", clean, kPipes);
  }
  return 0;
}
