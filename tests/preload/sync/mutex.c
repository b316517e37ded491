/* Mutexes: every type (static initialisers, pthread_mutex_init, and one
 * initialised in a constructor before any thread exists), errorcheck
 * EDEADLK/EPERM, recursive depth, trylock EBUSY, timedlock/clocklock
 * timeouts on both clocks and their EINVAL cases, destroy EBUSY, a
 * contended priority-inheritance mutex, a blocked locker woken by unlock,
 * and counting under contention. (Robust mutexes: robust.c.) */
#include "common.h"

static pthread_mutex_t s_normal = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t s_recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t ctor_mutex;
static int ctor_result = -1;

__attribute__((constructor)) static void make_ctor_mutex(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  ctor_result = pthread_mutex_init(&ctor_mutex, &a);
  pthread_mutexattr_destroy(&a);
  /* Used once before main. */
  pthread_mutex_lock(&ctor_mutex);
  pthread_mutex_unlock(&ctor_mutex);
}

static int try_lock(void* m) { return pthread_mutex_trylock(m); }
static int try_lock_and_unlock(void* m) {
  int r = pthread_mutex_trylock(m);
  if (r == 0) pthread_mutex_unlock(m);
  return r;
}
static int unlock_it(void* m) { return pthread_mutex_unlock(m); }
static int timed_rt_50ms(void* m) {
  struct timespec ts = in_ms(CLOCK_REALTIME, 50);
  int r = pthread_mutex_timedlock(m, &ts);
  if (r == ETIMEDOUT && !reached(CLOCK_REALTIME, &ts)) return -100;  /* early */
  return r;
}
static int clock_mono_50ms(void* m) {
  struct timespec ts = in_ms(CLOCK_MONOTONIC, 50);
  int r = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
  if (r == ETIMEDOUT && !reached(CLOCK_MONOTONIC, &ts)) return -100;
  return r;
}
static int clock_rt_50ms(void* m) {
  struct timespec ts = in_ms(CLOCK_REALTIME, 50);
  return pthread_mutex_clocklock(m, CLOCK_REALTIME, &ts);
}
static int timed_bad_nsec(void* m) {
  struct timespec ts = {0, 1000000000};
  return pthread_mutex_timedlock(m, &ts);
}
static int timed_past(void* m) {
  struct timespec ts = {-1, 0};
  return pthread_mutex_timedlock(m, &ts);
}
static int ctor_mutex_use(void* unused) {
  (void)unused;
  int r1 = pthread_mutex_lock(&ctor_mutex);
  int r2 = pthread_mutex_lock(&ctor_mutex);
  int r3 = pthread_mutex_unlock(&ctor_mutex);
  return r1 == 0 && r2 == EDEADLK && r3 == 0 ? 0 : -1;
}

static void types(void) {
  pthread_mutex_t* all[] = {&s_normal, &s_recursive, &s_errorcheck, &s_adaptive};
  const char* names[] = {"normal", "recursive", "errorcheck", "adaptive"};
  for (int i = 0; i < 4; i++) {
    char what[64];
    snprintf(what, sizeof what, "%s: lock", names[i]);
    CHECK(what, pthread_mutex_lock(all[i]), 0);
    snprintf(what, sizeof what, "%s: trylock from another thread", names[i]);
    CHECK(what, in_thread(try_lock, all[i]), EBUSY);
    snprintf(what, sizeof what, "%s: unlock", names[i]);
    CHECK(what, pthread_mutex_unlock(all[i]), 0);
    snprintf(what, sizeof what, "%s: trylock from another thread, free", names[i]);
    CHECK(what, in_thread(try_lock_and_unlock, all[i]), 0);
  }
  CHECK("constructor-initialised errorcheck: init", ctor_result, 0);
  CHECK("constructor-initialised errorcheck: use in a thread", in_thread(ctor_mutex_use, NULL), 0);
}

static void errorcheck(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t m;
  CHECK("errorcheck: init", pthread_mutex_init(&m, &a), 0);
  CHECK("errorcheck: unlock while unlocked", pthread_mutex_unlock(&m), EPERM);
  CHECK("errorcheck: lock", pthread_mutex_lock(&m), 0);
  CHECK("errorcheck: lock again", pthread_mutex_lock(&m), EDEADLK);
  CHECK("errorcheck: trylock by owner", pthread_mutex_trylock(&m), EBUSY);
  struct timespec ts = in_ms(CLOCK_REALTIME, 1000);
  CHECK("errorcheck: timedlock by owner", pthread_mutex_timedlock(&m, &ts), EDEADLK);
  CHECK("errorcheck: unlock by another thread", in_thread(unlock_it, &m), EPERM);
  CHECK("errorcheck: destroy while locked", pthread_mutex_destroy(&m), EBUSY);
  CHECK("errorcheck: unlock", pthread_mutex_unlock(&m), 0);
  CHECK("errorcheck: unlock again", pthread_mutex_unlock(&m), EPERM);
  CHECK("errorcheck: destroy", pthread_mutex_destroy(&m), 0);
}

