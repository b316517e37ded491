// Switches between fibers take one FS write each: a thread that parks or
// yields while another is runnable switches straight to it, not through the
// scheduler's TCB (docs/DESIGN.md, section 3). Three threads on one worker:
// two ping-pong through semaphores, and the main thread and a third one
// take turns with sched_yield. Each checks its own errno and __thread data
// after every switch, so a switch that left the wrong TCB current shows.
// The counts checked by the test (UNBLOCK_STATS: fs_writes, direct_switches)
// are the point; the output is the same plain and preloaded.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

enum { kRounds = 10000, kYields = 5000 };

static sem_t ping, pong;
static __thread long mine;
static volatile int stop_yielding;

static void check(long want, const char* who) {
  if (mine != want || errno != (int)want % 100) {
    printf("%s: thread data lost across a switch (mine %ld, errno %d)\n", who, mine, errno);
    exit(1);
  }
}

static void* pinger(void* arg) {
  (void)arg;
  mine = 11;
  for (int i = 0; i < kRounds; ++i) {
    errno = 11;
    sem_post(&ping);
    sem_wait(&pong);
    check(11, "pinger");
  }
  return NULL;
}

static void* ponger(void* arg) {
  (void)arg;
  mine = 22;
  for (int i = 0; i < kRounds; ++i) {
    errno = 22;
    sem_wait(&ping);
    check(22, "ponger");
    errno = 22;
    sem_post(&pong);
  }
  return NULL;
}

static void* yielder(void* arg) {
  (void)arg;
  mine = 33;
  for (int i = 0; i < kYields; ++i) {
    errno = 33;
    sched_yield();
    check(33, "yielder");
  }
  return NULL;
}

int main(void) {
  sem_init(&ping, 0, 0);
  sem_init(&pong, 0, 0);
  pthread_t a, b, c;
  pthread_create(&a, NULL, pinger, NULL);
  pthread_create(&b, NULL, ponger, NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  printf("%d semaphore round trips\n", kRounds);
  pthread_create(&c, NULL, yielder, NULL);
  mine = 44;
  for (int i = 0; i < kYields; ++i) {
    errno = 44;
    sched_yield();
    check(44, "main");
  }
  pthread_join(c, NULL);
  printf("%d yields each by two threads\n", kYields);
  return 0;
}
