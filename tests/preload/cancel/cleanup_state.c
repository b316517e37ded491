/* Cleanup handlers run in reverse order of their push, popped ones do not;
 * PTHREAD_CANCEL_DISABLE holds a request back across cancellation points
 * until cancellation is enabled again; the asynchronous type acts at once
 * when a request is already pending; pthread_testcancel acts; a thread that
 * cancels itself goes on to its next cancellation point. */
#include "common.h"

#include <sys/socket.h>

static void say(void* what) {
  printf("  cleanup %s\n", (const char*)what);
  fflush(stdout);
}

static void* nested(void* arg) {
  pthread_cleanup_push(say, "outer");
  pthread_cleanup_push(say, "middle");
  pthread_cleanup_push(say, "popped, not run");
  pthread_cleanup_pop(0);
  pthread_cleanup_push(say, "inner");
  for (;;) pause();
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  return NULL;
}

static pthread_barrier_t bar;

static void* disabled(void* arg) {
  int old = -1;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
  printf("disabled: old state %s\n", old == PTHREAD_CANCEL_ENABLE ? "ENABLE" : "DISABLE");
  pthread_cleanup_push(say, "disabled thread");
  pthread_barrier_wait(&bar); /* main cancels now */
  pthread_barrier_wait(&bar); /* ...and has cancelled */
  /* Cancellation points while disabled: nothing happens. */
  struct timespec ts = {0, 1000000};
  printf("disabled: nanosleep %d\n", nanosleep(&ts, NULL));
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(write(p[1], "z", 1) == 1);
  char c;
  printf("disabled: read %zd\n", read(p[0], &c, 1));
  pthread_testcancel();
  printf("disabled: survived testcancel\n");
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
  printf("enabled: old state %s\n", old == PTHREAD_CANCEL_ENABLE ? "ENABLE" : "DISABLE");
  pthread_testcancel();
  printf("not reached\n");
  pthread_cleanup_pop(0);
  return NULL;
}

static void* async_when_pending(void* arg) {
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
  pthread_cleanup_push(say, "async switch");
  pthread_barrier_wait(&bar);
  pthread_barrier_wait(&bar);
  pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
  printf("async: still running while disabled\n");
  fflush(stdout);
  /* Enabling with the asynchronous type acts at once. */
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
  printf("not reached\n");
  pthread_cleanup_pop(0);
  return NULL;
}

static void* self_cancel(void* arg) {
  pthread_cleanup_push(say, "self");
  printf("self: cancel %d\n", pthread_cancel(pthread_self()));
  printf("self: still running until a cancellation point\n");
  fflush(stdout);
  struct timespec ts = {5, 0};
  nanosleep(&ts, NULL);
  printf("not reached\n");
  pthread_cleanup_pop(0);
  return NULL;
}

static void* returns(void* arg) { return (void*)42; }

int main(void) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, nested, NULL) == 0);
  settle();
  pthread_cancel(t);
  join_and_report("nested", t);

  pthread_barrier_init(&bar, NULL, 2);
  CHECK(pthread_create(&t, NULL, disabled, NULL) == 0);
  pthread_barrier_wait(&bar);
  printf("cancel disabled thread: %d\n", pthread_cancel(t));
  fflush(stdout);
  pthread_barrier_wait(&bar);
  join_and_report("disabled", t);

  CHECK(pthread_create(&t, NULL, async_when_pending, NULL) == 0);
  pthread_barrier_wait(&bar);
  pthread_cancel(t);
  pthread_barrier_wait(&bar);
  join_and_report("async switch", t);

  CHECK(pthread_create(&t, NULL, self_cancel, NULL) == 0);
  join_and_report("self", t);

  /* A thread that already returned: cancel succeeds and changes nothing. */
  CHECK(pthread_create(&t, NULL, returns, NULL) == 0);
  settle();
  printf("cancel ended thread: %d\n", pthread_cancel(t));
  void* r;
  pthread_join(t, &r);
  printf("ended thread result %ld\n", (long)r);

  /* Cancelling twice is harmless. */
  CHECK(pthread_create(&t, NULL, nested, NULL) == 0);
  settle();
  int c1 = pthread_cancel(t);
  cancel_and_report("twice", t);
  printf("first cancel %d\n", c1);
  return 0;
}
