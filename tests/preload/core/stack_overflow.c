// Unbounded recursion in a thread dies of SIGSEGV, as without the library;
// under the library the guard region catches it and the overflow is named.
#include <pthread.h>
#include <stdio.h>

static int recurse(int n) {
  volatile char frame[1024];
  frame[0] = (char)n;
  return recurse(n + 1) + frame[0];
}

static void* run(void* arg) {
  (void)arg;
  return (void*)(long)recurse(0);
}

int main(void) {
  printf("about to overflow\n");
  fflush(stdout);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 256 * 1024);
  pthread_t t;
  pthread_create(&t, &a, run, NULL);
  pthread_join(t, NULL);
  printf("not reached\n");
  return 0;
}
