// pthread_join and pthread_detach of a thread that was already joined
// return ESRCH, as glibc's do (its descriptor no longer has a thread).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void* nop(void* arg) { return arg; }

int main(void) {
  pthread_t t;
  void* ret = NULL;
  pthread_create(&t, NULL, nop, (void*)7);
  int r = pthread_join(t, &ret);
  printf("first join: %s, result %ld\n", strerror(r), (long)ret);
  printf("second join: %s\n", strerror(pthread_join(t, NULL)));
  printf("detach after join: %s\n", strerror(pthread_detach(t)));
  printf("tryjoin after join: %s\n", strerror(pthread_tryjoin_np(t, NULL)));
  return 0;
}
