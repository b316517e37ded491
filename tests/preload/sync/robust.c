/* Robust mutexes (glibc's, also under the preload): a thread that exits
 * holding one leaves it to the next locker with EOWNERDEAD; a waiter that
 * is blocked when the owner exits is woken with EOWNERDEAD; after
 * pthread_mutex_consistent the mutex works normally, and one unlocked
 * without it becomes ENOTRECOVERABLE. The waiter starts only once the
 * owner holds the mutex (it got 0 when it locked first under load). */
#include <semaphore.h>

#include "common.h"

static pthread_mutex_t m;

static void* die_holding(void* unused) {
  (void)unused;
  pthread_mutex_lock(&m);
  return NULL;
}

static sem_t held;

static void* hold_then_die(void* unused) {
  (void)unused;
  pthread_mutex_lock(&m);
  sem_post(&held);
  usleep(30000);  /* a waiter blocks meanwhile */
  return NULL;
}

/* Started once hold_then_die holds the mutex (it locks after the owner
 * died at worst, which also gives EOWNERDEAD; never before it locked). */
static void* blocked_locker(void* unused) {
  (void)unused;
  int r = pthread_mutex_lock(&m);
  if (r == EOWNERDEAD) pthread_mutex_consistent(&m);
  pthread_mutex_unlock(&m);
  return (void*)(long)r;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  CHECK("init", pthread_mutex_init(&m, &a), 0);
  pthread_t t, w;
  pthread_create(&t, NULL, die_holding, NULL);
  pthread_join(t, NULL);
  CHECK("lock after the owner exited", pthread_mutex_lock(&m), EOWNERDEAD);
  CHECK("consistent", pthread_mutex_consistent(&m), 0);
  CHECK("lock again (errorcheck)", pthread_mutex_lock(&m), EDEADLK);
  CHECK("unlock", pthread_mutex_unlock(&m), 0);

  sem_init(&held, 0, 0);
  pthread_create(&t, NULL, hold_then_die, NULL);
  while (sem_wait(&held) != 0) continue;
  pthread_create(&w, NULL, blocked_locker, NULL);
  void* r;
  pthread_join(t, NULL);
  pthread_join(w, &r);
  CHECK("waiter blocked while the owner exited", (int)(long)r, EOWNERDEAD);

  pthread_create(&t, NULL, die_holding, NULL);
  pthread_join(t, NULL);
  CHECK("lock after the owner exited", pthread_mutex_lock(&m), EOWNERDEAD);
  CHECK("unlock without consistent", pthread_mutex_unlock(&m), 0);
  CHECK("lock: not recoverable", pthread_mutex_lock(&m), ENOTRECOVERABLE);
  return 0;
}
