// recvmmsg and sendmmsg on blocking sockets, plain and preloaded alike: a
// batch waits for all vlen datagrams (or the first, with MSG_WAITFORONE),
// a zero timeout takes one datagram and the time left is written back,
// SO_RCVTIMEO ends a wait with the count so far (or EAGAIN), and sendmmsg
// waits for room: 600 datagrams into a unix socket whose queue holds fewer,
// 4 x 256 KiB on a stream, EPIPE with one SIGPIPE. A UDP socket with an ICMP
// error queued polls ready while a receive has nothing: SO_RCVTIMEO still
// ends the batch (no spinning on the readiness).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

static void die(const char* what) {
  perror(what);
  exit(1);
}

struct drip {
  int fd;
  int count;
  int delay_us;  // before each datagram
};

static void* drip(void* arg) {
  struct drip* d = arg;
  for (int i = 0; i < d->count; i++) {
    usleep((useconds_t)d->delay_us);
    char b[16];
    int n = snprintf(b, sizeof b, "msg%d", i);
    if (send(d->fd, b, (size_t)n, 0) != n) die("send");
  }
  return NULL;
}

enum { kVlen = 3 };
static char bufs[kVlen][32];
static struct iovec iovs[kVlen];
static struct mmsghdr vec[kVlen];

static void reset(void) {
  memset(vec, 0, sizeof vec);
  for (int i = 0; i < kVlen; i++) {
    iovs[i] = (struct iovec){bufs[i], sizeof bufs[i]};
    vec[i].msg_hdr.msg_iov = &iovs[i];
    vec[i].msg_hdr.msg_iovlen = 1;
  }
}

static void show(const char* what, int r) {
  printf("%-40s %d", what, r);
  if (r < 0) printf(" %s", strerror(errno));
  for (int i = 0; i < r; i++) printf(" [%.*s]", (int)vec[i].msg_len, bufs[i]);
  printf("\n");
}

static void receive_cases(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) die("socketpair");
  pthread_t t;

  struct drip d = {sv[1], 3, 20000};
  if (pthread_create(&t, NULL, drip, &d)) die("pthread_create");
  reset();
  show("recvmmsg 3, arriving one by one", recvmmsg(sv[0], vec, kVlen, 0, NULL));
  pthread_join(t, NULL);

  d.count = 1;
  if (pthread_create(&t, NULL, drip, &d)) die("pthread_create");
  reset();
  show("recvmmsg 3, MSG_WAITFORONE", recvmmsg(sv[0], vec, kVlen, MSG_WAITFORONE, NULL));
  pthread_join(t, NULL);

  for (int i = 0; i < 3; i++) send(sv[1], "q", 1, 0);
  reset();
  struct timespec zero = {0, 0};
  show("recvmmsg 3, three queued, zero timeout", recvmmsg(sv[0], vec, kVlen, 0, &zero));
  printf("  time left %ld.%09ld\n", (long)zero.tv_sec, zero.tv_nsec);
  reset();
  struct timespec ten = {10, 0};
  int r = recvmmsg(sv[0], vec, 2, 0, &ten);
  show("recvmmsg 2, two queued, 10 s timeout", r);
  printf("  time left under 10 s: %s\n", ten.tv_sec < 10 && ten.tv_sec >= 9 ? "yes" : "no");

  struct timeval tv = {0, 50000};
  if (setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)) die("setsockopt");
  reset();
  show("recvmmsg 3, none, SO_RCVTIMEO", recvmmsg(sv[0], vec, kVlen, 0, NULL));
  send(sv[1], "one", 3, 0);
  reset();
  show("recvmmsg 3, one, SO_RCVTIMEO", recvmmsg(sv[0], vec, kVlen, 0, NULL));
  close(sv[0]);
  close(sv[1]);
}

struct sink {
  int fd;
  long expect;  // bytes (stream) or datagrams
  int stream;
  long got;
};

