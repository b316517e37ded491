/* Condition variables: timed waits with a CLOCK_MONOTONIC condattr and
 * with the default realtime clock, clockwait on both clocks, glibc's EINVAL
 * and EPERM cases, signal versus broadcast (tokens, so the counts are exact
 * whatever the scheduling), a statically initialised pair, a pair set up in
 * a constructor, and destroying a condition right after broadcast. */
#include "common.h"

static pthread_mutex_t s_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s_cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t ctor_mutex;
static pthread_cond_t ctor_cond;

__attribute__((constructor)) static void make_ctor_pair(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&ctor_cond, &a);
  pthread_condattr_destroy(&a);
  pthread_mutex_init(&ctor_mutex, NULL);
}

struct timed_case {
  pthread_cond_t* c;
  pthread_mutex_t* m;
  clockid_t clock;  /* for clockwait; -1: timedwait */
  clockid_t measure;
};

static int try_lock(void* m) { return pthread_mutex_trylock(m); }

static int timed_wait_case(void* p) {
  struct timed_case* tc = p;
  pthread_mutex_lock(tc->m);
  struct timespec ts = in_ms(tc->measure, 40);
  int r = tc->clock == (clockid_t)-1 ? pthread_cond_timedwait(tc->c, tc->m, &ts)
                                     : pthread_cond_clockwait(tc->c, tc->m, tc->clock, &ts);
  if (r == ETIMEDOUT && !reached(tc->measure, &ts)) r = -100;  /* returned early */
  /* The mutex must be held again, whatever the result. */
  if (in_thread(try_lock, tc->m) != EBUSY) r = -200;
  pthread_mutex_unlock(tc->m);
  return r;
}

static void timeouts(void) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_t mono;
  pthread_cond_init(&mono, &a);
  clockid_t got;
  pthread_condattr_getclock(&a, &got);
  printf("condattr clock is monotonic: %d\n", got == CLOCK_MONOTONIC);
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  struct timed_case cases[] = {
      {&mono, &m, (clockid_t)-1, CLOCK_MONOTONIC},
      {&s_cond, &s_mutex, (clockid_t)-1, CLOCK_REALTIME},
      {&s_cond, &s_mutex, CLOCK_MONOTONIC, CLOCK_MONOTONIC},
      {&mono, &m, CLOCK_REALTIME, CLOCK_REALTIME},
      {&ctor_cond, &ctor_mutex, (clockid_t)-1, CLOCK_MONOTONIC},
  };
  const char* names[] = {"timedwait, monotonic condattr", "timedwait, static realtime cond",
                         "clockwait monotonic, realtime cond", "clockwait realtime, monotonic cond",
                         "timedwait, constructor-made monotonic cond"};
  for (int i = 0; i < 5; i++) CHECK(names[i], in_thread(timed_wait_case, &cases[i]), ETIMEDOUT);

  pthread_mutex_lock(&m);
  struct timespec bad = {0, -1};
  CHECK("timedwait: bad tv_nsec", pthread_cond_timedwait(&mono, &m, &bad), EINVAL);
  struct timespec ok = in_ms(CLOCK_MONOTONIC, 5);
  CHECK("clockwait: unsupported clock", pthread_cond_clockwait(&mono, &m, CLOCK_THREAD_CPUTIME_ID, &ok), EINVAL);
  struct timespec past = {-3, 0};
  CHECK("timedwait: tv_sec < 0", pthread_cond_timedwait(&mono, &m, &past), ETIMEDOUT);
  CHECK("mutex held after those", in_thread(try_lock, &m), EBUSY);
  pthread_mutex_unlock(&m);
  CHECK("destroy", pthread_cond_destroy(&mono), 0);

  pthread_mutex_t ec = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  CHECK("wait with an unlocked errorcheck mutex", pthread_cond_wait(&mono, &ec), EPERM);
}

/* Signal versus broadcast with tokens. */
#define WAITERS 6
static pthread_mutex_t tok_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tok_cond = PTHREAD_COND_INITIALIZER;
static int tokens, waiting, consumed;

static void* token_waiter(void* unused) {
  (void)unused;
  pthread_mutex_lock(&tok_mutex);
  waiting++;
  while (tokens == 0) pthread_cond_wait(&tok_cond, &tok_mutex);
  tokens--;
  consumed++;
  pthread_mutex_unlock(&tok_mutex);
  return NULL;
}

static int read_consumed(void) {
  pthread_mutex_lock(&tok_mutex);
  int c = consumed;
  pthread_mutex_unlock(&tok_mutex);
  return c;
}

static void signal_broadcast(void) {
  pthread_t t[WAITERS];
  for (int i = 0; i < WAITERS; i++) pthread_create(&t[i], NULL, token_waiter, NULL);
  for (;;) {
    pthread_mutex_lock(&tok_mutex);
    int w = waiting;
    pthread_mutex_unlock(&tok_mutex);
    if (w == WAITERS) break;
    usleep(1000);
  }
  pthread_mutex_lock(&tok_mutex);
  tokens = 1;
  pthread_cond_signal(&tok_cond);
  pthread_mutex_unlock(&tok_mutex);
  while (read_consumed() < 1) usleep(1000);
  printf("after signal with 1 token: consumed %d\n", read_consumed());
  pthread_mutex_lock(&tok_mutex);
  tokens = 2;
  pthread_cond_signal(&tok_cond);
  pthread_cond_signal(&tok_cond);
  pthread_mutex_unlock(&tok_mutex);
  while (read_consumed() < 3) usleep(1000);
  printf("after 2 signals with 2 tokens: consumed %d\n", read_consumed());
  pthread_mutex_lock(&tok_mutex);
  tokens = WAITERS - 3;
  pthread_cond_broadcast(&tok_cond);
  pthread_mutex_unlock(&tok_mutex);
  for (int i = 0; i < WAITERS; i++) pthread_join(t[i], NULL);
  printf("after broadcast: consumed %d, tokens left %d\n", consumed, tokens);
}

/* POSIX's own example: destroy right after waking everyone. */
struct dyn {
  pthread_mutex_t m;
  pthread_cond_t c;
  int go, arrived;
};
static void* dyn_waiter(void* p) {
  struct dyn* d = p;
  pthread_mutex_lock(&d->m);
  d->arrived++;
  while (!d->go) pthread_cond_wait(&d->c, &d->m);
  pthread_mutex_unlock(&d->m);
  return NULL;
}

static void destroy_after_broadcast(void) {
  int ok = 0;
  for (int round = 0; round < 50; round++) {
    struct dyn* d = calloc(1, sizeof *d);
    pthread_mutex_init(&d->m, NULL);
    pthread_cond_init(&d->c, NULL);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, dyn_waiter, d);
    for (;;) {
      pthread_mutex_lock(&d->m);
      if (d->arrived == 3) break;
      pthread_mutex_unlock(&d->m);
      usleep(500);
    }
    d->go = 1;
    pthread_cond_broadcast(&d->c);
    ok += pthread_cond_destroy(&d->c) == 0;
    pthread_mutex_unlock(&d->m);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    ok += pthread_mutex_destroy(&d->m) == 0;
    free(d);
  }
  printf("destroy right after broadcast: %d of 100 calls returned 0\n", ok);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  timeouts();
  signal_broadcast();
  destroy_after_broadcast();
  return 0;
}
