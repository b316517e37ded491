// Scheduling attributes of threads read back as glibc gives them, with the
// kernel's errors: policies and priorities set at creation
// (PTHREAD_EXPLICIT_SCHED) or inherited, pthread_setschedparam,
// pthread_getschedparam, pthread_setschedprio, pthread_getattr_np; invalid
// policies and priorities (EINVAL); as root and then, when the test runs as
// root, as an unprivileged user (uid 65534; real-time policies need
// RLIMIT_RTPRIO: EPERM).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_barrier_t gate;

static void show(const char* what, pthread_t t) {
  int pol = -1;
  struct sched_param sp = {0};
  int r = pthread_getschedparam(t, &pol, &sp);
  printf("  %s: %s policy %d priority %d\n", what, strerror(r), pol, sp.sched_priority);
}

static char seen[256];  // what the new thread saw of itself, printed by main

static void* worker(void* arg) {
  (void)arg;
  int pol = -1, apol = -1;
  struct sched_param sp = {0}, asp = {0};
  int r = pthread_getschedparam(pthread_self(), &pol, &sp);
  pthread_attr_t a;
  pthread_getattr_np(pthread_self(), &a);
  pthread_attr_getschedpolicy(&a, &apol);
  pthread_attr_getschedparam(&a, &asp);
  pthread_attr_destroy(&a);
  snprintf(seen, sizeof seen, "  self: %s policy %d priority %d; getattr_np: policy %d priority %d\n", strerror(r),
           pol, sp.sched_priority, apol, asp.sched_priority);
  pthread_barrier_wait(&gate);
  return NULL;
}

static void create_with(const char* label, int inherit, int policy, int prio) {
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setinheritsched(&a, inherit);
  pthread_attr_setschedpolicy(&a, policy);
  struct sched_param sp = {.sched_priority = prio};
  int pr = pthread_attr_setschedparam(&a, &sp);
  pthread_t t;
  int r = pthread_create(&t, &a, worker, NULL);
  printf("create %s (attr param: %s): %s\n", label, strerror(pr), strerror(r));
  pthread_attr_destroy(&a);
  if (r == 0) {
    pthread_barrier_wait(&gate);
    pthread_join(t, NULL);
    fputs(seen, stdout);
  }
}

static void* target(void* arg) {
  (void)arg;
  pthread_barrier_wait(&gate);
  return NULL;
}

static void set_on(pthread_t t, const char* label, int policy, int prio) {
  struct sched_param sp = {.sched_priority = prio};
  printf("setschedparam %s: %s\n", label, strerror(pthread_setschedparam(t, policy, &sp)));
  show("after", t);
}

// sched_setscheduler & co. with pid 0 or the caller's gettid() act on the
// calling thread only.
static void* self_sched(void* arg) {
  (void)arg;
  struct sched_param sp = {.sched_priority = 4};
  int a = sched_setscheduler(0, SCHED_FIFO, &sp);
  int ea = a ? errno : 0;
  int pol = sched_getscheduler(0);
  sp.sched_priority = 9;
  int b = sched_setparam((pid_t)syscall(SYS_gettid), &sp);
  int eb = b ? errno : 0;
  struct sched_param got = {0};
  sched_getparam(0, &got);
  sp.sched_priority = 200;
  int c = sched_setparam(0, &sp);
  int ec = c ? errno : 0;
  int p2 = -1;
  struct sched_param sp2 = {0};
  pthread_getschedparam(pthread_self(), &p2, &sp2);
  snprintf(seen, sizeof seen,
           "  sched_setscheduler(0, FIFO 4): %d %s; policy %d; sched_setparam(gettid, 9): %d %s; priority %d; "
           "priority 200: %d %s; pthread_getschedparam: %d %d\n",
           a, strerror(ea), pol, b, strerror(eb), got.sched_priority, c, strerror(ec), p2, sp2.sched_priority);
  return NULL;
}

static void round_of_checks(void) {
  pthread_t s;
  pthread_create(&s, NULL, self_sched, NULL);
  pthread_join(s, NULL);
  fputs(seen, stdout);
  show("main after a thread changed itself", pthread_self());

  create_with("inherit", PTHREAD_INHERIT_SCHED, SCHED_FIFO, 10);
  create_with("explicit OTHER", PTHREAD_EXPLICIT_SCHED, SCHED_OTHER, 0);
  create_with("explicit BATCH", PTHREAD_EXPLICIT_SCHED, SCHED_BATCH, 0);
  create_with("explicit FIFO 10", PTHREAD_EXPLICIT_SCHED, SCHED_FIFO, 10);
  create_with("explicit RR 3", PTHREAD_EXPLICIT_SCHED, SCHED_RR, 3);

  pthread_t t;
  pthread_create(&t, NULL, target, NULL);
  show("new thread", t);
  set_on(t, "FIFO 5", SCHED_FIFO, 5);
  set_on(t, "RR 99", SCHED_RR, 99);
  set_on(t, "FIFO 100", SCHED_FIFO, 100);
  set_on(t, "FIFO 0", SCHED_FIFO, 0);
  set_on(t, "OTHER 5", SCHED_OTHER, 5);
  set_on(t, "policy 77", 77, 0);
  printf("setschedprio 7: %s\n", strerror(pthread_setschedprio(t, 7)));
  show("after", t);
  set_on(t, "IDLE 0", SCHED_IDLE, 0);
  set_on(t, "OTHER 0", SCHED_OTHER, 0);
  printf("setschedprio 3 (OTHER): %s\n", strerror(pthread_setschedprio(t, 3)));
  set_on(t, "BATCH 0", SCHED_BATCH, 0);
  show("main", pthread_self());
  // main's own parameters, changed and read back (also through getattr_np).
  set_on(pthread_self(), "main RR 2", SCHED_RR, 2);
  pthread_attr_t ma;
  int mpol = -1;
  struct sched_param msp = {0};
  pthread_getattr_np(pthread_self(), &ma);
  pthread_attr_getschedpolicy(&ma, &mpol);
  pthread_attr_getschedparam(&ma, &msp);
  pthread_attr_destroy(&ma);
  printf("  main getattr_np: policy %d priority %d\n", mpol, msp.sched_priority);
  set_on(pthread_self(), "main OTHER 0", SCHED_OTHER, 0);
  pthread_barrier_wait(&gate);
  pthread_join(t, NULL);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_barrier_init(&gate, NULL, 2);
  printf("as %s:\n", geteuid() == 0 ? "root" : "a user");
  round_of_checks();
  if (getuid() == 0) {
    // Unprivileged, keeping a saved uid of 0 to come back (so the process can
    // write what it must at exit): the effective capabilities are dropped.
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_RTPRIO, &rl);
    if (setresgid(65534, 65534, 0) != 0 || setresuid(65534, 65534, 0) != 0) {
      perror("setresuid");
      return 1;
    }
    printf("as uid 65534, RLIMIT_RTPRIO 0:\n");
    round_of_checks();
    if (setresuid(-1, 0, -1) != 0 || setresgid(-1, 0, -1) != 0) return 1;
  }
  return 0;
}
