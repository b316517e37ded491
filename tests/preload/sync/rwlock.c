/* Reader-writer locks: shared readers, exclusive writers, try variants,
 * EDEADLK, the timed and clock variants on both clocks and their EINVAL
 * cases, the writer-preferring non-recursive kind, and a counting stress
 * test with readers checking that no writer is inside. */
#include "common.h"

static pthread_rwlock_t s_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_rwlock_t s_writer_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

static int tryrd(void* l) {
  int r = pthread_rwlock_tryrdlock(l);
  if (r == 0) pthread_rwlock_unlock(l);
  return r;
}
static int trywr(void* l) {
  int r = pthread_rwlock_trywrlock(l);
  if (r == 0) pthread_rwlock_unlock(l);
  return r;
}
static int timedrd(void* l) {
  struct timespec ts = in_ms(CLOCK_REALTIME, 40);
  int r = pthread_rwlock_timedrdlock(l, &ts);
  if (r == ETIMEDOUT && !reached(CLOCK_REALTIME, &ts)) return -100;
  return r;
}
static int timedwr(void* l) {
  struct timespec ts = in_ms(CLOCK_REALTIME, 40);
  int r = pthread_rwlock_timedwrlock(l, &ts);
  if (r == ETIMEDOUT && !reached(CLOCK_REALTIME, &ts)) return -100;
  return r;
}
static int clockrd_mono(void* l) {
  struct timespec ts = in_ms(CLOCK_MONOTONIC, 40);
  int r = pthread_rwlock_clockrdlock(l, CLOCK_MONOTONIC, &ts);
  if (r == ETIMEDOUT && !reached(CLOCK_MONOTONIC, &ts)) return -100;
  return r;
}
static int clockwr_mono(void* l) {
  struct timespec ts = in_ms(CLOCK_MONOTONIC, 40);
  int r = pthread_rwlock_clockwrlock(l, CLOCK_MONOTONIC, &ts);
  if (r == ETIMEDOUT && !reached(CLOCK_MONOTONIC, &ts)) return -100;
  return r;
}

static void basics(void) {
  CHECK("rdlock", pthread_rwlock_rdlock(&s_lock), 0);
  CHECK("tryrdlock from another thread", in_thread(tryrd, &s_lock), 0);
  CHECK("trywrlock from another thread", in_thread(trywr, &s_lock), EBUSY);
  CHECK("timedwrlock (realtime) while read-locked", in_thread(timedwr, &s_lock), ETIMEDOUT);
  CHECK("clockwrlock (monotonic) while read-locked", in_thread(clockwr_mono, &s_lock), ETIMEDOUT);
  CHECK("unlock", pthread_rwlock_unlock(&s_lock), 0);
  CHECK("wrlock", pthread_rwlock_wrlock(&s_lock), 0);
  CHECK("wrlock again by the writer", pthread_rwlock_wrlock(&s_lock), EDEADLK);
  CHECK("rdlock by the writer", pthread_rwlock_rdlock(&s_lock), EDEADLK);
  CHECK("trywrlock by the writer", pthread_rwlock_trywrlock(&s_lock), EBUSY);
  CHECK("tryrdlock from another thread", in_thread(tryrd, &s_lock), EBUSY);
  CHECK("timedrdlock (realtime) while write-locked", in_thread(timedrd, &s_lock), ETIMEDOUT);
  CHECK("clockrdlock (monotonic) while write-locked", in_thread(clockrd_mono, &s_lock), ETIMEDOUT);
  CHECK("unlock", pthread_rwlock_unlock(&s_lock), 0);
  struct timespec bad = {0, 1000000000};
  CHECK("timedrdlock: bad tv_nsec on a free lock", pthread_rwlock_timedrdlock(&s_lock, &bad), EINVAL);
  CHECK("timedwrlock: bad tv_nsec on a free lock", pthread_rwlock_timedwrlock(&s_lock, &bad), EINVAL);
  struct timespec ok = in_ms(CLOCK_MONOTONIC, 10);
  CHECK("clockrdlock: unsupported clock", pthread_rwlock_clockrdlock(&s_lock, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);
  CHECK("destroy", pthread_rwlock_destroy(&s_lock), 0);
}

/* Writer preference (non-recursive kind): a reader arriving while a writer
 * waits goes after that writer. */
static char order[8];
static int order_len;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static void note(char c) {
  pthread_mutex_lock(&order_lock);
  order[order_len++] = c;
  pthread_mutex_unlock(&order_lock);
}
static void* pref_writer(void* unused) {
  (void)unused;
  pthread_rwlock_wrlock(&s_writer_lock);
  note('W');
  pthread_rwlock_unlock(&s_writer_lock);
  return NULL;
}
static void* pref_reader(void* unused) {
  (void)unused;
  pthread_rwlock_rdlock(&s_writer_lock);
  note('R');
  pthread_rwlock_unlock(&s_writer_lock);
  return NULL;
}

static void writer_preference(void) {
  pthread_rwlock_rdlock(&s_writer_lock);
  pthread_t w, r;
  pthread_create(&w, NULL, pref_writer, NULL);
  /* Until the writer is waiting, a second reader still gets in. */
  while (in_thread(tryrd, &s_writer_lock) == 0) usleep(1000);
  CHECK("non-recursive kind: tryrdlock while a writer waits", in_thread(tryrd, &s_writer_lock), EBUSY);
  pthread_create(&r, NULL, pref_reader, NULL);
  usleep(20000);
  note('u');
  pthread_rwlock_unlock(&s_writer_lock);
  pthread_join(w, NULL);
  pthread_join(r, NULL);
  order[order_len] = 0;
  printf("non-recursive kind: order %s\n", order);
}

#define THREADS 8
#define ITERS 5000
static pthread_rwlock_t stress_lock = PTHREAD_RWLOCK_INITIALIZER;
static long value;
static volatile int writers_inside;
static int violations;
static void* stress(void* arg) {
  long id = (long)arg;
  for (int i = 0; i < ITERS; i++) {
    if ((i + id) % 5 == 0) {
      pthread_rwlock_wrlock(&stress_lock);
      writers_inside++;
      value++;
      writers_inside--;
      pthread_rwlock_unlock(&stress_lock);
    } else {
      struct timespec ts = in_ms(CLOCK_MONOTONIC, 60000);
      if (pthread_rwlock_clockrdlock(&stress_lock, CLOCK_MONOTONIC, &ts) != 0) abort();
      if (writers_inside) __atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED);
      pthread_rwlock_unlock(&stress_lock);
    }
  }
  return NULL;
}

static void stress_test(void) {
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, stress, (void*)i);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  printf("stress: %ld writes, %d readers saw a writer\n", value, violations);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  basics();
  writer_preference();
  stress_test();
  return 0;
}
