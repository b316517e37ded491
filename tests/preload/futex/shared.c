/* Process-shared raw futexes (no FUTEX_PRIVATE_FLAG) on MAP_SHARED memory:
 * a forked child and threads of the parent (fibers under the preload) wake
 * each other in both directions, and two parent threads wait on a shared
 * word while other threads keep running (the waits take the hand-off route:
 * they sleep in the kernel, where another process can wake them). */
#include <sys/mman.h>
#include <sys/wait.h>

#include "common.h"

struct shm {
  uint32_t parent_to_child;
  uint32_t child_to_parent;
  uint32_t both;
  uint32_t ready;
  uint32_t ticks; /* the parent's ticker counts here; the child reads it */
};
static struct shm* s;

static long wait_change(uint32_t* w, uint32_t old) {
  while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == old) {
    long r = fx(w, FUTEX_WAIT, old, NULL, NULL, 0);
    if (r < 0 && errno != EAGAIN && errno != EINTR) return r;
  }
  return 0;
}

static void set_and_wake(uint32_t* w, uint32_t v, int n) {
  __atomic_store_n(w, v, __ATOMIC_RELEASE);
  fx(w, FUTEX_WAKE, n, NULL, NULL, 0);
}

static void* parent_waiter(void* arg) {
  long r = wait_change(&s->child_to_parent, 0);
  return (void*)r;
}

static volatile int stop;
static void* ticker(void* arg) {
  while (!stop) {
    sleep_ms(1);
    __atomic_fetch_add(&s->ticks, 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void* nothing(void* a) { return a; }

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, nothing, NULL);
  pthread_join(t, NULL);

  s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) return 2;

  printf("shared WAIT value differs: %s\n", res(fx(&s->both, FUTEX_WAIT, 1, NULL, NULL, 0)));
  struct timespec ts = {0, 20 * 1000000L};
  printf("shared WAIT times out: %s\n", res(fx(&s->both, FUTEX_WAIT, 0, &ts, NULL, 0)));

  pid_t pid = fork();
  if (pid == 0) {
    /* Child: an ordinary process. Wait for the parent, then for 11 more
     * ticks of its ticker (bounded: 20 s) while its two threads wait, then
     * wake them. (It slept 50 ms instead: the ticker could count 10 or
     * fewer under load.) */
    wait_change(&s->parent_to_child, 0);
    uint32_t base = __atomic_load_n(&s->ticks, __ATOMIC_ACQUIRE);
    for (int i = 0; i < 20000 && __atomic_load_n(&s->ticks, __ATOMIC_ACQUIRE) - base < 11; ++i) sleep_ms(1);
    set_and_wake(&s->child_to_parent, 1, 2);
    _exit(0);
  }

  pthread_t waiters[2], tick;
  stop = 0;
  pthread_create(&tick, NULL, ticker, NULL);
  for (int i = 0; i < 2; ++i) pthread_create(&waiters[i], NULL, parent_waiter, NULL);
  sleep_ms(30);
  set_and_wake(&s->parent_to_child, 1, 1);
  for (int i = 0; i < 2; ++i) {
    void* r;
    pthread_join(waiters[i], &r);
    printf("parent thread %d woken by the child: %ld\n", i, (long)r);
  }
  stop = 1;
  pthread_join(tick, NULL);
  printf("other threads ran meanwhile: %d\n", __atomic_load_n(&s->ticks, __ATOMIC_ACQUIRE) > 10);
  int status;
  waitpid(pid, &status, 0);
  printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

  /* Two fibers of this process on one shared word. */
  s->child_to_parent = 0;
  for (int i = 0; i < 2; ++i) pthread_create(&waiters[i], NULL, parent_waiter, NULL);
  sleep_ms(30);
  set_and_wake(&s->child_to_parent, 1, 2);
  for (int i = 0; i < 2; ++i) {
    void* r;
    pthread_join(waiters[i], &r);
    printf("thread %d woken by a thread of its process: %ld\n", i, (long)r);
  }
  return 0;
}
