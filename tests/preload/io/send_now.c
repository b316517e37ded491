// Sends on blocking sockets that the socket buffer can take at once (under
// the preload they skip the ring: hooks::send_now). Kept: a fiber that never
// has to wait still lets the others run (several senders that never block,
// and a sleeper that stops them, on one worker); a write bigger than the
// buffer still sends every byte; sendmsg still passes fds and sends every
// byte; a peer that closes in the middle of a big send gives the partial
// count without SIGPIPE, and EPIPE with one SIGPIPE on the next send (send,
// write, writev, sendmsg); a reset connection still says ECONNRESET, then
// EPIPE; a pending
// cancellation still acts at a send that does not block. Prints results,
// not timings. "send_now fairness" runs the first part alone (its test
// counts the fiber switches it made).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

enum { kSenders = 8, kBig = 4 << 20 };

static const char* en(int e) {
  switch (e) {
    case 0: return "0";
    case EPIPE: return "EPIPE";
    case ECONNRESET: return "ECONNRESET";
    default: return strerror(e);
  }
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

// ---- senders that never wait, stopped by a sleeper ------------------------------

static atomic_int stop, sending;
static atomic_long sends;  // by all senders
static struct sockaddr_in sink;

// Sends the sleeper lets pass before it stops the senders: ~1,000 fiber
// switches at the preload's run limit (a switch every 17 sends), whatever
// the load. 20 ms alone gave 70-99 switches on an overloaded machine.
enum { kEnoughSends = kSenders * 2000 };

static void* udp_sender(void* arg) {
  long i = (long)arg;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  connect(s, (struct sockaddr*)&sink, sizeof sink);
  long sent = 0, failed = 0;
  struct iovec iov = {"x", 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  while (!atomic_load(&stop)) {
    ssize_t r = i % 3 == 0 ? write(s, "x", 1) : i % 3 == 1 ? send(s, "x", 1, 0) : sendmsg(s, &m, 0);
    if (r == 1) {
      atomic_fetch_add_explicit(&sends, 1, memory_order_relaxed);
      if (sent++ == 0) atomic_fetch_add(&sending, 1);
    } else {
      failed++;
    }
  }
  close(s);
  return (void*)(intptr_t)(sent > 0 && failed == 0);
}

static void senders_never_waiting(void) {
  // Datagrams nobody reads: loopback drops them when the receiver is full,
  // so these sends always find room and never block.
  int r = bound_loopback(SOCK_DGRAM, &sink);
  pthread_t t[kSenders];
  for (long i = 0; i < kSenders; i++) pthread_create(&t[i], NULL, udp_sender, (void*)i);
  while (atomic_load(&sending) < kSenders) sleep_ms(1);
  long from = atomic_load(&sends);
  sleep_ms(20);  // returns only if the busy senders let this thread run
  for (int i = 0; i < 20000 && atomic_load(&sends) - from < kEnoughSends; i++) sleep_ms(1);
  atomic_store(&stop, 1);
  int ok = 0;
  for (int i = 0; i < kSenders; i++) {
    void* v;
    pthread_join(t[i], &v);
    ok += (int)(intptr_t)v;
  }
  close(r);
  printf("senders that never wait: %d of %d stopped by a sleeper, all sends whole\n", ok, kSenders);
}

// ---- a write bigger than the socket buffer ------------------------------------

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131 + (i >> 12)); }

static void* slow_reader(void* arg) {
  int fd = (int)(long)arg;
  static unsigned char buf[1000];
  size_t got = 0, bad = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0) break;
    for (ssize_t k = 0; k < r; k++) bad += buf[k] != pattern(got + (size_t)k);
    got += (size_t)r;
    if (got % (64 * 1024) < sizeof buf) sleep_ms(1);
  }
  return (void*)(intptr_t)(bad ? -1 : (intptr_t)got);
}

static void tcp_pair(int* a, int* b) {
  struct sockaddr_in sa;
  int ls = bound_loopback(SOCK_STREAM, &sa);
  listen(ls, 1);
  *a = socket(AF_INET, SOCK_STREAM, 0);
  connect(*a, (struct sockaddr*)&sa, sizeof sa);
  *b = accept(ls, NULL, NULL);
  close(ls);
}

static void big_write(void) {
  int a, b;
  tcp_pair(&a, &b);
  unsigned char* data = malloc(kBig);
  for (size_t i = 0; i < kBig; i++) data[i] = pattern(i);
  pthread_t t;
  pthread_create(&t, NULL, slow_reader, (void*)(long)b);
  ssize_t w = write(a, data, kBig);
  shutdown(a, SHUT_WR);
  void* got;
  pthread_join(t, &got);
  printf("write of %d bytes to a slow reader: returned %zd, reader got %ld\n", kBig, w, (long)(intptr_t)got);
  close(a);
  close(b);
  free(data);
}

// ---- sendmsg: fds and every byte ------------------------------------------------

static void* drain(void* arg) {
  int fd = (int)(long)arg;
  static char buf[4096];
  long got = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) got += r;
  return (void*)(intptr_t)got;
}

