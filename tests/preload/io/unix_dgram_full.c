// A blocking send to a unix datagram socket whose receive queue is full
// waits until the receiver takes a datagram, then sends its own, as the
// kernel's unix_wait_for_peer does: connected or by address, the queue
// filled by another socket or by the sender itself, send, sendto, sendmsg
// and sendmmsg. The waiting costs no CPU, and SO_SNDTIMEO still ends it
// with EAGAIN; a batch that sent some returns its count when an SA_RESTART
// handler runs (the kernel's sendmmsg does not restart then). Alongside, a
// large sendmsg on TCP to a slow reader, which waits the same way with part
// sent: every byte arrives once, in order (a first version of the epoll
// engine's rule below sent such a send's start again from a helper thread).
//
// Under the preload the io_uring engine returned 0 without sending (what
// the kernel's io_uring sendmsg completes with here after the wait), and
// the epoll engine spun on the sender's own readiness (an unconnected
// sender polls writable whatever its peer holds) at 100% CPU.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "loopback.h"

static void die(const char* what) {
  perror(what);
  exit(1);
}

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static struct sockaddr_un addr;

// Takes one datagram after 200 ms.
static void* take_one(void* arg) {
  int rx = *(int*)arg;
  usleep(200 * 1000);
  char b[8];
  if (recv(rx, b, sizeof b, 0) != 1) die("recv");
  return NULL;
}

enum how { kSend, kSendto, kSendmsg, kSendmmsg };
static const char* const names[] = {"send", "sendto", "sendmsg", "sendmmsg"};

static ssize_t send_y(int tx, enum how how, int connected) {
  const struct sockaddr* to = connected ? NULL : (const struct sockaddr*)&addr;
  socklen_t to_len = connected ? 0 : sizeof addr;
  struct iovec iov = {"y", 1};
  struct msghdr m = {.msg_name = (void*)to, .msg_namelen = to_len, .msg_iov = &iov, .msg_iovlen = 1};
  struct mmsghdr mm = {.msg_hdr = m};
  switch (how) {
    case kSend: return send(tx, "y", 1, 0);
    case kSendto: return sendto(tx, "y", 1, 0, to, to_len);
    case kSendmsg: return sendmsg(tx, &m, 0);
    case kSendmmsg: return sendmmsg(tx, &mm, 1, 0);
  }
  return -1;
}

