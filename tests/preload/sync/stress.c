/* 2,000 threads contending on a few mutexes and condition variables, all
 * bounded: counting under four mutexes, a bounded producer/consumer queue
 * (signal and broadcast, timed and untimed waits), and a rendezvous where
 * all 2,000 wait on one condition for a single broadcast. Any lost wake-up
 * is a hang (the test's timeout). */
#include "common.h"

#define THREADS 2000
#define COUNT_ITERS 50
#define ITEMS_PER_PRODUCER 10
#define QUEUE_CAP 8

static pthread_mutex_t locks[4] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
                                   PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP};
static long counts[4];

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static int queue_len;
static long produced, consumed, consumed_sum;

static pthread_mutex_t rlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rcond = PTHREAD_COND_INITIALIZER;
static int arrived, released;
static long after_rendezvous;

static void* worker(void* arg) {
  long id = (long)arg;
  for (int i = 0; i < COUNT_ITERS; i++) {
    pthread_mutex_t* m = &locks[(id + i) % 4];
    if (pthread_mutex_lock(m) != 0) abort();
    counts[(id + i) % 4]++;
    pthread_mutex_unlock(m);
  }

  /* Half produce, half consume, the same number of items. */
  for (int i = 0; i < ITEMS_PER_PRODUCER; i++) {
    pthread_mutex_lock(&qlock);
    if (id % 2 == 0) {
      while (queue_len == QUEUE_CAP) {
        if (i % 2) {
          struct timespec ts = in_ms(CLOCK_REALTIME, 5);
          pthread_cond_timedwait(&not_full, &qlock, &ts);
        } else {
          pthread_cond_wait(&not_full, &qlock);
        }
      }
      queue_len++;
      produced++;
      if (i % 4 == 0) pthread_cond_broadcast(&not_empty);
      else pthread_cond_signal(&not_empty);
    } else {
      while (queue_len == 0) pthread_cond_wait(&not_empty, &qlock);
      queue_len--;
      consumed++;
      consumed_sum += i;
      pthread_cond_signal(&not_full);
    }
    pthread_mutex_unlock(&qlock);
  }

  /* Everyone meets; the last one broadcasts. */
  pthread_mutex_lock(&rlock);
  if (++arrived == THREADS) {
    released = 1;
    pthread_cond_broadcast(&rcond);
  }
  while (!released) pthread_cond_wait(&rcond, &rlock);
  after_rendezvous++;
  pthread_mutex_unlock(&rlock);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  static pthread_t t[THREADS];
  int created = 0;
  for (long i = 0; i < THREADS; i++) created += pthread_create(&t[i], &attr, worker, (void*)i) == 0;
  for (int i = 0; i < created; i++) pthread_join(t[i], NULL);
  printf("threads %d\n", created);
  printf("counts %ld %ld %ld %ld\n", counts[0], counts[1], counts[2], counts[3]);
  printf("produced %ld consumed %ld (sum %ld), left %d\n", produced, consumed, consumed_sum, queue_len);
  printf("after rendezvous %ld\n", after_rendezvous);
  return 0;
}
