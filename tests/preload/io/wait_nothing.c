// select, pselect and poll with nothing to watch (no fd, empty sets, only
// negative fds) are sleeps: they return 0 at the timeout without using the
// CPU, other threads run meanwhile, and a signal ends an untimed one with
// EINTR. Under the preload such a call once returned from its wait at once
// and looped on its worker until the deadline (100% CPU, the worker's other
// fibers starved), forever when there was none (issue 16).
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>

static atomic_int other_ran;

static void* other(void* arg) {
  (void)arg;
  atomic_store(&other_ran, 1);
  return NULL;
}

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

enum { kSleepMs = 200 };

static int select_null(void) {
  struct timeval tv = {0, kSleepMs * 1000};
  return select(0, NULL, NULL, NULL, &tv);
}

static int select_empty_sets(void) {
  fd_set r, w, e;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_ZERO(&e);
  struct timeval tv = {0, kSleepMs * 1000};
  return select(8, &r, &w, &e, &tv);
}

static int pselect_null(void) {
  struct timespec ts = {0, kSleepMs * 1000000L};
  return pselect(0, NULL, NULL, NULL, &ts, NULL);
}

static int poll_none(void) { return poll(NULL, 0, kSleepMs); }

static int poll_negative(void) {
  struct pollfd p[2] = {{-1, POLLIN, 0}, {-5, POLLOUT, 0}};
  int r = poll(p, 2, kSleepMs);
  return r != 0 ? r : p[0].revents | p[1].revents;
}

// A sleep with another thread just started: it must run during the sleep.
static void timed(const char* name, int (*fn)(void)) {
  atomic_store(&other_ran, 0);
  pthread_t t;
  pthread_create(&t, NULL, other, NULL);
  double c0 = cpu_ms(), t0 = now_ms();
  int r = fn();
  double c1 = cpu_ms(), t1 = now_ms();
  int ran = atomic_load(&other_ran);
  pthread_join(t, NULL);
  // Generous bounds: they separate a sleep from a busy loop of kSleepMs.
  printf("%s: returned %d, slept the timeout: %s, other thread ran meanwhile: %s, cpu used: %s\n", name, r,
         t1 - t0 >= kSleepMs - 5 ? "yes" : "no", ran ? "yes" : "no", c1 - c0 < kSleepMs / 2 ? "little" : "busy");
}

static void on_alarm(int sig) { (void)sig; }

// An untimed wait on nothing ends only by a signal: EINTR.
static void untimed(const char* name, int which) {
  struct itimerval it = {{0, 0}, {0, 50000}};
  setitimer(ITIMER_REAL, &it, NULL);
  int r;
  if (which == 0) r = select(0, NULL, NULL, NULL, NULL);
  else if (which == 1) r = pselect(0, NULL, NULL, NULL, NULL, NULL);
  else r = poll(NULL, 0, -1);
  int err = errno;
  printf("%s: returned %d (%s)\n", name, r, r < 0 ? strerror(err) : "-");
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;  // no SA_RESTART (these calls never restart anyway)
  sigaction(SIGALRM, &sa, NULL);
  timed("select(0, NULL x3)", select_null);
  timed("select(8, empty sets)", select_empty_sets);
  timed("pselect(0, NULL x3)", pselect_null);
  timed("poll(NULL, 0)", poll_none);
  timed("poll(negative fds)", poll_negative);
  untimed("select(0, NULL x3, no timeout) + SIGALRM", 0);
  untimed("pselect(0, NULL x3, no timeout) + SIGALRM", 1);
  untimed("poll(NULL, 0, -1) + SIGALRM", 2);
  return 0;
}
