// main calling pthread_exit: the other threads keep running; when the last
// one ends the process exits with status 0 and atexit handlers run.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int done;

static void bye(void) { printf("atexit: %d threads finished\n", done); }

static void* worker(void* arg) {
  usleep(20000 + 1000 * (int)(long)arg);
  pthread_mutex_lock(&lock);
  done++;
  pthread_mutex_unlock(&lock);
  return NULL;
}

int main(void) {
  atexit(bye);
  for (long i = 0; i < 5; i++) {
    pthread_t t;
    pthread_create(&t, NULL, worker, (void*)i);
    pthread_detach(t);
  }
  printf("main exits its thread\n");
  fflush(stdout);
  pthread_exit(NULL);
}
