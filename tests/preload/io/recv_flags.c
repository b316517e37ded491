// Receive flags as the kernel keeps them, plain and preloaded alike.
// MSG_WAITALL: a stream socket's receive waits for the whole buffer (recv,
// recvfrom with an address, recvmsg, MSG_PEEK), ending early only at end of
// file, a timeout, a handler or a piece carrying descriptors; datagram and
// sequenced-packet sockets return one message and ignore the flag. The
// missing bytes arrive from another thread after a delay, so the call has
// to wait for them. MSG_ERRQUEUE never waits: EAGAIN on an empty error
// queue, else the queued error (an ICMP port unreachable on loopback).
// MSG_OOB never waits either: EINVAL with no urgent data, else its byte.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <stddef.h>
#include <unistd.h>

#include "loopback.h"

static void die(const char* what) {
  perror(what);
  exit(1);
}

struct later {
  int fd;
  const char* data;
  size_t len;
  int pass_fd;     // >= 0: sent with SCM_RIGHTS
  int shut;        // 1: shutdown(SHUT_WR) instead of sending
  int delay_us;
};

static void send_fd(int fd, const char* data, size_t len, int passed) {
  char ctl[CMSG_SPACE(sizeof(int))];
  memset(ctl, 0, sizeof ctl);
  struct iovec iov = {(void*)data, len};
  struct msghdr m = {0};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  struct cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &passed, sizeof passed);
  if (sendmsg(fd, &m, 0) != (ssize_t)len) die("sendmsg");
}

static void* send_later(void* arg) {
  struct later* l = arg;
  usleep((useconds_t)l->delay_us);
  if (l->shut) {
    shutdown(l->fd, SHUT_WR);
  } else if (l->pass_fd >= 0) {
    send_fd(l->fd, l->data, l->len, l->pass_fd);
  } else if (write(l->fd, l->data, l->len) != (ssize_t)l->len) {
    die("write");
  }
  return NULL;
}

static pthread_t later(struct later* l) {
  pthread_t t;
  if (pthread_create(&t, NULL, send_later, l)) die("pthread_create");
  return t;
}

static void pair(int type, int sv[2]) {
  if (socketpair(AF_UNIX, type, 0, sv)) die("socketpair");
}

static void show(const char* what, ssize_t r, const char* buf) {
  printf("%-44s %zd", what, r);
  if (r > 0) printf(" \"%.*s\"", (int)r, buf);
  printf("\n");
}

static void datagrams(int type, const char* name) {
  int sv[2];
  char b[100], what[64];
  pair(type, sv);
  struct later l = {sv[1], "later", 5, -1, 0, 20000};
  pthread_t t = later(&l);
  snprintf(what, sizeof what, "%s: waits for one, WAITALL", name);
  show(what, recv(sv[0], b, sizeof b, MSG_WAITALL), b);
  pthread_join(t, NULL);
  if (send(sv[1], "abc", 3, 0) != 3 || send(sv[1], "defg", 4, 0) != 4) die("send");
  snprintf(what, sizeof what, "%s: two queued, WAITALL", name);
  show(what, recv(sv[0], b, sizeof b, MSG_WAITALL), b);
  show(what, recv(sv[0], b, sizeof b, MSG_WAITALL), b);
  close(sv[0]);
  close(sv[1]);
}

