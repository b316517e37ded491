// Two threads that busy-wait on each other's atomic flag (as some servers'
// I/O threads do) must both finish, even with a single worker: the
// spinning fiber's worker is handed to another OS thread.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

enum { kRounds = 200 };
static atomic_int turn;  // whose move: 0 = ping, 1 = pong

static void* player(void* arg) {
  int me = (int)(long)arg;
  for (int i = 0; i < kRounds; i++) {
    while (atomic_load_explicit(&turn, memory_order_acquire) != me) {
    }
    atomic_store_explicit(&turn, 1 - me, memory_order_release);
  }
  return NULL;
}

int main(void) {
  pthread_t a, b;
  pthread_create(&a, NULL, player, (void*)0L);
  pthread_create(&b, NULL, player, (void*)1L);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  printf("ping-pong finished: %d rounds each\n", kRounds);
  return 0;
}
