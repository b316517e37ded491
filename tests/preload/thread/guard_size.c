// A thread's requested guard size (pthread_attr_setguardsize) is honoured:
// pthread_getattr_np reports it, and touching any part of it faults, even
// when other threads' stacks were mapped right below (a guard smaller than
// asked would leave the low part of it inside a neighbour's memory).
// Guards too large to map or to add to the stack size fail as in glibc.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUARD (1024 * 1024)
#define NEIGHBOURS 6

static pthread_barrier_t ready;
static pthread_barrier_t done;

// In a forked child (a copy of this thread's memory), touch one byte
// `below` bytes under the usable stack: the guard must fault.
static void probe(char* low, size_t below) {
  pid_t pid = fork();
  if (pid == 0) {
    volatile char* p = low - below;
    *p = 1;
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFSIGNALED(st)) printf("touch %zu below the stack: signal %d\n", below, WTERMSIG(st));
  else printf("touch %zu below the stack: no fault\n", below);
}

static void* guarded(void* arg) {
  (void)arg;
  pthread_attr_t a;
  pthread_getattr_np(pthread_self(), &a);
  size_t guard = 0, size = 0;
  void* low = NULL;
  pthread_attr_getguardsize(&a, &guard);
  pthread_attr_getstack(&a, &low, &size);
  pthread_attr_destroy(&a);
  printf("reported guard %zu\n", guard);
  pthread_barrier_wait(&ready);  // the neighbours exist now
  probe((char*)low, 1);
  probe((char*)low, GUARD / 2);
  probe((char*)low, GUARD - 4096);
  probe((char*)low, GUARD - 1);
  fflush(stdout);
  return NULL;
}

static void* neighbour(void* arg) {
  (void)arg;
  pthread_barrier_wait(&done);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_barrier_init(&ready, NULL, 2);
  pthread_barrier_init(&done, NULL, NEIGHBOURS + 1);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 4 * 1024 * 1024);
  pthread_attr_setguardsize(&a, GUARD);
  pthread_t g, n[NEIGHBOURS];
  int r = pthread_create(&g, &a, guarded, NULL);
  if (r) {
    printf("create: %s\n", strerror(r));
    return 1;
  }
  for (int i = 0; i < NEIGHBOURS; ++i) pthread_create(&n[i], NULL, neighbour, NULL);
  pthread_barrier_wait(&ready);
  pthread_join(g, NULL);
  pthread_barrier_wait(&done);
  for (int i = 0; i < NEIGHBOURS; ++i) pthread_join(n[i], NULL);

  // The default attribute's guard is reported as glibc's default.
  pthread_attr_t d;
  pthread_t t;
  pthread_barrier_init(&done, NULL, 2);
  pthread_create(&t, NULL, neighbour, NULL);
  pthread_getattr_np(t, &d);
  size_t guard = 0;
  pthread_attr_getguardsize(&d, &guard);
  printf("default guard %zu\n", guard);
  pthread_attr_destroy(&d);
  pthread_barrier_wait(&done);
  pthread_join(t, NULL);

  // glibc adds the guard to the stack size: a guard as large as the stack
  // is fine, one that cannot be mapped is EAGAIN, a sum that overflows EINVAL.
  pthread_barrier_init(&done, NULL, 1);
  pthread_attr_setstacksize(&a, 256 * 1024);
  pthread_attr_setguardsize(&a, 256 * 1024);
  r = pthread_create(&t, &a, neighbour, NULL);
  printf("guard = stack size: %s\n", strerror(r));
  if (r == 0) pthread_join(t, NULL);
  pthread_attr_setguardsize(&a, (size_t)1 << 47);
  printf("guard 128 TiB: %s\n", strerror(pthread_create(&t, &a, neighbour, NULL)));
  pthread_attr_setguardsize(&a, (size_t)-100);
  printf("guard overflowing: %s\n", strerror(pthread_create(&t, &a, neighbour, NULL)));
  pthread_attr_destroy(&a);
  return 0;
}
