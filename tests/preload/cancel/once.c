/* pthread_once whose init routine is cancelled half-way: the once control
 * is left re-runnable (glibc's clear_once_control), a thread waiting in
 * pthread_once for that routine runs it itself, and later calls do
 * nothing. */
#include "common.h"

#include <stdatomic.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int runs;
static int pipefd[2];

static void init(void) {
  int n = atomic_fetch_add(&runs, 1) + 1;
  if (n == 1) {
    char c;
    if (read(pipefd[0], &c, 1) < 0) abort(); /* cancelled here */
  }
}

static void say(void* what) {
  printf("  cleanup %s\n", (const char*)what);
  fflush(stdout);
}

static void* first(void* arg) {
  pthread_cleanup_push(say, "first caller");
  pthread_once(&once, init);
  pthread_cleanup_pop(0);
  return NULL;
}

static void* second(void* arg) {
  pthread_once(&once, init);
  return (void*)(long)atomic_load(&runs);
}

int main(void) {
  CHECK(pipe(pipefd) == 0);
  pthread_t a, b;
  CHECK(pthread_create(&a, NULL, first, NULL) == 0);
  while (atomic_load(&runs) == 0) settle();
  CHECK(pthread_create(&b, NULL, second, NULL) == 0);
  settle(); /* b waits for a's routine (or arrives after: same result) */
  cancel_and_report("first caller", a);
  void* r;
  CHECK(pthread_join(b, &r) == 0);
  printf("second caller: routine runs seen %ld\n", (long)r);
  pthread_once(&once, init);
  printf("after another call: runs %d\n", atomic_load(&runs));
  return 0;
}