static void stream_pieces(void) {
  int sv[2];
  char b[100];
  pair(SOCK_STREAM, sv);
  struct later l = {sv[1], "world", 5, -1, 0, 20000};

  if (write(sv[1], "hello", 5) != 5) die("write");
  pthread_t t = later(&l);
  show("stream recv WAITALL 10", recv(sv[0], b, 10, MSG_WAITALL), b);
  pthread_join(t, NULL);

  if (write(sv[1], "hello", 5) != 5) die("write");
  t = later(&l);
  struct sockaddr_un_like { sa_family_t f; char p[108]; } from;
  socklen_t fl = sizeof from;
  show("stream recvfrom(address) WAITALL 10", recvfrom(sv[0], b, 10, MSG_WAITALL, (struct sockaddr*)&from, &fl), b);
  pthread_join(t, NULL);

  // Two iovecs, the second piece spanning them.
  if (write(sv[1], "hel", 3) != 3) die("write");
  l.data = "loworld";
  l.len = 7;
  t = later(&l);
  struct iovec iov[2] = {{b, 4}, {b + 4, 6}};
  struct msghdr m = {0};
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  show("stream recvmsg WAITALL 4+6", recvmsg(sv[0], &m, MSG_WAITALL), b);
  printf("  msg_flags %d\n", m.msg_flags);
  pthread_join(t, NULL);

  // MSG_PEEK|MSG_WAITALL: waits for all of it, then leaves it queued.
  if (write(sv[1], "hello", 5) != 5) die("write");
  l.data = "world";
  l.len = 5;
  t = later(&l);
  show("stream recv PEEK|WAITALL 10", recv(sv[0], b, 10, MSG_PEEK | MSG_WAITALL), b);
  pthread_join(t, NULL);
  show("  then recv 10", recv(sv[0], b, 10, 0), b);

  // End of file after part of it.
  if (write(sv[1], "hello", 5) != 5) die("write");
  struct later shut = {sv[1], NULL, 0, -1, 1, 20000};
  t = later(&shut);
  show("stream recv WAITALL 10, EOF after 5", recv(sv[0], b, 10, MSG_WAITALL), b);
  pthread_join(t, NULL);
  close(sv[0]);
  close(sv[1]);

  // SO_RCVTIMEO ends it with what came.
  pair(SOCK_STREAM, sv);
  struct timeval tv = {0, 100000};
  if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)) die("setsockopt");
  if (write(sv[1], "hello", 5) != 5) die("write");
  show("stream recv WAITALL 10, timeout after 5", recv(sv[0], b, 10, MSG_WAITALL), b);
  m.msg_flags = 0;
  if (write(sv[1], "hello", 5) != 5) die("write");
  show("stream recvmsg WAITALL 10, timeout after 5", recvmsg(sv[0], &m, MSG_WAITALL), b);
  close(sv[0]);
  close(sv[1]);
}

// A descriptor in a later piece ends the wait with that piece; one in the
// first piece ends it at once (the kernel's unix_stream_read_generic).
static void stream_rights(void) {
  int sv[2], passed[2];
  char b[100];
  if (pipe(passed)) die("pipe");
  for (int first = 0; first < 2; first++) {
    pair(SOCK_STREAM, sv);
    struct later l = {sv[1], first ? "cd" : "cdef", first ? 2 : 4, first ? -1 : passed[0], 0, 20000};
    if (first) send_fd(sv[1], "ab", 2, passed[0]);
    else if (write(sv[1], "ab", 2) != 2) die("write");
    pthread_t t = later(&l);
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {b, 6};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    ssize_t r = recvmsg(sv[0], &m, MSG_WAITALL);
    show(first ? "rights with the first piece, WAITALL 6" : "rights with the second piece, WAITALL 6", r, b);
    struct cmsghdr* c = CMSG_FIRSTHDR(&m);
    int got = -1;
    if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&got, CMSG_DATA(c), sizeof got);
    printf("  descriptor received: %s\n", got >= 0 ? "yes" : "no");
    if (got >= 0) close(got);
    pthread_join(t, NULL);
    close(sv[0]);
    close(sv[1]);
  }
  close(passed[0]);
  close(passed[1]);
}

// A handler (SA_RESTART) after part of it: the call returns what came.
static volatile sig_atomic_t handled;
static void on_usr1(int sig) {
  (void)sig;
  handled++;
}

struct kick {
  pthread_t target;
  int delay_us;
};

static void* kick_later(void* arg) {
  struct kick* k = arg;
  usleep((useconds_t)k->delay_us);
  pthread_kill(k->target, SIGUSR1);
  return NULL;
}

static void stream_signal(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  int sv[2];
  char b[100];
  pair(SOCK_STREAM, sv);
  for (int msg = 0; msg < 2; msg++) {
    if (write(sv[1], "hello", 5) != 5) die("write");
    struct kick k = {pthread_self(), 30000};
    pthread_t t;
    if (pthread_create(&t, NULL, kick_later, &k)) die("pthread_create");
    ssize_t r;
    if (msg) {
      struct iovec iov = {b, 10};
      struct msghdr m = {0};
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      r = recvmsg(sv[0], &m, MSG_WAITALL);
    } else {
      r = recv(sv[0], b, 10, MSG_WAITALL);
    }
    pthread_join(t, NULL);
    show(msg ? "stream recvmsg WAITALL 10, signal after 5" : "stream recv WAITALL 10, signal after 5", r, b);
  }
  printf("  handler ran %d times\n", (int)handled);
  close(sv[0]);
  close(sv[1]);
}

// TCP on loopback: 1 MiB written in 4 KiB pieces, received by one call.
static void* tcp_writer(void* arg) {
  int fd = *(int*)arg;
  char piece[4096];
  for (int i = 0; i < 256; i++) {
    memset(piece, 'a' + i % 26, sizeof piece);
    if (write(fd, piece, sizeof piece) != (ssize_t)sizeof piece) die("tcp write");
    if (i % 32 == 0) usleep(2000);
  }
  return NULL;
}

