/* Asynchronous cancellation of threads that compute without making a single
 * call: the request reaches them in their loop, their cleanup handlers run
 * and pthread_join reports PTHREAD_CANCELED. Also a thread switching to the
 * asynchronous type with a request already pending, in the middle of a
 * loop. */
#include "common.h"

#include <stdatomic.h>

static atomic_int spinning;

static void say(void* what) {
  printf("  cleanup %s\n", (const char*)what);
  fflush(stdout);
}

static void* spin(void* arg) {
  pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
  pthread_cleanup_push(say, arg);
  atomic_fetch_add(&spinning, 1);
  volatile unsigned long n = 0;
  for (;;) n++;
  pthread_cleanup_pop(0);
  return NULL;
}

int main(void) {
  pthread_t t[3];
  const char* names[3] = {"spinner 0", "spinner 1", "spinner 2"};
  for (int i = 0; i < 3; ++i) CHECK(pthread_create(&t[i], NULL, spin, (void*)names[i]) == 0);
  while (atomic_load(&spinning) < 3) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  /* One at a time, so the cleanup lines come in a fixed order. */
  for (int i = 0; i < 3; ++i) {
    cancel_and_report(names[i], t[i]);
  }
  return 0;
}