static void one(enum how how, int connected, int fill_self) {
  if (how == kSend && !connected) return;
  int rx = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (rx < 0) die("socket");
  unlink(addr.sun_path);
  if (bind(rx, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
  int tx = socket(AF_UNIX, SOCK_DGRAM, 0);
  int filler = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (connected && connect(tx, (struct sockaddr*)&addr, sizeof addr) != 0) die("connect");
  int fill = fill_self ? tx : filler;
  int queued = 0;
  while (sendto(fill, "x", 1, MSG_DONTWAIT, connected && fill_self ? NULL : (struct sockaddr*)&addr,
                connected && fill_self ? 0 : sizeof addr) == 1) {
    queued++;
  }
  if (errno != EAGAIN || queued == 0) die("fill");
  pthread_t t;
  if (pthread_create(&t, NULL, take_one, &rx) != 0) die("pthread_create");
  double c0 = cpu_ms();
  ssize_t r = send_y(tx, how, connected);
  double used = cpu_ms() - c0;
  int err = errno;
  pthread_join(t, NULL);
  int x = 0, y = 0;
  char b[8];
  while (recv(rx, b, sizeof b, MSG_DONTWAIT) == 1) *(b[0] == 'y' ? &y : &x) += 1;
  printf("%s %s, filled by %s: %zd%s%s, then x=%d y=%d, cpu %s\n", names[how], connected ? "connected" : "by address",
         fill_self ? "itself" : "another", r, r < 0 ? " " : "", r < 0 ? strerror(err) : "", x, y,
         used < 100 ? "low" : "BUSY");
  if (used >= 100) fprintf(stderr, "  %s: %.0f ms of CPU in a 200 ms wait\n", names[how], used);

  // SO_SNDTIMEO ends the same wait with EAGAIN when nobody takes a datagram.
  while (sendto(filler, "x", 1, MSG_DONTWAIT, (struct sockaddr*)&addr, sizeof addr) == 1) {
  }
  struct timeval tv = {0, 100 * 1000};
  if (setsockopt(tx, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) die("setsockopt");
  c0 = cpu_ms();
  r = send_y(tx, how, connected);
  err = errno;
  used = cpu_ms() - c0;
  printf("  with SO_SNDTIMEO 100 ms and nobody reading: %zd %s, cpu %s\n", r, r < 0 ? strerror(err) : "",
         used < 50 ? "low" : "BUSY");
  close(tx);
  close(filler);
  close(rx);
}

// sendmmsg of 5 with room for 2: an SA_RESTART handler at 0.2 s ends the
// wait for the third with the count so far. Three datagrams are taken at
// 0.7 s, so a call that waited on returns 5 instead of hanging.
static pthread_t waiting;
static int batch_rx;
static int handled;
static void on_usr1(int sig) {
  (void)sig;
  handled++;
}
static void* signal_later(void* arg) {
  (void)arg;
  usleep(200 * 1000);
  pthread_kill(waiting, SIGUSR1);
  usleep(500 * 1000);
  char b[8];
  for (int i = 0; i < 3; i++) recv(batch_rx, b, sizeof b, MSG_DONTWAIT);
  return NULL;
}

static void batch_cut_by_handler(void) {
  struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_RESTART};
  sigaction(SIGUSR1, &sa, NULL);
  int rx = socket(AF_UNIX, SOCK_DGRAM, 0);
  batch_rx = rx;
  unlink(addr.sun_path);
  if (bind(rx, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
  int tx = socket(AF_UNIX, SOCK_DGRAM, 0), filler = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (connect(tx, (struct sockaddr*)&addr, sizeof addr) != 0) die("connect");
  while (sendto(filler, "x", 1, MSG_DONTWAIT, (struct sockaddr*)&addr, sizeof addr) == 1) {
  }
  char b[8];
  for (int i = 0; i < 2; i++) {
    if (recv(rx, b, sizeof b, 0) != 1) die("recv");
  }
  struct iovec iov = {"y", 1};
  struct mmsghdr mm[5];
  memset(mm, 0, sizeof mm);
  for (int i = 0; i < 5; i++) {
    mm[i].msg_hdr.msg_iov = &iov;
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  waiting = pthread_self();
  pthread_t t;
  if (pthread_create(&t, NULL, signal_later, NULL) != 0) die("pthread_create");
  int r = sendmmsg(tx, mm, 5, 0);
  pthread_join(t, NULL);
  printf("sendmmsg of 5 with room for 2, SA_RESTART handler at 0.2 s: %d, handled %d\n", r, handled);
  close(tx);
  close(filler);
  close(rx);
}

// 1 MiB in one sendmsg on TCP with 16 KiB buffers, read 16 KiB at a time
// with a 1 ms pause: the bytes arrive once and in order.
enum { kStreamBytes = 1 << 20 };
static unsigned char pattern(long i) { return (unsigned char)(i * 7 + (i >> 13)); }
struct slow_reader {
  int fd;
  long got;
  long first_bad;
};
static void* read_slowly(void* arg) {
  struct slow_reader* s = arg;
  unsigned char b[16384];
  for (;;) {
    usleep(1000);
    ssize_t r = recv(s->fd, b, sizeof b, 0);
    if (r <= 0) break;
    for (ssize_t i = 0; i < r; i++, s->got++) {
      if (b[i] != pattern(s->got) && s->first_bad < 0) s->first_bad = s->got;
    }
  }
  return NULL;
}

static void stream_to_slow_reader(void) {
  struct sockaddr_in a;
  int l = bound_loopback(SOCK_STREAM, &a);
  if (listen(l, 1) != 0) die("listen");
  int tx = socket(AF_INET, SOCK_STREAM, 0), sz = 16384;
  setsockopt(tx, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  if (connect(tx, (struct sockaddr*)&a, sizeof a) != 0) die("connect");
  struct slow_reader s = {accept(l, NULL, NULL), 0, -1};
  setsockopt(s.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  unsigned char* buf = malloc(kStreamBytes);
  if (!buf) die("malloc");
  for (long i = 0; i < kStreamBytes; i++) buf[i] = pattern(i);
  pthread_t t;
  if (pthread_create(&t, NULL, read_slowly, &s) != 0) die("pthread_create");
  struct iovec iov = {buf, kStreamBytes};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  ssize_t r = sendmsg(tx, &m, 0);
  shutdown(tx, SHUT_WR);
  pthread_join(t, NULL);
  printf("TCP sendmsg of %d bytes to a slow reader: %zd, received %ld, first wrong byte %ld\n", kStreamBytes, r, s.got,
         s.first_bad);
  free(buf);
  close(tx);
  close(s.fd);
  close(l);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/unblock-dgram-full.%d", (int)getpid());
  for (int how = kSend; how <= kSendmmsg; how++) {
    for (int connected = 0; connected < 2; connected++) {
      for (int self = 0; self < 2; self++) one((enum how)how, connected, self);
    }
  }
  batch_cut_by_handler();
  stream_to_slow_reader();
  unlink(addr.sun_path);
  return 0;
}