static void tcp_connected(int* c, int* s) {
  struct sockaddr_in a;
  int lfd = bound_loopback(SOCK_STREAM, &a);
  if (listen(lfd, 1)) die("listen");
  *c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(*c, (struct sockaddr*)&a, sizeof a)) die("connect");
  *s = accept(lfd, NULL, NULL);
  if (*s < 0) die("accept");
  close(lfd);
}

// Control data that comes with every piece does not end the wait (TCP's
// TCP_INQ, with a control buffer or without: MSG_CTRUNC), nor do a unix
// stream's credentials from one writer (SO_PASSCRED).
static void control_each_piece(int r, int w, const char* name, int with_control) {
  char b[16], ctl[256], what[80];
  struct later l = {w, "world", 5, -1, 0, 20000};
  if (write(w, "hello", 5) != 5) die("write");
  pthread_t t = later(&l);
  struct iovec iov = {b, 10};
  struct msghdr m = {0};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (with_control) {
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
  }
  ssize_t n = recvmsg(r, &m, MSG_WAITALL);
  pthread_join(t, NULL);
  snprintf(what, sizeof what, "%s, recvmsg WAITALL 10", name);
  show(what, n, b);
  printf("  control data: %s, MSG_CTRUNC: %s\n", m.msg_controllen > 0 ? "yes" : "no",
         (m.msg_flags & MSG_CTRUNC) ? "yes" : "no");
}

static void control_cases(void) {
  int one = 1, sv[2], c, s;
  pair(SOCK_STREAM, sv);
  if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one)) die("SO_PASSCRED");
  control_each_piece(sv[0], sv[1], "unix SO_PASSCRED", 1);
  close(sv[0]);
  close(sv[1]);
  tcp_connected(&c, &s);
  if (setsockopt(s, IPPROTO_TCP, TCP_INQ, &one, sizeof one)) die("TCP_INQ");
  control_each_piece(s, c, "tcp TCP_INQ", 1);
  control_each_piece(s, c, "tcp TCP_INQ, no control buffer", 0);
  close(c);
  close(s);
}

