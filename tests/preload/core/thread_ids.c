// Every thread has its own id, and the calls that take one act on that
// thread (hooks/thread_ids.cpp). Eleven threads alive at once: their ids are
// distinct, main's is the process id, gettid() == syscall(SYS_gettid), and
// each thread then answers for itself what others did to its id:
// tgkill/tkill/rt_tgsigqueueinfo ran the handler in that thread,
// sched_setaffinity/getaffinity and pthread_{get,set}affinity_np,
// sched_setscheduler/getscheduler,
// setpriority/getpriority(PRIO_PROCESS) and ioprio_set/get see the same
// per-thread values from inside and outside, a thread created by a reniced
// thread inherits its nice value, and an id that ended gives ESRCH.
// The output is the same plain and preloaded (the CPU count is the process's).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { kThreads = 11 };

static pid_t ids[kThreads];
static atomic_int ready, go, done_checks;
static __thread pid_t my_id;
static __thread atomic_int hits;
static _Atomic(pid_t) handler_ran_in[64];
static atomic_int handler_count;
static atomic_int queued_value;
static char report[kThreads][256];  // each thread's own findings, printed by main in order

#define REPORT(i, ...) \
  snprintf(report[i] + strlen(report[i]), sizeof report[i] - strlen(report[i]), __VA_ARGS__)

static void on_usr1(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)uc;
  int n = atomic_fetch_add(&handler_count, 1);
  if (n < 64) handler_ran_in[n] = (pid_t)syscall(SYS_gettid);
  if (si->si_code == SI_QUEUE) atomic_store(&queued_value, si->si_value.sival_int);
  atomic_fetch_add(&hits, 1);
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

static void* child_of_reniced(void* arg) {
  (void)arg;
  return (void*)(long)getpriority(PRIO_PROCESS, 0);
}

static void* worker(void* arg) {
  long i = (long)arg;
  my_id = gettid();
  ids[i] = my_id;
  if ((pid_t)syscall(SYS_gettid) != my_id) REPORT(i, "thread %ld: syscall(SYS_gettid) != gettid()\n", i);
  atomic_fetch_add(&ready, 1);
  while (!atomic_load(&go)) sleep_ms(1);
  // Wait until the main thread's signals and settings for us arrived.
  for (int k = 0; k < 2000 && atomic_load(&hits) < (i == 1 ? 3 : 0); ++k) sleep_ms(1);
  if (i == 1) REPORT(i, "thread 1: its handler ran %d times, in itself\n", atomic_load(&hits));
  if (i == 2) {
    cpu_set_t s;
    CPU_ZERO(&s);
    sched_getaffinity(0, sizeof s, &s);
    REPORT(i, "thread 2: own affinity %d CPU(s), CPU 0 %s\n", CPU_COUNT(&s), CPU_ISSET(0, &s) ? "in" : "out");
    CPU_ZERO(&s);
    pthread_getaffinity_np(pthread_self(), sizeof s, &s);
    REPORT(i, "thread 2: pthread_getaffinity_np %d CPU(s)\n", CPU_COUNT(&s));
    // Back to every CPU the process may use, through the pthread call.
    cpu_set_t all;
    CPU_ZERO(&all);
    sched_getaffinity(getpid(), sizeof all, &all);
    int r = pthread_setaffinity_np(pthread_self(), sizeof all, &all);
    CPU_ZERO(&s);
    sched_getaffinity(0, sizeof s, &s);
    REPORT(i, "thread 2: pthread_setaffinity_np(all): %d, now %s\n", r, CPU_EQUAL(&s, &all) ? "all" : "not all");
  }
  if (i == 3) {
    REPORT(i, "thread 3: own nice %d\n", getpriority(PRIO_PROCESS, 0));
    pthread_t c;
    void* r;
    pthread_create(&c, NULL, child_of_reniced, NULL);
    pthread_join(c, &r);
    REPORT(i, "thread 3: its new thread's nice %ld\n", (long)r);
  }
  if (i == 5) REPORT(i, "thread 5: own policy %s\n", sched_getscheduler(0) == SCHED_BATCH ? "SCHED_BATCH" : "other");
  if (i == 4) {
    long p = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
    REPORT(i, "thread 4: own ioprio class %ld level %ld\n", p >> 13, p & 7);
  }
  atomic_fetch_add(&done_checks, 1);
  while (atomic_load(&go) != 2) sleep_ms(1);
  return NULL;
}

