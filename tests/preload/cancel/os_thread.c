/* Threads created with a program-supplied stack run as ordinary OS threads
 * under unblock; cancelling them goes to glibc. Each is blocked in a
 * different kind of call: a pipe read (glibc's own cancellation point), a
 * condition wait and a semaphore wait (unblock's, a futex glibc does not
 * know), a join of a fiber; deferred and asynchronous types. */
#include "common.h"

#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>

static void say(void* what) {
  printf("  cleanup %s\n", (const char*)what);
  fflush(stdout);
}

static int pipefd[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sem_t sem;
static pthread_t fiber_forever;

static void unlock_mu(void* arg) {
  printf("  cleanup cond (mutex held: %s)\n", pthread_mutex_trylock(&mu) == EBUSY ? "yes" : "no");
  pthread_mutex_unlock(&mu);
  fflush(stdout);
}

static void* os_read(void* arg) {
  pthread_cleanup_push(say, "read");
  char c;
  if (read(pipefd[0], &c, 1) < 0) abort();
  pthread_cleanup_pop(0);
  return NULL;
}
static void* os_cond(void* arg) {
  pthread_mutex_lock(&mu);
  pthread_cleanup_push(unlock_mu, NULL);
  for (;;) pthread_cond_wait(&cv, &mu);
  pthread_cleanup_pop(0);
  return NULL;
}
static void* os_sem(void* arg) {
  pthread_cleanup_push(say, "sem_wait");
  sem_wait(&sem);
  pthread_cleanup_pop(0);
  return NULL;
}
static void* os_join(void* arg) {
  pthread_cleanup_push(say, "join of a fiber");
  pthread_join(fiber_forever, NULL);
  pthread_cleanup_pop(0);
  return NULL;
}
static atomic_int spinning;
static void* os_spin(void* arg) {
  pthread_cleanup_push(say, "async spin");
  pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
  atomic_store(&spinning, 1);
  volatile unsigned long n = 0;
  for (;;) n++;
  pthread_cleanup_pop(0);
  return NULL;
}
static void* fiber_read(void* arg) {
  char c;
  if (read(pipefd[0], &c, 1) < 0) abort();
  return NULL;
}

static void run(const char* name, void* (*fn)(void*)) {
  size_t size = 1 << 20;
  void* stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(stack != MAP_FAILED);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstack(&a, stack, size);
  pthread_t t;
  CHECK(pthread_create(&t, &a, fn, NULL) == 0);
  pthread_attr_destroy(&a);
  settle();
  /* The spinner must have its handler pushed before an asynchronous cancel. */
  while (fn == os_spin && !atomic_load(&spinning)) settle();
  cancel_and_report(name, t);
  munmap(stack, size);
}

int main(void) {
  CHECK(pipe(pipefd) == 0);
  sem_init(&sem, 0, 0);
  /* A fiber first, so the runtime runs while the OS threads exist. */
  CHECK(pthread_create(&fiber_forever, NULL, fiber_read, NULL) == 0);
  run("read", os_read);
  run("cond_wait", os_cond);
  run("sem_wait", os_sem);
  run("join", os_join);
  run("async", os_spin);
  cancel_and_report("fiber", fiber_forever);
  return 0;
}