static void sendmsg_paths(void) {
  int sv[2], p[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  if (pipe(p) != 0) return;
  char cbuf[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec iov = {"f", 1};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  struct cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &p[1], sizeof(int));
  ssize_t s = sendmsg(sv[0], &m, 0);
  char one;
  char rbuf[CMSG_SPACE(sizeof(int))];
  struct iovec riov = {&one, 1};
  struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rbuf, .msg_controllen = sizeof rbuf};
  ssize_t r = recvmsg(sv[1], &rm, 0);
  int passed = -1;
  struct cmsghdr* rc = CMSG_FIRSTHDR(&rm);
  if (rc && rc->cmsg_type == SCM_RIGHTS) memcpy(&passed, CMSG_DATA(rc), sizeof(int));
  char msg[3] = {0};
  if (passed >= 0 && write(passed, "ok", 2) == 2 && read(p[0], msg, 2) != 2) msg[0] = 0;
  printf("sendmsg with SCM_RIGHTS: sent %zd, received %zd, through the passed fd: %s\n", s, r, msg);
  if (passed >= 0) close(passed);
  close(p[0]);
  close(p[1]);

  // Two pieces, together far bigger than the buffer.
  static char half[1 << 20];
  struct iovec two[2] = {{half, sizeof half}, {half, sizeof half}};
  struct msghdr big = {.msg_iov = two, .msg_iovlen = 2};
  pthread_t t;
  pthread_create(&t, NULL, drain, (void*)(long)sv[1]);
  s = sendmsg(sv[0], &big, 0);
  shutdown(sv[0], SHUT_WR);
  void* got;
  pthread_join(t, &got);
  printf("sendmsg of 2 MiB in two pieces: returned %zd, reader got %ld\n", s, (long)(intptr_t)got);
  close(sv[0]);
  close(sv[1]);
}

// ---- the peer closes in the middle of a big send --------------------------------

static atomic_int sigpipes;
static void on_sigpipe(int s) {
  (void)s;
  atomic_fetch_add(&sigpipes, 1);
}

static void* read_then_close(void* arg) {
  int fd = (int)(long)arg;
  static char b[65536];
  long got = 0;
  while (got < 300000) {
    ssize_t r = read(fd, b, sizeof b);
    if (r <= 0) break;
    got += r;
  }
  sleep_ms(100);  // the sender is waiting for room again
  close(fd);
  return NULL;
}

static void peer_closes_mid_send(void) {
  struct sigaction sa = {0}, old;
  sa.sa_handler = on_sigpipe;
  sigaction(SIGPIPE, &sa, &old);
  static const char* names[] = {"send", "write", "writev", "sendmsg"};
  size_t n = 8 << 20;
  char* big = calloc(1, n);
  for (int mode = 0; mode < 4; mode++) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pthread_t t;
    pthread_create(&t, NULL, read_then_close, (void*)(long)sv[1]);
    struct iovec v[2] = {{big, n / 2}, {big + n / 2, n / 2}};
    struct msghdr m = {.msg_iov = v, .msg_iovlen = 2};
    atomic_store(&sigpipes, 0);
    ssize_t r = mode == 0 ? send(sv[0], big, n, 0)
                : mode == 1 ? write(sv[0], big, n)
                : mode == 2 ? writev(sv[0], v, 2)
                            : sendmsg(sv[0], &m, 0);
    int first = atomic_load(&sigpipes);
    pthread_join(t, NULL);
    errno = 0;
    ssize_t r2 = send(sv[0], "x", 1, 0);
    int e2 = errno;
    printf("%s while the peer closes: %s, SIGPIPEs %d; next send: %zd %s, SIGPIPEs %d\n", names[mode],
           r > 0 && r < (ssize_t)n ? "partial" : r == (ssize_t)n ? "all" : "error", first, r2, en(e2),
           atomic_load(&sigpipes));
    close(sv[0]);
  }
  free(big);
  sigaction(SIGPIPE, &old, NULL);
}

// ---- a reset connection -----------------------------------------------------------

static void reset_peer(void) {
  int a, b;
  tcp_pair(&a, &b);
  if (write(a, "unread", 6) != 6) return;  // b closes with unread data: RST
  struct linger l = {1, 0};
  setsockopt(b, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(b);
  sleep_ms(20);
  errno = 0;
  ssize_t r1 = send(a, "x", 1, MSG_NOSIGNAL);
  int e1 = errno;
  ssize_t r2 = send(a, "x", 1, MSG_NOSIGNAL);
  int e2 = errno;
  printf("send after a reset: %zd %s, then %zd %s\n", r1, en(e1), r2, en(e2));
  close(a);
}

// ---- a pending cancellation at a send that does not block ------------------------

static atomic_int ready, after_send;
static int cancel_fd;

static void* cancel_victim(void* arg) {
  (void)arg;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
  atomic_store(&ready, 1);
  while (atomic_load(&ready) != 2) sleep_ms(1);  // the request is pending now
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
  send(cancel_fd, "x", 1, MSG_NOSIGNAL);  // room in the buffer: would not block
  atomic_store(&after_send, 1);
  return NULL;
}

static void cancel_at_send(void) {
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  cancel_fd = sv[0];
  pthread_t t;
  pthread_create(&t, NULL, cancel_victim, NULL);
  while (atomic_load(&ready) != 1) sleep_ms(1);
  pthread_cancel(t);
  atomic_store(&ready, 2);
  void* res;
  pthread_join(t, &res);
  printf("pending cancellation at a send with room: cancelled %d, returned from send %d\n",
         res == PTHREAD_CANCELED, atomic_load(&after_send));
  close(sv[0]);
  close(sv[1]);
}

static void* run(void* arg) {
  senders_never_waiting();
  if (arg) return NULL;
  big_write();
  sendmsg_paths();
  peer_closes_mid_send();
  reset_peer();
  cancel_at_send();
  return NULL;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t t;
  pthread_create(&t, NULL, run, argc > 1 && strcmp(argv[1], "fairness") == 0 ? argv[1] : NULL);
  pthread_join(t, NULL);
  return 0;
}