static void* short_lived(void* arg) {
  *(pid_t*)arg = gettid();
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_usr1;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  printf("main: gettid() == getpid(): %s\n", gettid() == getpid() ? "yes" : "no");

  pthread_t t[kThreads];
  for (long i = 0; i < kThreads; ++i) pthread_create(&t[i], NULL, worker, (void*)i);
  while (atomic_load(&ready) < kThreads) sleep_ms(1);
  int distinct = 1;
  for (int a = 0; a < kThreads; ++a) {
    if (ids[a] == getpid() || ids[a] <= 0) distinct = 0;
    for (int b = a + 1; b < kThreads; ++b) distinct &= ids[a] != ids[b];
  }
  printf("%d live threads: ids distinct and not the process id: %s\n", kThreads, distinct ? "yes" : "no");

  // Thread 1: three signals by id.
  // One at a time: standard signals pending together merge into one.
  int r1 = (int)syscall(SYS_tgkill, getpid(), ids[1], SIGUSR1);
  while (atomic_load(&handler_count) < 1) sleep_ms(1);
  int r2 = tgkill(getpid(), ids[1], SIGUSR1);
  while (atomic_load(&handler_count) < 2) sleep_ms(1);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = SIGUSR1;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_int = 4242;
  int r3 = (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), ids[1], SIGUSR1, &si);
  while (atomic_load(&handler_count) < 3) sleep_ms(1);
  printf("tgkill/syscall tgkill/rt_tgsigqueueinfo to thread 1: %d %d %d\n", r1, r2, r3);
  printf("signal 0 to thread 1: %d\n", tgkill(getpid(), ids[1], 0));

  // Thread 2: affinity set from outside.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  printf("sched_setaffinity(thread 2, {0}): %d\n", sched_setaffinity(ids[2], sizeof one, &one));
  cpu_set_t none;
  CPU_ZERO(&none);
  errno = 0;
  int bad = sched_setaffinity(ids[2], sizeof none, &none);
  printf("sched_setaffinity(thread 2, {}): %d %s\n", bad, bad ? strerror(errno) : "");
  cpu_set_t got;
  CPU_ZERO(&got);
  sched_getaffinity(ids[2], sizeof got, &got);
  printf("sched_getaffinity(thread 2): %d CPU(s)\n", CPU_COUNT(&got));
  CPU_ZERO(&got);
  sched_getaffinity(0, sizeof got, &got);
  cpu_set_t all;
  CPU_ZERO(&all);
  sched_getaffinity(getpid(), sizeof all, &all);
  printf("main's own affinity unchanged: %s\n", CPU_EQUAL(&got, &all) && CPU_COUNT(&all) >= 1 ? "yes" : "no");

  // Thread 3: nice value.
  printf("setpriority(thread 3, 5): %d\n", setpriority(PRIO_PROCESS, ids[3], 5));
  printf("getpriority(thread 3): %d, main: %d\n", getpriority(PRIO_PROCESS, ids[3]), getpriority(PRIO_PROCESS, 0));

  // Thread 4: I/O priority (best effort, level 6).
  long io = syscall(SYS_ioprio_set, 1, ids[4], (2 << 13) | 6);
  long iog = syscall(SYS_ioprio_get, 1, ids[4]);
  printf("ioprio_set(thread 4, BE/6): %ld, get: class %ld level %ld\n", io, iog >> 13, iog & 7);
  errno = 0;
  long iobad = syscall(SYS_ioprio_set, 1, ids[4], (7 << 13) | 1);
  printf("ioprio_set(thread 4, bad class): %ld %s\n", iobad, iobad ? strerror(errno) : "");

  // Thread 5: scheduling policy set from outside, by id.
  struct sched_param sp = {0};
  printf("sched_getscheduler(thread 5): %s\n", sched_getscheduler(ids[5]) == SCHED_OTHER ? "SCHED_OTHER" : "other");
  printf("sched_setscheduler(thread 5, SCHED_BATCH): %d\n", sched_setscheduler(ids[5], SCHED_BATCH, &sp));
  printf("sched_getscheduler(thread 5): %s, main: %s\n",
         sched_getscheduler(ids[5]) == SCHED_BATCH ? "SCHED_BATCH" : "other",
         sched_getscheduler(0) == SCHED_OTHER ? "SCHED_OTHER" : "other");

  atomic_store(&go, 1);
  while (atomic_load(&done_checks) < kThreads) sleep_ms(1);
  for (int i = 0; i < kThreads; ++i) fputs(report[i], stdout);
  int elsewhere = 0;
  for (int k = 0; k < atomic_load(&handler_count) && k < 64; ++k) elsewhere += handler_ran_in[k] != ids[1];
  printf("handlers run in another thread: %d; queued value %d\n", elsewhere, atomic_load(&queued_value));
  atomic_store(&go, 2);
  for (int i = 0; i < kThreads; ++i) pthread_join(t[i], NULL);

  // An id that ended.
  pid_t gone = 0;
  pthread_t s;
  pthread_create(&s, NULL, short_lived, &gone);
  pthread_join(s, NULL);
  sleep_ms(100);  // the kernel may still hold the ended task for a moment after the join
  errno = 0;
  int rg = tgkill(getpid(), gone, SIGUSR1);
  printf("tgkill to an ended thread: %d %s\n", rg, rg ? strerror(errno) : "");
  errno = 0;
  int pg = getpriority(PRIO_PROCESS, (id_t)gone);
  printf("getpriority of an ended thread: %d %s\n", pg, errno ? strerror(errno) : "");
  return 0;
}
