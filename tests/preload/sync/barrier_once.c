/* Barriers: exactly one PTHREAD_BARRIER_SERIAL_THREAD per round, rounds
 * that complete only when every thread arrived, init EINVAL. pthread_once:
 * concurrent callers while the init routine sleeps (all return after it
 * finished, it ran once), a once object used in a constructor, and an init
 * routine that itself waits on a mutex and a condition. */
#include "common.h"

#define THREADS 8
#define ROUNDS 200

static pthread_barrier_t barrier;
static int arrivals[ROUNDS];
static int serial_count, early_leavers;
static pthread_mutex_t stats = PTHREAD_MUTEX_INITIALIZER;

static void* barrier_worker(void* unused) {
  (void)unused;
  for (int r = 0; r < ROUNDS; r++) {
    __atomic_fetch_add(&arrivals[r], 1, __ATOMIC_ACQ_REL);
    int rc = pthread_barrier_wait(&barrier);
    int seen = __atomic_load_n(&arrivals[r], __ATOMIC_ACQUIRE);
    pthread_mutex_lock(&stats);
    if (rc == PTHREAD_BARRIER_SERIAL_THREAD) serial_count++;
    else if (rc != 0) printf("barrier_wait returned %d\n", rc);
    if (seen != THREADS) early_leavers++;
    pthread_mutex_unlock(&stats);
  }
  return NULL;
}

static void barriers(void) {
  pthread_barrier_t b;
  CHECK("barrier_init count 0", pthread_barrier_init(&b, NULL, 0), EINVAL);
  CHECK("barrier_init count 1", pthread_barrier_init(&b, NULL, 1), 0);
  CHECK("count-1 barrier: serial thread", pthread_barrier_wait(&b) == PTHREAD_BARRIER_SERIAL_THREAD ? 0 : -1, 0);
  CHECK("barrier_destroy", pthread_barrier_destroy(&b), 0);
  pthread_barrier_init(&barrier, NULL, THREADS);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, barrier_worker, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  printf("barrier: %d rounds, %d serial threads, %d left early\n", ROUNDS, serial_count, early_leavers);
  pthread_barrier_destroy(&barrier);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_runs, init_finished, saw_unfinished;
static void slow_init(void) {
  init_runs++;
  usleep(100000);  /* callers arriving meanwhile must wait */
  init_finished = 1;
}
static void* once_caller(void* unused) {
  (void)unused;
  pthread_once(&once, slow_init);
  if (!init_finished) __atomic_fetch_add(&saw_unfinished, 1, __ATOMIC_RELAXED);
  return NULL;
}

static pthread_once_t ctor_once = PTHREAD_ONCE_INIT;
static int ctor_once_runs;
static void count_ctor_once(void) { ctor_once_runs++; }
__attribute__((constructor)) static void use_once_early(void) { pthread_once(&ctor_once, count_ctor_once); }

/* An init routine that blocks on a condition another thread signals. */
static pthread_once_t waiting_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t wo_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wo_cond = PTHREAD_COND_INITIALIZER;
static int wo_ready;
static void waiting_init(void) {
  pthread_mutex_lock(&wo_mutex);
  while (!wo_ready) pthread_cond_wait(&wo_cond, &wo_mutex);
  pthread_mutex_unlock(&wo_mutex);
}
static void* waiting_once_caller(void* unused) {
  (void)unused;
  pthread_once(&waiting_once, waiting_init);
  return NULL;
}

static void onces(void) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, once_caller, NULL);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  printf("once: init ran %d time(s), %d caller(s) returned before it finished\n", init_runs, saw_unfinished);
  pthread_once(&ctor_once, count_ctor_once);
  printf("once used in a constructor: ran %d time(s)\n", ctor_once_runs);
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, waiting_once_caller, NULL);
  usleep(20000);
  pthread_mutex_lock(&wo_mutex);
  wo_ready = 1;
  pthread_cond_broadcast(&wo_cond);
  pthread_mutex_unlock(&wo_mutex);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  printf("once whose routine waits on a condition: done (value %d)\n", waiting_once);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  barriers();
  onces();
  return 0;
}