static void recursive(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_t m;
  pthread_mutex_init(&m, &a);
  int depth = 0;
  for (int i = 0; i < 10; i++) depth += (i % 2 ? pthread_mutex_trylock(&m) : pthread_mutex_lock(&m)) == 0;
  printf("recursive: depth reached %d\n", depth);
  CHECK("recursive: unlock by another thread", in_thread(unlock_it, &m), EPERM);
  int still_held = 0;
  for (int i = 0; i < 10; i++) {
    pthread_mutex_unlock(&m);
    still_held += in_thread(try_lock_and_unlock, &m) == EBUSY;
  }
  printf("recursive: held after %d of 10 unlocks\n", still_held);
  CHECK("recursive: unlock once too often", pthread_mutex_unlock(&m), EPERM);
}

static void timeouts(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  CHECK("timedlock: bad tv_nsec, uncontended", timed_bad_nsec(&m), 0);
  pthread_mutex_unlock(&m);
  struct timespec ts = in_ms(CLOCK_MONOTONIC, 10);
  CHECK("clocklock: unsupported clock", pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &ts), EINVAL);
  pthread_mutex_lock(&m);
  CHECK("timedlock (realtime) while held", in_thread(timed_rt_50ms, &m), ETIMEDOUT);
  CHECK("clocklock (monotonic) while held", in_thread(clock_mono_50ms, &m), ETIMEDOUT);
  CHECK("clocklock (realtime) while held", in_thread(clock_rt_50ms, &m), ETIMEDOUT);
  CHECK("timedlock: bad tv_nsec while held", in_thread(timed_bad_nsec, &m), EINVAL);
  CHECK("timedlock: tv_sec < 0 while held", in_thread(timed_past, &m), ETIMEDOUT);
  CHECK("normal: destroy while locked", pthread_mutex_destroy(&m), EBUSY);
  pthread_mutex_unlock(&m);
}

static pthread_mutex_t pi_mutex;
static int pi_counter;
static void* pi_worker(void* unused) {
  (void)unused;
  for (int i = 0; i < 2000; i++) {
    if (pthread_mutex_lock(&pi_mutex) != 0) abort();
    pi_counter++;
    pthread_mutex_unlock(&pi_mutex);
  }
  return NULL;
}

static int unlock_pi(void* unused) {
  (void)unused;
  return pthread_mutex_unlock(&pi_mutex);
}

static void priority_inheritance(void) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
  CHECK("PI: init", pthread_mutex_init(&pi_mutex, &a), 0);
  CHECK("PI: lock", pthread_mutex_lock(&pi_mutex), 0);
  CHECK("PI: unlock by another thread", in_thread(unlock_pi, NULL), EPERM);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, pi_worker, NULL);
  usleep(10000);  /* the workers block on the held mutex */
  CHECK("PI: unlock while contended", pthread_mutex_unlock(&pi_mutex), 0);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  printf("PI: counter %d\n", pi_counter);
  CHECK("PI: destroy", pthread_mutex_destroy(&pi_mutex), 0);
}

static pthread_mutex_t handoff = PTHREAD_MUTEX_INITIALIZER;
static volatile int handoff_state;
static void* blocked_locker(void* unused) {
  (void)unused;
  pthread_mutex_lock(&handoff);
  int seen = handoff_state;
  pthread_mutex_unlock(&handoff);
  return (void*)(long)seen;
}

static void blocked_waiter(void) {
  pthread_mutex_lock(&handoff);
  pthread_t t;
  pthread_create(&t, NULL, blocked_locker, NULL);
  usleep(20000);  /* the locker blocks meanwhile (or not yet: same result) */
  handoff_state = 42;
  pthread_mutex_unlock(&handoff);
  void* seen;
  pthread_join(t, &seen);
  printf("blocked locker saw the state set before unlock: %ld\n", (long)seen);
}

#define THREADS 8
#define ITERS 20000
static pthread_mutex_t* counted[4] = {&s_normal, &s_recursive, &s_errorcheck, &s_adaptive};
static long counters[4];
static void* count_worker(void* arg) {
  long id = (long)arg;
  for (int i = 0; i < ITERS; i++) {
    int k = (int)((i + id) % 4);
    if (i % 3 == 0) {
      struct timespec ts = in_ms(CLOCK_MONOTONIC, 60000);
      if (pthread_mutex_clocklock(counted[k], CLOCK_MONOTONIC, &ts) != 0) abort();
    } else if (i % 3 == 1) {
      while (pthread_mutex_trylock(counted[k]) == EBUSY) sched_yield();
    } else {
      pthread_mutex_lock(counted[k]);
    }
    counters[k]++;
    pthread_mutex_unlock(counted[k]);
  }
  return NULL;
}

static void contention(void) {
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, count_worker, (void*)i);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  printf("contention: counters %ld %ld %ld %ld (expected %d each)\n", counters[0], counters[1], counters[2],
         counters[3], THREADS * ITERS / 4);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  types();
  errorcheck();
  recursive();
  timeouts();
  priority_inheritance();
  blocked_waiter();
  contention();
  return 0;
}
