// Timeouts too large to count in nanoseconds wait as the kernel waits:
// until the event, not until a wrapped-around deadline. ppoll, pselect and
// select with tv_sec up to LONG_MAX, select's whole seconds carried out of
// tv_usec, sigtimedwait and recvmmsg likewise, and the time left that
// select and recvmmsg write back stays that large. SO_RCVTIMEO as the
// kernel takes it: centuries are a wait for the data, a negative time is
// no wait at all (EAGAIN at once). Under the preload,
// tv_sec * 1e9 once overflowed to a deadline in the past: every one of
// these calls returned 0 (timed out) at once, with data about to arrive.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

struct later {
  int fd;            // written to after the delay, or -1
  pthread_t signal;  // or sent SIGUSR1
  int delay_ms;      // 50 when 0
};

static void* write_later(void* arg) {
  struct later* l = arg;
  usleep((useconds_t)(l->delay_ms ? l->delay_ms : 50) * 1000);
  if (l->fd >= 0) {
    if (write(l->fd, "x", 1) != 1) die("write");
  } else {
    pthread_kill(l->signal, SIGUSR1);
  }
  return NULL;
}

static pthread_t start(struct later* l) {
  pthread_t t;
  if (pthread_create(&t, NULL, write_later, l) != 0) die("pthread_create");
  return t;
}

static void drain(int fd) {
  char c;
  if (read(fd, &c, 1) != 1) die("read");
}

// A time left "about as large as asked": within a minute of it.
static const char* about(time_t left, time_t asked) { return asked - left >= 0 && asked - left < 60 ? "kept" : "LOST"; }

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  int p[2];
  if (pipe(p) != 0) die("pipe");
  const time_t secs[] = {LONG_MAX, LONG_MAX / 2, 10000000000L, 9223372037L};

  for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
    struct later l = {p[1], 0, 0};
    pthread_t t = start(&l);
    struct pollfd pfd = {p[0], POLLIN, 0};
    struct timespec ts = {secs[i], 999999999};
    int r = ppoll(&pfd, 1, &ts, NULL);
    printf("ppoll tv_sec=%ld: %d revents=%#x\n", (long)secs[i], r, r > 0 ? pfd.revents : 0);
    drain(p[0]);
    pthread_join(t, NULL);

    t = start(&l);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    r = pselect(p[0] + 1, &rs, NULL, NULL, &ts, NULL);
    printf("pselect tv_sec=%ld: %d ready=%d\n", (long)secs[i], r, r > 0 && FD_ISSET(p[0], &rs));
    drain(p[0]);
    pthread_join(t, NULL);

    t = start(&l);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = {secs[i], 0};
    r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    // Where now + tv_sec overflows the kernel saturates the deadline, so
    // the time left is the last second minus the clock; otherwise tv_sec.
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    time_t asked = secs[i] > LONG_MAX - mono.tv_sec - 1 ? LONG_MAX - mono.tv_sec : secs[i];
    printf("select tv_sec=%ld: %d ready=%d left %s\n", (long)secs[i], r, r > 0 && FD_ISSET(p[0], &rs),
           about(tv.tv_sec, asked));
    drain(p[0]);
    pthread_join(t, NULL);
  }

  // select carries whole seconds out of tv_usec: 3.5 s asked this way.
  {
    struct later l = {p[1], 0, 0};
    pthread_t t = start(&l);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = {0, 3500000};
    int r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select tv_usec=3500000: %d left %s\n", r, tv.tv_sec == 3 && tv.tv_usec > 0 ? "3.x s" : "wrong");
    drain(p[0]);
    pthread_join(t, NULL);
    // glibc reads tv_usec as 32 bits: LONG_MAX is -1 there (EINVAL), and
    // 2^32 + 100000 a tenth of a second (nothing is written: a timeout).
    tv = (struct timeval){0, LONG_MAX};
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select tv_usec=LONG_MAX: %d %s\n", r, r < 0 ? strerror(errno) : "");
    tv = (struct timeval){0, 0x100000000L + 100000};
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select tv_usec=2^32+100000: %d left %ld.%06ld\n", r, (long)tv.tv_sec, (long)tv.tv_usec);
  }

  // sigtimedwait with the largest timeout: the signal, not EAGAIN.
  {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct later l = {-1, pthread_self(), 0};
    pthread_t t = start(&l);
    struct timespec ts = {LONG_MAX, 999999999};
    siginfo_t si;
    int r = sigtimedwait(&set, &si, &ts);
    printf("sigtimedwait tv_sec=LONG_MAX: %s\n", r == SIGUSR1 ? "SIGUSR1" : strerror(errno));
    pthread_join(t, NULL);
  }

  // recvmmsg: a datagram arrives after 50 ms; the time left stays huge.
  {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) die("socketpair");
    struct later l = {sv[1], 0, 0};
    pthread_t t = start(&l);
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    struct mmsghdr m;
    memset(&m, 0, sizeof m);
    m.msg_hdr.msg_iov = &iov;
    m.msg_hdr.msg_iovlen = 1;
    struct timespec ts = {LONG_MAX / 4, 0};
    int r = recvmmsg(sv[0], &m, 1, 0, &ts);
    printf("recvmmsg tv_sec=LONG_MAX/4: %d len=%u left %s\n", r, r > 0 ? m.msg_len : 0,
           about(ts.tv_sec, LONG_MAX / 4));
    pthread_join(t, NULL);
  }

  // SO_RCVTIMEO: 18446744074 s wrapped to 0.29 s when counted in
  // nanoseconds; the data comes after 0.5 s. A negative tv_sec: EAGAIN.
  {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
    struct timeval tv = {18446744074L, 0};
    if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) die("setsockopt");
    struct later l = {sv[1], 0, 500};
    pthread_t t = start(&l);
    char c;
    ssize_t r = recv(sv[0], &c, 1, 0);
    printf("SO_RCVTIMEO tv_sec=18446744074: recv %zd %s\n", r, r < 0 ? strerror(errno) : "");
    pthread_join(t, NULL);
    // Just under what nanoseconds hold once the clock is added: the epoll
    // engine's deadline overflowed into the past (EAGAIN at once).
    tv = (struct timeval){9223372000L, 0};
    if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) die("setsockopt");
    l.delay_ms = 100;
    t = start(&l);
    r = recv(sv[0], &c, 1, 0);
    printf("SO_RCVTIMEO tv_sec=9223372000: recv %zd %s\n", r, r < 0 ? strerror(errno) : "");
    pthread_join(t, NULL);
    tv = (struct timeval){-1, 0};
    if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) die("setsockopt");
    r = recv(sv[0], &c, 1, 0);
    printf("SO_RCVTIMEO tv_sec=-1: recv %zd %s\n", r, r < 0 ? strerror(errno) : "");
  }
  return 0;
}
