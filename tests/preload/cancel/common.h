/* Helpers for the cancellation test programs: deterministic output only. */
#ifndef CANCEL_TEST_COMMON_H
#define CANCEL_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(x)                                                          \
  do {                                                                    \
    if (!(x)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
      exit(2);                                                            \
    }                                                                     \
  } while (0)

/* Lets a thread reach its blocking call before it is cancelled. The result
 * does not depend on it: a request that arrives before the call is acted on
 * at the call's entry, one that arrives during it ends the call. */
__attribute__((unused)) static void settle(void) {
  struct timespec ts = {0, 30 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

/* Joins t and prints how it ended. */
__attribute__((unused)) static void join_and_report(const char* what, pthread_t t) {
  void* r = NULL;
  int e = pthread_join(t, &r);
  printf("%s: join %d, %s\n", what, e, r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "returned");
  fflush(stdout);
}

/* Cancels t, joins it, then prints both results (printing between the two
 * would race with t's cleanup handlers). */
__attribute__((unused)) static void cancel_and_report(const char* what, pthread_t t) {
  int c = pthread_cancel(t);
  void* r = NULL;
  int e = pthread_join(t, &r);
  printf("%s: cancel %d, join %d, %s\n", what, c, e, r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "returned");
  fflush(stdout);
}

#endif
