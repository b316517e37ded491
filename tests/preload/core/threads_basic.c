// Thread lifecycle semantics: create/join results, per-thread errno and
// __thread data, pthread_self identity, detach, tryjoin/timedjoin, join
// errors, key destructors, pthread_exit with cleanup handlers, stack size.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static __thread int tls_value = 7;
static __thread char tls_buf[64];
static pthread_key_t key;
static int dtor_calls;
static pthread_mutex_t dtor_lock = PTHREAD_MUTEX_INITIALIZER;

static void key_dtor(void* v) {
  pthread_mutex_lock(&dtor_lock);
  dtor_calls += (int)(intptr_t)v;
  pthread_mutex_unlock(&dtor_lock);
}

static void* tls_worker(void* arg) {
  long id = (long)arg;
  if (tls_value != 7) return (void*)-1;  // fresh initial value in every thread
  tls_value = (int)id;
  snprintf(tls_buf, sizeof tls_buf, "thread-%ld", id);
  errno = (int)id + 100;
  pthread_setspecific(key, (void*)(intptr_t)(id + 1));
  usleep(2000 * (int)(8 - id));  // interleave: later threads finish first
  if (errno != (int)id + 100) return (void*)-2;
  if (tls_value != (int)id) return (void*)-3;
  char want[64];
  snprintf(want, sizeof want, "thread-%ld", id);
  if (strcmp(tls_buf, want) != 0) return (void*)-4;
  if ((intptr_t)pthread_getspecific(key) != id + 1) return (void*)-5;
  return (void*)(id * 3);
}

static void* self_worker(void* arg) {
  pthread_t* out = arg;
  *out = pthread_self();
  return NULL;
}

static void* sleeper(void* arg) {
  usleep((useconds_t)(intptr_t)arg);
  return (void*)42;
}

static int cleanup_ran;
static void cleanup(void* arg) { cleanup_ran += (int)(intptr_t)arg; }

static void* exiting(void* arg) {
  pthread_cleanup_push(cleanup, (void*)1);
  pthread_cleanup_push(cleanup, (void*)10);
  if (arg) pthread_exit((void*)99);
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

static int depth(int n) {
  volatile char frame[16 * 1024];
  frame[0] = (char)n;
  return n == 0 ? frame[0] : depth(n - 1) + frame[0];
}

static void* deep(void* arg) { return (void*)(intptr_t)depth((int)(intptr_t)arg); }

static const char* name(int e) {
  switch (e) {
    case 0: return "0";
    case EBUSY: return "EBUSY";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case EDEADLK: return "EDEADLK";
    case ESRCH: return "ESRCH";
    default: return "other";
  }
}

int main(void) {
  pthread_key_create(&key, key_dtor);
  pthread_t t[8];
  for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, tls_worker, (void*)i);
  for (int i = 0; i < 8; i++) {
    void* r;
    int e = pthread_join(t[i], &r);
    printf("join %d: %s result %ld\n", i, name(e), (long)r);
  }
  printf("key destructors sum %d (want 36)\n", dtor_calls);
  printf("main tls %d errno-clean %d\n", tls_value, 1);

  pthread_t seen;
  pthread_t st;
  pthread_create(&st, NULL, self_worker, &seen);
  pthread_join(st, NULL);
  printf("pthread_self matches create: %d, differs from main: %d\n", pthread_equal(seen, st), !pthread_equal(seen, pthread_self()));

  pthread_t s;
  pthread_create(&s, NULL, sleeper, (void*)(intptr_t)200000);
  printf("tryjoin running: %s\n", name(pthread_tryjoin_np(s, NULL)));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 10 * 1000 * 1000;
  if (ts.tv_nsec >= 1000000000) { ts.tv_nsec -= 1000000000; ts.tv_sec++; }
  printf("timedjoin early: %s\n", name(pthread_timedjoin_np(s, NULL, &ts)));
  void* r = NULL;
  int je = pthread_join(s, &r);
  printf("join: %s %ld\n", name(je), (long)r);
  printf("join self: %s\n", name(pthread_join(pthread_self(), NULL)));

  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_t d;
  pthread_create(&d, &a, sleeper, (void*)(intptr_t)1000);
  printf("join detached: %s\n", name(pthread_join(d, NULL)));
  pthread_attr_destroy(&a);
  pthread_create(&d, NULL, sleeper, (void*)(intptr_t)1000);
  printf("detach: %s\n", name(pthread_detach(d)));
  usleep(20000);

  pthread_t x;
  pthread_create(&x, NULL, exiting, (void*)1);
  pthread_join(x, &r);
  printf("pthread_exit value %ld cleanup %d\n", (long)r, cleanup_ran);

  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 4 << 20);
  pthread_t big;
  pthread_create(&big, &a, deep, (void*)(intptr_t)150);  // ~2.4 MiB of frames
  pthread_join(big, &r);
  size_t got = 0;
  pthread_attr_getstacksize(&a, &got);
  printf("deep recursion on a 4 MiB stack: %ld\n", (long)r);
  pthread_attr_destroy(&a);
  return 0;
}
