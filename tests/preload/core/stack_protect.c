// Threads that change the protection of their own stack, as a JVM does (it
// makes its yellow/red guard zones PROT_NONE at the low end of every thread
// stack, found with pthread_getattr_np), then exit; later threads reuse the
// stacks. Once crashed the library, which wrote its pool bookkeeping into
// the protected page of the released stack.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void* guarded(void* arg) {
  long i = (long)arg;
  pthread_attr_t a;
  void* low;
  size_t size;
  pthread_getattr_np(pthread_self(), &a);
  pthread_attr_getstack(&a, &low, &size);
  pthread_attr_destroy(&a);
  long page = sysconf(_SC_PAGESIZE);
  // Like a JVM: the lowest pages of the usable stack become inaccessible.
  char* zone = (char*)(((uintptr_t)low + page - 1) & ~(uintptr_t)(page - 1));
  if (mprotect(zone, 4 * page, PROT_NONE) != 0) return (void*)-1;
  char buf[256];
  snprintf(buf, sizeof buf, "thread %ld", i);
  return (void*)(long)strlen(buf);
}

static void* deep(void* arg) {
  // A reused stack must be usable all the way down (minus glibc's guard).
  volatile char big[64 * 1024];
  memset((char*)big, (int)(long)arg, sizeof big);
  return (void*)(long)big[100];
}

int main(void) {
  long sum = 0;
  for (int round = 0; round < 3; ++round) {
    pthread_t t[16];
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    for (long i = 0; i < 16; ++i) pthread_create(&t[i], &a, round == 1 ? deep : guarded, (void*)i);
    for (int i = 0; i < 16; ++i) {
      void* r;
      pthread_join(t[i], &r);
      sum += (long)r;
    }
    pthread_attr_destroy(&a);
  }
  printf("sum %ld\n", sum);
  return 0;
}