// Bad arguments are the kernel's errors, not a crash.
static void bad_arguments(void) {
  int sv[2];
  char b[4];
  pair(SOCK_STREAM, sv);
  if (write(sv[1], "abcd", 4) != 4) die("write");
  static struct iovec many[2000];
  for (int i = 0; i < 2000; i++) many[i] = (struct iovec){b, 1};
  struct msghdr m = {0};
  m.msg_iov = many;
  m.msg_iovlen = 2000;
  ssize_t r = recvmsg(sv[0], &m, MSG_WAITALL);
  printf("recvmsg WAITALL, 2000 iovecs: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  m.msg_iov = NULL;
  m.msg_iovlen = 1;
  r = recvmsg(sv[0], &m, MSG_WAITALL);
  printf("recvmsg WAITALL, no iovec array: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  r = recvmsg(sv[0], NULL, MSG_WAITALL);
  printf("recvmsg WAITALL, no msghdr: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  close(sv[0]);
  close(sv[1]);
}

static void tcp_oob(void) {
  int c, s;
  char b[16];
  tcp_connected(&c, &s);
  ssize_t r = recv(s, b, 1, MSG_OOB);
  printf("recv OOB, none sent: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  if (send(c, "ab", 2, 0) != 2 || send(c, "!", 1, MSG_OOB) != 1) die("send");
  usleep(20000);
  r = recv(s, b, 1, MSG_OOB);
  show("recv OOB after one", r, b);
  r = recv(s, b, sizeof b, 0);
  show("then recv", r, b);
  close(c);
  close(s);
}

static void tcp_big(void) {
  int c, s;
  tcp_connected(&c, &s);
  pthread_t t;
  if (pthread_create(&t, NULL, tcp_writer, &c)) die("pthread_create");
  size_t n = 256 * 4096;
  unsigned char* buf = malloc(n);
  ssize_t r = recv(s, buf, n, MSG_WAITALL);
  uint64_t sum = 0;
  for (ssize_t i = 0; i < r; i++) sum = sum * 31 + buf[i];
  printf("tcp recv WAITALL 1 MiB: %zd, checksum %016llx\n", r, (unsigned long long)sum);
  pthread_join(t, NULL);
  free(buf);
  close(s);
  close(c);
}

static void errqueue(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1;
  if (s < 0 || setsockopt(s, IPPROTO_IP, IP_RECVERR, &one, sizeof one)) die("udp socket");
  char b[100], ctl[512];
  struct iovec iov = {b, sizeof b};
  struct msghdr m = {0};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  ssize_t r = recvmsg(s, &m, MSG_ERRQUEUE);
  printf("recvmsg ERRQUEUE, empty: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  r = recv(s, b, sizeof b, MSG_ERRQUEUE);
  printf("recv ERRQUEUE, empty: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  // A port nobody listens on: bind a socket to get one, then close it.
  struct sockaddr_in a;
  close(bound_loopback(SOCK_DGRAM, &a));
  if (sendto(s, "x", 1, 0, (struct sockaddr*)&a, sizeof a) != 1) die("sendto");
  usleep(20000);  // the ICMP error is queued by then (loopback, same host)
  m.msg_controllen = sizeof ctl;
  r = recvmsg(s, &m, MSG_ERRQUEUE);
  int ee_errno = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) {
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof ee);
      ee_errno = (int)ee.ee_errno;
    }
  }
  printf("recvmsg ERRQUEUE after a send to a closed port: %zd, %s\n", r, ee_errno ? strerror(ee_errno) : "no error");
  r = recvmsg(s, &m, MSG_ERRQUEUE);
  printf("recvmsg ERRQUEUE, drained: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  close(s);
}

// SO_RCVTIMEO / SO_SNDTIMEO end a wait with EAGAIN also while the socket
// polls ready and the call still has nothing to do: a UDP socket whose error
// queue holds an ICMP error, an unconnected unix datagram sender whose peer's
// queue is full.
static void timeouts_while_ready(void) {
  int s = udp_refused();
  if (s < 0) die("udp_refused");
  struct timeval tv = {0, 100000};
  if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)) die("SO_RCVTIMEO");
  char b[16];
  ssize_t r = recv(s, b, sizeof b, 0);
  printf("recv, ICMP error pending: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  r = recv(s, b, sizeof b, 0);
  printf("recv, error queued, SO_RCVTIMEO: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  close(s);

  int rx = socket(AF_UNIX, SOCK_DGRAM, 0), tx = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un u = {.sun_family = AF_UNIX};
  snprintf(u.sun_path + 1, sizeof u.sun_path - 1, "unblock-recv-flags-%d", (int)getpid());
  socklen_t ul = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(u.sun_path + 1));
  if (bind(rx, (struct sockaddr*)&u, ul)) die("bind unix");
  if (setsockopt(tx, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv)) die("SO_SNDTIMEO");
  int n = 0;
  while ((r = sendto(tx, "z", 1, 0, (struct sockaddr*)&u, ul)) == 1 && n < 100000) n++;
  printf("sendto a full unix peer, SO_SNDTIMEO: %d sent, then %zd %s\n", n, r, r < 0 ? strerror(errno) : "");
  close(rx);
  close(tx);
}

// shutdown(SHUT_RD) on a UDP socket: a receive blocked in it returns 0, as
// do the receives after it (a non-blocking one would say EAGAIN).
static int shut_fd;
static void* shut_later(void* arg) {
  (void)arg;
  usleep(20000);
  shutdown(shut_fd, SHUT_RD);
  return NULL;
}

static void udp_shutdown(void) {
  struct sockaddr_in a;
  shut_fd = bound_loopback(SOCK_DGRAM, &a);
  char b[16];
  // A first wait that data ends, so the socket is known to the engine.
  int tx = socket(AF_INET, SOCK_DGRAM, 0);
  if (sendto(tx, "hi", 2, 0, (struct sockaddr*)&a, sizeof a) != 2) die("sendto");
  ssize_t r = recv(shut_fd, b, sizeof b, 0);
  printf("udp recv before shutdown: %zd\n", r);
  pthread_t t;
  if (pthread_create(&t, NULL, shut_later, NULL)) die("pthread_create");
  r = recv(shut_fd, b, sizeof b, 0);
  pthread_join(t, NULL);
  printf("udp recv woken by shutdown(SHUT_RD): %zd %s\n", r, r < 0 ? strerror(errno) : "");
  r = recv(shut_fd, b, sizeof b, 0);
  printf("udp recv after shutdown: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  close(shut_fd);
  int s = bound_loopback(SOCK_DGRAM, &a);
  shutdown(s, SHUT_RD);
  r = recv(s, b, sizeof b, 0);
  printf("udp recv, shut before any wait: %zd %s\n", r, r < 0 ? strerror(errno) : "");
  close(s);
  close(tx);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  datagrams(SOCK_DGRAM, "dgram");
  datagrams(SOCK_SEQPACKET, "seqpacket");
  stream_pieces();
  stream_rights();
  stream_signal();
  tcp_big();
  errqueue();
  tcp_oob();
  control_cases();
  bad_arguments();
  timeouts_while_ready();
  udp_shutdown();
  return 0;
}
