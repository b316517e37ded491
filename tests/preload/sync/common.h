/* Helpers for the synchronisation test programs: deterministic output only
 * (return codes as errno names, counts), never times or addresses. */
#ifndef SYNC_TEST_COMMON_H
#define SYNC_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((unused)) static const char* ename(int e) {
  switch (e) {
    case 0: return "0";
    case EBUSY: return "EBUSY";
    case EDEADLK: return "EDEADLK";
    case EPERM: return "EPERM";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EOWNERDEAD: return "EOWNERDEAD";
    case EOVERFLOW: return "EOVERFLOW";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "errno%d", e);
      return buf;
    }
  }
}

/* now(clock) + ms */
__attribute__((unused)) static struct timespec in_ms(clockid_t clock, long ms) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_nsec -= 1000000000L;
    ts.tv_sec++;
  }
  return ts;
}

__attribute__((unused)) static int reached(clockid_t clock, const struct timespec* ts) {
  struct timespec now;
  clock_gettime(clock, &now);
  return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

/* Runs fn(arg) on a new thread and returns its int result. */
typedef int (*int_fn)(void*);
struct call {
  int_fn fn;
  void* arg;
  int result;
};
static void* call_main(void* p) {
  struct call* c = p;
  c->result = c->fn(c->arg);
  return NULL;
}
__attribute__((unused)) static int in_thread(int_fn fn, void* arg) {
  struct call c = {fn, arg, -1};
  pthread_t t;
  if (pthread_create(&t, NULL, call_main, &c) != 0) {
    printf("pthread_create failed\n");
    exit(2);
  }
  pthread_join(t, NULL);
  return c.result;
}

#define CHECK(what, got, want)                                                              \
  do {                                                                                      \
    int got_ = (got);                                                                       \
    printf("%-48s %s%s\n", what, ename(got_), got_ == (want) ? "" : "   <-- UNEXPECTED"); \
  } while (0)

#endif
