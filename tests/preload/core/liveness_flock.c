// A thread blocked in a call the library does not intercept (flock) must not
// stall the other threads: with one worker, the blocked worker's other
// fibers are handed to another OS thread.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

static char path[] = "/tmp/unblock-flock-XXXXXX";
static atomic_int finished;
static atomic_int holder_ready;

static void* holder(void* arg) {
  (void)arg;
  int fd = open(path, O_RDWR);
  flock(fd, LOCK_EX);
  atomic_store(&holder_ready, 1);
  // Hold the lock until every worker thread has finished.
  while (atomic_load(&finished) < 200) usleep(1000);
  flock(fd, LOCK_UN);
  close(fd);
  return NULL;
}

static void* blocked(void* arg) {
  (void)arg;
  int fd = open(path, O_RDWR);
  while (!atomic_load(&holder_ready)) usleep(1000);
  flock(fd, LOCK_EX);  // blocks its carrier until the holder lets go
  flock(fd, LOCK_UN);
  close(fd);
  return (void*)1;
}

static void* worker(void* arg) {
  for (int i = 0; i < 5; i++) usleep(500);
  atomic_fetch_add(&finished, 1);
  return arg;
}

int main(void) {
  int fd = mkstemp(path);
  close(fd);
  pthread_t h, b, w[200];
  pthread_create(&h, NULL, holder, NULL);
  while (!atomic_load(&holder_ready)) usleep(1000);
  pthread_create(&b, NULL, blocked, NULL);
  usleep(20000);  // let it block in flock
  for (long i = 0; i < 200; i++) pthread_create(&w[i], NULL, worker, (void*)i);
  for (int i = 0; i < 200; i++) pthread_join(w[i], NULL);
  void* r;
  pthread_join(b, &r);
  pthread_join(h, NULL);
  unlink(path);
  printf("workers finished while a thread was blocked in flock: %d, blocked thread result %ld\n",
         atomic_load(&finished), (long)r);
  return 0;
}
