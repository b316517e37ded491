/* Cancelling main: main's cleanup handlers run, main's thread ends, the
 * other threads go on, pthread_join(main) reports PTHREAD_CANCELED, and the
 * process exits with status 0 when the last thread ends (as glibc does).
 * Run with argument "exit": main ends with pthread_exit instead, and its
 * cleanup handlers run too. */
#include "common.h"

static pthread_t main_thread;
static int use_exit;

static void main_cleanup(void* arg) {
  printf("main cleanup: %s\n", (const char*)arg);
  fflush(stdout);
}

static void* other(void* arg) {
  int c = 0;
  if (!use_exit) {
    settle();
    c = pthread_cancel(main_thread);
  }
  void* r = NULL;
  int e = pthread_join(main_thread, &r);
  printf("cancel main: %d, join main: %d, %s\n", c, e,
         r == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : r == (void*)7 ? "7" : "something else");
  /* The process is still fully alive: a thread can be created and joined. */
  pthread_t t;
  CHECK(pthread_create(&t, NULL, (void* (*)(void*))settle, NULL) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  printf("other thread ends last\n");
  fflush(stdout);
  return NULL;
}

int main(int argc, char** argv) {
  use_exit = argc > 1 && strcmp(argv[1], "exit") == 0;
  main_thread = pthread_self();
  pthread_t t;
  pthread_cleanup_push(main_cleanup, "outer");
  pthread_cleanup_push(main_cleanup, "inner");
  CHECK(pthread_create(&t, NULL, other, NULL) == 0);
  if (use_exit) pthread_exit((void*)7);
  for (;;) {
    struct timespec ts = {1000, 0};
    nanosleep(&ts, NULL);
  }
  pthread_cleanup_pop(0);
  pthread_cleanup_pop(0);
  printf("not reached\n");
  return 3;
}
