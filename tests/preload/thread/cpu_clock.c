// Per-thread CPU clocks: CLOCK_THREAD_CPUTIME_ID, the clock of
// pthread_getcpuclockid and getrusage(RUSAGE_THREAD) count the calling
// thread's own CPU time only:
//   - a thread created after main computed for 200 ms reads ~0;
//   - main's clock keeps its 200 ms and does not take its threads' time;
//   - time asleep (nanosleep, a condition wait) or blocked in a system call
//     the thread makes directly (syscall(SYS_nanosleep), off the CPU) is not
//     CPU time; computing is;
//   - another thread's clock, read while that thread waits, shows its time;
//     clock_getres of it answers as for any thread CPU clock;
//   - two threads computing side by side each count their own time: the
//     process's CPU time covers both;
//   - after the thread is joined: pthread_getcpuclockid gives ESRCH and its
//     old clock id EINVAL;
//   - clock_nanosleep on a computing thread's clock returns once that thread
//     used the time; on the caller's own clock it is EINVAL.
// Printed are only facts that hold for any scheduling of the threads.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL

static long long ns_of(clockid_t c) {
  struct timespec ts;
  if (clock_gettime(c, &ts) != 0) return -1;
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long own(void) { return ns_of(CLOCK_THREAD_CPUTIME_ID); }

// Computes until the thread's own clock advanced by `ms`.
static void burn(long long ms) {
  long long end = own() + ms * MS;
  volatile unsigned long x = 0;
  while (own() < end) {
    for (int i = 0; i < 10000; ++i) x += i;
  }
}

static const char* yes(int c) { return c ? "yes" : "NO"; }

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void wait_stage(int s) {
  pthread_mutex_lock(&mu);
  while (stage < s) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

static void set_stage(int s) {
  pthread_mutex_lock(&mu);
  stage = s;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

static char report[2048];
static size_t used;
#define SAY(...) (used += snprintf(report + used, sizeof report - used, __VA_ARGS__))

static void* worker(void* arg) {
  (void)arg;
  long long start = own();
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  long long ru_ns = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
                    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
  clockid_t mine;
  pthread_getcpuclockid(pthread_self(), &mine);
  SAY("new thread starts below 20 ms: %s\n", yes(start >= 0 && start < 20 * MS));
  SAY("its RUSAGE_THREAD below 20 ms: %s\n", yes(ru_ns < 20 * MS));
  SAY("its pthread_getcpuclockid clock agrees: %s\n", yes(ns_of(mine) >= start && ns_of(mine) < start + 20 * MS));
  burn(100);
  long long after_burn = own();
  SAY("100 ms of computing counted: %s\n", yes(after_burn - start >= 100 * MS && after_burn - start < 150 * MS));
  struct timespec d = {0, 150 * MS};
  nanosleep(&d, NULL);
  long long after_sleep = own();
  SAY("150 ms asleep adds below 20 ms: %s\n", yes(after_sleep - after_burn < 20 * MS));
  syscall(SYS_nanosleep, &d, NULL);  // blocks this OS thread (or carrier) off the CPU
  long long after_block = own();
  SAY("150 ms blocked in a system call adds below 20 ms: %s\n", yes(after_block - after_sleep < 20 * MS));
  set_stage(1);
  wait_stage(2);  // main reads our clock meanwhile
  return NULL;
}

static volatile int stop_spinning;

static void* spinner(void* arg) {
  (void)arg;
  volatile unsigned long x = 0;
  while (!stop_spinning) x++;
  return NULL;
}

static long long pair_cpu[2];

static void* pair_worker(void* arg) {
  long* idx = arg;
  long long s = own();
  burn(100);
  pair_cpu[*idx] = own() - s;
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  burn(200);
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  wait_stage(1);
  long long main_now = own();
  printf("main keeps its own 200 ms and not its thread's 100: %s\n",
         yes(main_now >= 200 * MS && main_now < 280 * MS));
  clockid_t tc;
  int r = pthread_getcpuclockid(t, &tc);
  long long their = ns_of(tc);
  printf("pthread_getcpuclockid: %s; the waiting thread's clock reads 100-150 ms: %s\n", strerror(r),
         yes(their >= 100 * MS && their < 150 * MS));
  struct timespec res = {7, 7};
  r = clock_getres(tc, &res);
  printf("clock_getres of it: %d, %ld.%09ld\n", r, (long)res.tv_sec, res.tv_nsec);
  set_stage(2);
  pthread_join(t, NULL);
  fputs(report, stdout);

  clockid_t dummy;
  printf("pthread_getcpuclockid after join: %s\n", strerror(pthread_getcpuclockid(t, &dummy)));
  errno = 0;
  struct timespec ts;
  r = clock_gettime(tc, &ts);
  printf("its old clock after join: %d %s\n", r, strerror(errno));
  errno = 0;
  r = clock_getres(tc, &ts);
  printf("clock_getres of it after join: %d %s\n", r, strerror(errno));

  // clock_nanosleep on another thread's CPU clock waits until that thread
  // has used the time; on the caller's own clock it is EINVAL.
  pthread_t sp;
  pthread_create(&sp, NULL, spinner, NULL);
  clockid_t sc, mine;
  pthread_getcpuclockid(sp, &sc);
  pthread_getcpuclockid(pthread_self(), &mine);
  long long s0 = ns_of(sc);
  struct timespec thirty = {0, 30 * MS};
  r = clock_nanosleep(sc, 0, &thirty, NULL);
  long long s1 = ns_of(sc);
  printf("clock_nanosleep 30 ms on a computing thread's clock: %s; it used 30 ms or more: %s\n", strerror(r),
         yes(s1 - s0 >= 30 * MS));
  struct timespec past = {0, 0};
  printf("the same, absolute, in the past: %s\n", strerror(clock_nanosleep(sc, TIMER_ABSTIME, &past, NULL)));
  printf("on the caller's own clock: %s\n", strerror(clock_nanosleep(mine, 0, &thirty, NULL)));
  stop_spinning = 1;
  pthread_join(sp, NULL);

  // Two threads computing at once: each counts its own 100 ms, and the
  // process's CPU time grew by at least what they report together.
  long long p0 = ns_of(CLOCK_PROCESS_CPUTIME_ID);
  pthread_t a, b;
  long ia = 0, ib = 1;
  pthread_create(&a, NULL, pair_worker, &ia);
  pthread_create(&b, NULL, pair_worker, &ib);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  long long p1 = ns_of(CLOCK_PROCESS_CPUTIME_ID);
  printf("two computing threads: each counted 100-150 ms: %s\n",
         yes(pair_cpu[0] >= 100 * MS && pair_cpu[0] < 150 * MS && pair_cpu[1] >= 100 * MS && pair_cpu[1] < 150 * MS));
  printf("the process's CPU time covers both: %s\n", yes(p1 - p0 >= (pair_cpu[0] + pair_cpu[1]) * 9 / 10));
  if (p1 - p0 < (pair_cpu[0] + pair_cpu[1]) * 9 / 10) {
    fprintf(stderr, "process %lld ms, threads %lld + %lld ms\n", (p1 - p0) / MS, pair_cpu[0] / MS, pair_cpu[1] / MS);
  }
  return 0;
}
