// A thread with a program-supplied stack runs as an ordinary OS thread under
// the library; it must take signals as under glibc: it starts with its
// creator's mask, pthread_kill to it runs the handler in it, and a signal
// it blocks stays pending until it unblocks it. Before, it inherited its
// creator's carrier's mask (every signal blocked) and nothing reached it.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int hits;
static _Atomic(pthread_t) ran_in;
static atomic_int phase;

static void on_usr1(int sig) {
  (void)sig;
  ran_in = pthread_self();
  atomic_fetch_add(&hits, 1);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int wait_for(atomic_int* v, int want) {
  for (int i = 0; i < 5000; ++i) {
    if (atomic_load(v) >= want) return 1;
    sleep_ms(1);
  }
  return 0;
}

static void* os_thread(void* arg) {
  (void)arg;
  sigset_t cur;
  pthread_sigmask(SIG_SETMASK, NULL, &cur);
  printf("OS thread starts with SIGUSR2 %s, SIGUSR1 %s\n", sigismember(&cur, SIGUSR2) ? "blocked" : "open",
         sigismember(&cur, SIGUSR1) ? "blocked" : "open");
  atomic_store(&phase, 1);
  wait_for(&phase, 2);  // main sent SIGUSR1 to us meanwhile
  // Block SIGUSR1, let main send another, then unblock: delivered then.
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &one, NULL);
  atomic_store(&phase, 3);
  wait_for(&phase, 4);
  sleep_ms(50);
  int before = atomic_load(&hits);
  pthread_sigmask(SIG_UNBLOCK, &one, NULL);
  printf("blocked signal waited for the unblock: %s\n", before == 1 && atomic_load(&hits) == 2 ? "yes" : "no");
  return NULL;
}

static void* nothing(void* arg) { return arg; }

int main(void) {
  // An ordinary thread first: under the library main is a fiber from here on.
  pthread_t first;
  pthread_create(&first, NULL, nothing, NULL);
  pthread_join(first, NULL);
  signal(SIGUSR1, on_usr1);
  sigset_t two;
  sigemptyset(&two);
  sigaddset(&two, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &two, NULL);  // inherited by the new thread
  size_t size = 1 << 20;
  void* stack = malloc(size);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, stack, size);
  pthread_t t;
  if (pthread_create(&t, &a, os_thread, NULL) != 0) return 1;
  wait_for(&phase, 1);
  pthread_kill(t, SIGUSR1);
  int got = wait_for(&hits, 1);
  printf("pthread_kill to the OS thread ran its handler: %s, in that thread: %s\n", got ? "yes" : "no",
         got && pthread_equal(ran_in, t) ? "yes" : "no");
  atomic_store(&phase, 2);
  wait_for(&phase, 3);
  pthread_kill(t, SIGUSR1);
  atomic_store(&phase, 4);
  pthread_join(t, NULL);
  printf("handler runs: %d\n", atomic_load(&hits));
  return 0;
}
