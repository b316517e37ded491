// poll() and select() over more than 16 descriptors need memory for their
// waits under the library; when there is none they must still wait as the
// kernel's call does - not report a timeout that did not happen (they
// returned 0 at once, even with an infinite timeout). This program fails
// every allocation of 64 KiB or more while it is "starved" (its own malloc
// interposes libc's for the whole process, the library's operator new too),
// then polls 3,000 pipe read ends with an infinite timeout while another
// thread writes to one of them after 300 ms, and selects over 600 with a
// 200 ms timeout. The same output plain and preloaded.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void __libc_free(void*);

static atomic_int starved;
enum { kBig = 64 * 1024 };

void* malloc(size_t n) {
  if (n >= kBig && atomic_load(&starved)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  if (a && b >= kBig / a && atomic_load(&starved)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  if (n >= kBig && atomic_load(&starved)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }

enum { kPipes = 1500 };
static int rd[kPipes], wr[kPipes];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void* late_writer(void* arg) {
  (void)arg;
  struct timespec ts = {0, 300 * 1000000L};
  nanosleep(&ts, NULL);
  if (write(wr[kPipes - 1], "x", 1) != 1) perror("write");
  return NULL;
}

int main(void) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 2 * kPipes + 64) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int opened = 0;
  for (; opened < kPipes; ++opened) {
    int p[2];
    if (pipe(p) != 0) break;
    rd[opened] = p[0];
    wr[opened] = p[1];
  }
  if (opened < kPipes) {
    printf("only %d pipes (RLIMIT_NOFILE): skipped\n", opened);
    pthread_t t;  // still start a thread, so the preloaded run has fibers
    pthread_create(&t, NULL, late_writer, NULL);
    pthread_join(t, NULL);
    return 0;
  }
  struct pollfd* pfd = calloc(kPipes, sizeof *pfd);  // before starving
  for (int i = 0; i < kPipes; ++i) pfd[i] = (struct pollfd){rd[i], POLLIN, 0};
  pthread_t t;
  pthread_create(&t, NULL, late_writer, NULL);
  atomic_store(&starved, 1);
  double t0 = now();
  int r = poll(pfd, kPipes, -1);
  double waited = now() - t0;
  atomic_store(&starved, 0);
  pthread_join(t, NULL);
  printf("poll, infinite timeout, memory short: %d (%s), last pipe readable %s, waited for the writer %s\n", r,
         r < 0 ? strerror(errno) : "ok", (pfd[kPipes - 1].revents & POLLIN) ? "yes" : "no",
         waited >= 0.25 ? "yes" : "no");

  fd_set set;
  FD_ZERO(&set);
  int maxfd = 0, in_set = 0;
  for (int i = 0; i < kPipes - 1 && in_set < 600; ++i) {
    if (rd[i] >= FD_SETSIZE) break;
    FD_SET(rd[i], &set);
    if (rd[i] > maxfd) maxfd = rd[i];
    ++in_set;
  }
  struct timeval tv = {0, 200 * 1000};
  atomic_store(&starved, 1);
  t0 = now();
  r = select(maxfd + 1, &set, NULL, NULL, &tv);
  waited = now() - t0;
  atomic_store(&starved, 0);
  printf("select over %s descriptors, 200 ms, memory short: %d (%s), waited the timeout %s\n",
         in_set > 16 ? "more than 16" : "few", r, r < 0 ? strerror(errno) : "ok", waited >= 0.19 ? "yes" : "no");
  return 0;
}
