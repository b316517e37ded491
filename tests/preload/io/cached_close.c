// Closing, replacing or inheriting a socket some thread has waited on. The
// epoll engine keeps its registration (and its own duplicate of the fd)
// after a wait, for the next one; the program must not notice: close(),
// fclose(), dup2() over the fd and close_range() close the file at once
// (the peer sees end-of-stream without the program doing anything else), a
// forked child does not keep the parent's socket open, a new file given the
// same number is the one a later wait waits on, and many threads waiting on
// one socket all get their bytes. Prints what the peer sees, not timings.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loopback.h"

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void pair(int sv[2]) {
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    perror("socketpair");
    exit(1);
  }
}

struct Read {
  int fd;
  long ret;
  char c;
};

static void* reader(void* arg) {
  struct Read* r = arg;
  // A wait that never ends would hang the test: 5 s, then EAGAIN.
  struct timeval tv = {5, 0};
  setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  r->ret = recv(r->fd, &r->c, 1, 0);
  if (r->ret < 0) r->ret = -errno;
  return NULL;
}

// A thread blocks in recv on fd (so the engine registers it) until the
// peer sends one byte. Returns what it read.
static const char* wait_once(int fd, int peer, char what) {
  static char out[64];
  struct Read r = {fd, 0, 0};
  pthread_t t;
  pthread_create(&t, NULL, reader, &r);
  sleep_ms(50);
  if (send(peer, &what, 1, MSG_NOSIGNAL) != 1) return "send failed";
  pthread_join(t, NULL);
  if (r.ret == 1) snprintf(out, sizeof out, "read '%c'", r.c);
  else snprintf(out, sizeof out, "recv %ld", r.ret);
  return out;
}

// What the peer sees within 2 s, the program doing nothing else.
static const char* peer_sees(int peer) {
  struct pollfd p = {peer, POLLIN, 0};
  int n = poll(&p, 1, 2000);
  if (n == 0) return "nothing (the file is still open)";
  char c;
  ssize_t r = recv(peer, &c, 1, MSG_DONTWAIT);
  if (r == 0) return "end of stream";
  if (r < 0) return strerror(errno);
  return "data";
}

static void case_close(void) {
  int sv[2];
  pair(sv);
  printf("close: wait %s; ", wait_once(sv[0], sv[1], 'a'));
  close(sv[0]);
  printf("peer sees %s\n", peer_sees(sv[1]));
  close(sv[1]);
}

static void case_tcp(void) {
  struct sockaddr_in a;
  int l = bound_loopback(SOCK_STREAM | SOCK_CLOEXEC, &a);
  listen(l, 4);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c, (struct sockaddr*)&a, sizeof a) != 0) {
    perror("connect");
    exit(1);
  }
  int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  printf("tcp close: wait %s; ", wait_once(s, c, 'b'));
  printf("wait again %s; ", wait_once(s, c, 'c'));
  close(s);
  printf("client sees %s (FIN)\n", peer_sees(c));
  close(c);
  close(l);
}

static void case_fclose(void) {
  int sv[2];
  pair(sv);
  printf("fclose: wait %s; ", wait_once(sv[0], sv[1], 'd'));
  FILE* f = fdopen(sv[0], "r+");
  fclose(f);
  printf("peer sees %s\n", peer_sees(sv[1]));
  close(sv[1]);
}

static void case_dup2(void) {
  int a[2], b[2];
  pair(a);
  pair(b);
  printf("dup2: wait %s; ", wait_once(a[0], a[1], 'e'));
  dup2(b[0], a[0]);  // a's socket had one descriptor: it closes
  close(b[0]);
  printf("old peer sees %s; ", peer_sees(a[1]));
  printf("wait on the number %s\n", wait_once(a[0], b[1], 'f'));
  close(a[0]);
  close(a[1]);
  close(b[1]);
}

static void case_close_range(void) {
  enum { kN = 4, kBase = 100 };
  int peers[kN];
  for (int i = 0; i < kN; ++i) {
    int sv[2];
    pair(sv);
    dup2(sv[0], kBase + i);  // contiguous numbers, the peers elsewhere
    close(sv[0]);
    peers[i] = sv[1];
    wait_once(kBase + i, peers[i], 'h');
  }
  int r = close_range(kBase, kBase + kN - 1, 0);
  printf("close_range: %d:", r);
  for (int i = 0; i < kN; ++i) printf(" %s;", peer_sees(peers[i]));
  printf("\n");
  for (int i = 0; i < kN; ++i) close(peers[i]);
}

static void case_fork(void) {
  int sv[2], hold[2];
  pair(sv);
  printf("fork: wait %s; ", wait_once(sv[0], sv[1], 'i'));
  if (pipe2(hold, O_CLOEXEC) != 0) exit(1);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    close(sv[1]);
    close(hold[1]);
    char c;
    ssize_t k = read(hold[0], &c, 1);  // lives until the parent is done
    _exit(k == 0 ? 0 : 1);
  }
  close(hold[0]);
  close(sv[0]);
  printf("peer sees %s while the child lives; ", peer_sees(sv[1]));
  close(hold[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  close(sv[1]);
}

static void case_reopen(void) {
  int a[2], b[2];
  pair(a);
  printf("reopen: wait %s; ", wait_once(a[0], a[1], 'j'));
  int n = a[0];
  close(n);
  pair(b);
  if (b[0] != n) {
    dup2(b[0], n);
    close(b[0]);
  }
  printf("old peer sees %s; ", peer_sees(a[1]));
  printf("wait on the same number %s\n", wait_once(n, b[1], 'k'));
  close(n);
  close(b[1]);
  close(a[1]);
}

enum { kWaiters = 16 };
struct Many {
  int fd;
  int got;
};
static void* many_reader(void* arg) {
  struct Many* m = arg;
  char c;
  struct timeval tv = {5, 0};
  setsockopt(m->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  m->got = recv(m->fd, &c, 1, 0) == 1;
  return NULL;
}

static void case_many_waiters(void) {
  int sv[2];
  pair(sv);
  wait_once(sv[0], sv[1], 'l');  // registered (and cached) before the crowd comes
  int total = 0;
  for (int round = 0; round < 10; ++round) {
    struct Many m[kWaiters];
    pthread_t t[kWaiters];
    for (int i = 0; i < kWaiters; ++i) {
      m[i].fd = sv[0];
      m[i].got = 0;
      pthread_create(&t[i], NULL, many_reader, &m[i]);
    }
    sleep_ms(20);
    // Bursts of 1-5 bytes: fewer edges than readers.
    int sent = 0, burst = 1 + round % 5;
    while (sent < kWaiters) {
      int k = kWaiters - sent < burst ? kWaiters - sent : burst;
      char b[8] = {0};
      if (send(sv[1], b, (size_t)k, 0) != k) break;
      sent += k;
      if (round & 1) sleep_ms(1);
    }
    for (int i = 0; i < kWaiters; ++i) {
      pthread_join(t[i], NULL);
      total += m[i].got;
    }
  }
  printf("many waiters: %d of %d reads got a byte\n", total, 10 * kWaiters);
  close(sv[0]);
  close(sv[1]);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  case_close();
  case_tcp();
  case_fclose();
  case_dup2();
  case_close_range();
  case_fork();
  case_reopen();
  case_many_waiters();
  return 0;
}
