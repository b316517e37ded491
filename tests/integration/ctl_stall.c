// A thread that keeps its worker: spins twice for 300 ms (one call site),
// then sleeps twice for 300 ms in a system call the library does not
// intercept (syscall(SYS_nanosleep), one call site), with nothing else to
// run, so no hand-off ends it. ctl_stall.sh runs it with UNBLOCK_STALL_MS
// and UNBLOCK_TRACE and reads the log.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void spin(double seconds) {
  double end = now() + seconds;
  volatile unsigned long n = 0;
  while (now() < end) n++;
}

__attribute__((noinline)) static void raw_sleep_caller(void) {
  struct timespec ts = {0, 300 * 1000 * 1000};
  if (syscall(SYS_nanosleep, &ts, NULL) != 0) perror("nanosleep");
}

static void* spinner(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "spinner");
  for (int i = 0; i < 2; i++) {
    spin(0.3);
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < 2; i++) {
    raw_sleep_caller();
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, spinner, NULL);
  pthread_join(t, NULL);
  struct timespec ts = {0, 400 * 1000 * 1000};  // a few trace lines while idle
  nanosleep(&ts, NULL);
  printf("done\n");
  return 0;
}
