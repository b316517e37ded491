// exit() from a thread while others are parked: atexit handlers run once,
// buffered stdout is flushed, the status is kept, nothing hangs.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void bye(void) { printf("atexit handler ran\n"); }

static void* sleeper(void* arg) {
  (void)arg;
  sleep(100);
  return NULL;
}

static void* quitter(void* arg) {
  (void)arg;
  usleep(10000);
  printf("buffered line before exit\n");  // stdout is a pipe: fully buffered
  exit(7);
}

int main(void) {
  atexit(bye);
  pthread_t t[10];
  for (int i = 0; i < 9; i++) pthread_create(&t[i], NULL, sleeper, NULL);
  pthread_create(&t[9], NULL, quitter, NULL);
  for (int i = 0; i < 10; i++) pthread_join(t[i], NULL);
  printf("not reached\n");
  return 0;
}
