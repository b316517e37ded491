// A thread's CPU clock counts only the time it was on a CPU: with the whole
// process and a busy child process confined to one CPU, a thread that
// computes until its clock shows 150 ms needs more wall time than that, and
// the process's CPU time grows by at least what the thread counted (time
// its OS thread spent preempted is not CPU time). Skipped (a "skipped"
// line) when CPU 0 is not available to the test.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL

static long long ns_of(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long thread_cpu, thread_wall, process_cpu;

static void* burner(void* arg) {
  (void)arg;
  long long c0 = ns_of(CLOCK_THREAD_CPUTIME_ID), w0 = ns_of(CLOCK_MONOTONIC), p0 = ns_of(CLOCK_PROCESS_CPUTIME_ID);
  volatile unsigned long x = 0;
  while (ns_of(CLOCK_THREAD_CPUTIME_ID) - c0 < 150 * MS) {
    for (int i = 0; i < 2000; ++i) x += i;
  }
  thread_cpu = ns_of(CLOCK_THREAD_CPUTIME_ID) - c0;
  thread_wall = ns_of(CLOCK_MONOTONIC) - w0;
  process_cpu = ns_of(CLOCK_PROCESS_CPUTIME_ID) - p0;
  return NULL;
}

int main(void) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0) {
    // Same line plain and preloaded; one thread still runs.
    printf("skipped: CPU 0 is not available\n");
    pthread_t t;
    pthread_create(&t, NULL, burner, NULL);
    pthread_join(t, NULL);
    return 0;
  }
  pid_t hog = fork();
  if (hog == 0) {
    alarm(20);  // bounded even if the parent dies
    volatile unsigned long y = 0;
    for (;;) y++;
  }
  usleep(20 * 1000);  // let the hog get going
  pthread_t t;
  pthread_create(&t, NULL, burner, NULL);
  pthread_join(t, NULL);
  kill(hog, SIGKILL);
  waitpid(hog, NULL, 0);
  printf("the thread counted 150-200 ms: %s\n", thread_cpu >= 150 * MS && thread_cpu < 200 * MS ? "yes" : "NO");
  printf("sharing the CPU, it took more wall time than that: %s\n", thread_wall > thread_cpu * 5 / 4 ? "yes" : "NO");
  printf("the process's CPU time covers it: %s\n", process_cpu >= thread_cpu * 9 / 10 ? "yes" : "NO");
  fprintf(stderr, "thread cpu %lld ms, wall %lld ms, process cpu %lld ms\n", thread_cpu / MS, thread_wall / MS,
          process_cpu / MS);
  return 0;
}
