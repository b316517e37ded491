// sleep/usleep/nanosleep/clock_nanosleep (relative and absolute, both
// clocks) sleep at least as long as asked, and reject bad arguments the same
// way; many threads sleeping at once all finish.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void* run(void* arg) {
  (void)arg;
  long long t0 = now_ns(CLOCK_MONOTONIC);
  usleep(20000);
  printf("usleep >= 20ms: %d\n", now_ns(CLOCK_MONOTONIC) - t0 >= 20000000);
  t0 = now_ns(CLOCK_MONOTONIC);
  struct timespec req = {0, 15000000}, rem = {9, 9};
  int r = nanosleep(&req, &rem);
  printf("nanosleep: %d >= 15ms: %d\n", r, now_ns(CLOCK_MONOTONIC) - t0 >= 15000000);
  t0 = now_ns(CLOCK_MONOTONIC);
  r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
  printf("clock_nanosleep rel: %d ok: %d\n", r, now_ns(CLOCK_MONOTONIC) - t0 >= 15000000);
  struct timespec abs;
  clock_gettime(CLOCK_REALTIME, &abs);
  abs.tv_nsec += 10000000;
  if (abs.tv_nsec >= 1000000000) { abs.tv_nsec -= 1000000000; abs.tv_sec++; }
  r = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs, NULL);
  long long rt = now_ns(CLOCK_REALTIME);
  printf("clock_nanosleep abs realtime: %d reached: %d\n", r, rt >= abs.tv_sec * 1000000000LL + abs.tv_nsec);
  clock_gettime(CLOCK_MONOTONIC, &abs);
  abs.tv_nsec += 10000000;
  if (abs.tv_nsec >= 1000000000) { abs.tv_nsec -= 1000000000; abs.tv_sec++; }
  r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
  printf("clock_nanosleep abs monotonic: %d reached: %d\n", r,
         now_ns(CLOCK_MONOTONIC) >= abs.tv_sec * 1000000000LL + abs.tv_nsec);
  abs.tv_sec -= 100;  // in the past: returns at once
  printf("abs in the past: %d\n", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL));
  struct timespec bad = {0, 1000000000};
  errno = 0;
  r = nanosleep(&bad, NULL);
  printf("nanosleep bad nsec: %d errno EINVAL: %d\n", r, errno == EINVAL);
  bad.tv_sec = -1;
  bad.tv_nsec = 0;
  printf("clock_nanosleep negative: %s\n", clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL) == EINVAL ? "EINVAL" : "other");
  struct timespec zero = {0, 0};
  printf("nanosleep zero: %d\n", nanosleep(&zero, NULL));
  printf("sleep(0): %u\n", sleep(0));
  t0 = now_ns(CLOCK_MONOTONIC);
  printf("sleep(1): %u elapsed>=1s: %d\n", sleep(1), now_ns(CLOCK_MONOTONIC) - t0 >= 1000000000LL);
  return NULL;
}

static void* many(void* arg) {
  usleep(1000 + (unsigned)(long)arg % 7 * 1000);
  return arg;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  enum { N = 1000 };
  static pthread_t ts[N];
  for (long i = 0; i < N; i++) pthread_create(&ts[i], NULL, many, (void*)i);
  long sum = 0;
  for (int i = 0; i < N; i++) {
    void* r;
    pthread_join(ts[i], &r);
    sum += (long)r;
  }
  printf("%d sleepers joined, sum %ld\n", N, sum);
  return 0;
}
