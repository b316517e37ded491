// dup2() over a socket the epoll engine registered on the program's own
// number (past its duplicate budget: the process re-executes itself under
// RLIMIT_NOFILE 64, a budget of 8). The hook must drop the registration
// before the real dup2, while the number still names the old file: after
// it the kernel's entry could no longer be deleted and would go on
// reporting the old file (kept open by a dup of the program's). Checked
// by the preloaded run's counters (epoll_number_regs >= 1,
// epoll_stale_events == 0); the output is the same plain and preloaded.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kHeld = 10 };

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int held[kHeld][2];

// Waits on a pipe until main writes: each such wait holds one of the
// engine's duplicates.
static void* hold(void* arg) {
  int i = (int)(long)arg;
  char c;
  ssize_t n = read(held[i][0], &c, 1);
  return (void*)(long)n;
}

struct reader {
  int fd;
  char buf[8];
  ssize_t n;
};

static void* read_once(void* arg) {
  struct reader* r = arg;
  r->n = read(r->fd, r->buf, sizeof r->buf);
  return NULL;
}

// A read on fd by another thread that has to wait for the data.
static ssize_t waited_read(int fd, int peer, const char* msg, char* out) {
  struct reader r = {fd, {0}, 0};
  pthread_t t;
  pthread_create(&t, NULL, read_once, &r);
  sleep_ms(30);
  if (write(peer, msg, strlen(msg)) != (ssize_t)strlen(msg)) abort();
  pthread_join(t, NULL);
  memcpy(out, r.buf, sizeof r.buf);
  return r.n;
}

int main(int argc, char** argv) {
  (void)argc;
  if (!getenv("NUMBER_DUP2_LIMITED")) {
    struct rlimit rl = {64, 64};
    setenv("NUMBER_DUP2_LIMITED", "1", 1);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
    execv("/proc/self/exe", argv);
    return 3;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t holders[kHeld];
  for (int i = 0; i < kHeld; ++i) {
    if (pipe(held[i]) != 0) return 4;
    pthread_create(&holders[i], NULL, hold, (void*)(long)i);
  }
  sleep_ms(50);  // every holder waits: the budget is spent

  int a[2], b[2];
  char buf[8];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, b) != 0) return 5;
  ssize_t n = waited_read(a[0], a[1], "one", buf);
  printf("first read on a: %zd \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
  int keep = dup(a[0]);  // the old file stays open
  if (dup2(b[0], a[0]) != a[0]) return 6;
  // The old file gets data; the number now names b's file.
  if (write(a[1], "old", 3) != 3) return 7;
  n = waited_read(a[0], b[1], "new", buf);
  printf("read on the number after dup2: %zd \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
  n = read(keep, buf, sizeof buf);
  printf("the old file kept: %zd \"%.*s\"\n", n, (int)(n > 0 ? n : 0), buf);
  for (int i = 0; i < kHeld; ++i) {
    if (write(held[i][1], "x", 1) != 1) return 8;
    pthread_join(holders[i], NULL);
  }
  printf("done\n");
  return 0;
}
