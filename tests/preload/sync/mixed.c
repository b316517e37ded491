/* Fibers and plain OS threads on the same objects: a thread created with
 * its own stack (pthread_attr_setstack) runs as an OS thread under the
 * preload; it passes a token around a ring with ordinary threads (fibers)
 * through one mutex and condition variable, ping-pongs with a fiber through
 * two semaphores, and meets them at a barrier. */
#include "common.h"

#include <semaphore.h>
#include <sys/mman.h>

#define RING 5
#define LAPS 300
#define PINGS 2000

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static int turn, passes;
static sem_t ping, pong;
static pthread_barrier_t meet;

static void ring_member(int me) {
  for (int lap = 0; lap < LAPS; lap++) {
    pthread_mutex_lock(&m);
    while (turn != me) pthread_cond_wait(&turn_changed, &m);
    passes++;
    turn = (turn + 1) % RING;
    pthread_cond_broadcast(&turn_changed);
    pthread_mutex_unlock(&m);
  }
}

static void* os_thread(void* unused) {
  (void)unused;
  ring_member(0);
  for (int i = 0; i < PINGS; i++) {
    sem_post(&ping);
    sem_wait(&pong);
  }
  int serial = pthread_barrier_wait(&meet) == PTHREAD_BARRIER_SERIAL_THREAD;
  return (void*)(long)serial;
}

static void* fiber(void* arg) {
  long me = (long)arg;
  ring_member((int)me);
  if (me == 1) {
    for (int i = 0; i < PINGS; i++) {
      struct timespec ts = in_ms(CLOCK_MONOTONIC, 60000);
      if (sem_clockwait(&ping, CLOCK_MONOTONIC, &ts) != 0) abort();
      sem_post(&pong);
    }
  }
  int serial = pthread_barrier_wait(&meet) == PTHREAD_BARRIER_SERIAL_THREAD;
  return (void*)(long)serial;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  sem_init(&ping, 0, 0);
  sem_init(&pong, 0, 0);
  pthread_barrier_init(&meet, NULL, RING);
  size_t size = 1 << 20;
  void* stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, stack, size);
  pthread_t t[RING];
  pthread_create(&t[1], NULL, fiber, (void*)1L);  /* starts the runtime first */
  pthread_create(&t[0], &attr, os_thread, NULL);
  for (long i = 2; i < RING; i++) pthread_create(&t[i], NULL, fiber, (void*)i);
  long serial = 0;
  for (int i = 0; i < RING; i++) {
    void* r;
    pthread_join(t[i], &r);
    serial += (long)r;
  }
  printf("ring passes %d (expected %d), turn back at %d\n", passes, RING * LAPS, turn);
  int v1, v2;
  sem_getvalue(&ping, &v1);
  sem_getvalue(&pong, &v2);
  printf("ping-pong done, values %d %d\n", v1, v2);
  printf("barrier serial threads %ld\n", serial);
  return 0;
}