static void* drain(void* arg) {
  struct sink* s = arg;
  char b[65536];
  while (s->got < s->expect) {
    usleep(200);
    ssize_t r = recv(s->fd, b, s->stream ? sizeof b : 64, 0);
    if (r <= 0) die("drain recv");
    s->got += s->stream ? r : 1;
  }
  return NULL;
}

static volatile sig_atomic_t sigpipes;
static void on_pipe(int sig) {
  (void)sig;
  sigpipes++;
}

static void send_cases(void) {
  int sv[2];
  pthread_t t;
  // Datagrams: more than the receiver's queue holds.
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) die("socketpair");
  enum { kMany = 600 };
  static struct mmsghdr out[kMany];
  static struct iovec oiov[kMany];
  static char payload[kMany][8];
  for (int i = 0; i < kMany; i++) {
    snprintf(payload[i], sizeof payload[i], "%d", i);
    oiov[i] = (struct iovec){payload[i], strlen(payload[i])};
    out[i].msg_hdr.msg_iov = &oiov[i];
    out[i].msg_hdr.msg_iovlen = 1;
  }
  struct sink s = {sv[0], kMany, 0, 0};
  if (pthread_create(&t, NULL, drain, &s)) die("pthread_create");
  int r = sendmmsg(sv[1], out, kMany, 0);
  pthread_join(t, NULL);
  int lens_ok = 1;
  for (int i = 0; i < r; i++) lens_ok &= out[i].msg_len == strlen(payload[i]);
  printf("sendmmsg 600 datagrams: %d, lengths %s, received %ld\n", r, lens_ok ? "right" : "WRONG", s.got);
  close(sv[0]);
  close(sv[1]);

  // A stream: messages far larger than the socket buffer.
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
  enum { kBig = 256 * 1024 };
  char* big = malloc(kBig);
  memset(big, 'x', kBig);
  struct iovec biov[4];
  struct mmsghdr bvec[4];
  memset(bvec, 0, sizeof bvec);
  for (int i = 0; i < 4; i++) {
    biov[i] = (struct iovec){big, kBig};
    bvec[i].msg_hdr.msg_iov = &biov[i];
    bvec[i].msg_hdr.msg_iovlen = 1;
  }
  struct sink st = {sv[0], 4L * kBig, 1, 0};
  if (pthread_create(&t, NULL, drain, &st)) die("pthread_create");
  r = sendmmsg(sv[1], bvec, 4, 0);
  pthread_join(t, NULL);
  printf("sendmmsg 4 x 256 KiB on a stream: %d, lengths %u %u %u %u, received %ld\n", r, bvec[0].msg_len,
         bvec[1].msg_len, bvec[2].msg_len, bvec[3].msg_len, st.got);
  free(big);

  // EPIPE: the peer is gone.
  struct sigaction sa = {0};
  sa.sa_handler = on_pipe;
  sigaction(SIGPIPE, &sa, NULL);
  close(sv[0]);
  r = sendmmsg(sv[1], bvec, 1, 0);
  printf("sendmmsg, peer closed: %d %s, SIGPIPE %d\n", r, r < 0 ? strerror(errno) : "", (int)sigpipes);
  r = sendmmsg(sv[1], bvec, 1, MSG_NOSIGNAL);
  printf("sendmmsg, peer closed, MSG_NOSIGNAL: %d %s, SIGPIPE %d\n", r, r < 0 ? strerror(errno) : "", (int)sigpipes);
  close(sv[1]);
}

static void error_queued(void) {
  int s = udp_refused();
  if (s < 0) die("udp_refused");
  struct timeval tv = {0, 100000};
  if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv)) die("SO_RCVTIMEO");
  reset();
  show("recvmmsg, ICMP error pending", recvmmsg(s, vec, kVlen, 0, NULL));
  reset();
  show("recvmmsg, error queued, SO_RCVTIMEO", recvmmsg(s, vec, kVlen, 0, NULL));
  close(s);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  receive_cases();
  send_cases();
  error_queued();
  return 0;
}
