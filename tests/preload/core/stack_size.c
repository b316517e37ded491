// Which stack size a thread gets. glibc: the size set with
// pthread_attr_setstacksize, else the process default (RLIMIT_STACK, 8 MiB
// here). Under unblock, UNBLOCK_STACK_SIZE replaces only the default: an
// attribute object on which the program set no size must get it too (glibc's
// pthread_attr_getstacksize reports the default for such an object, which
// once made the library ignore UNBLOCK_STACK_SIZE for every program that
// passes an attribute, i.e. most servers).
//
// The expected size differs between the runs (compare.sh sets
// UNBLOCK_COMPARE_MODE), so the program prints only whether it matched.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* report(void* arg) {
  (void)arg;
  pthread_attr_t a;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &a) != 0) return NULL;
  pthread_attr_getstacksize(&a, &size);
  pthread_attr_destroy(&a);
  return (void*)size;
}

static size_t run(const pthread_attr_t* attr) {
  pthread_t t;
  void* r = NULL;
  if (pthread_create(&t, attr, report, NULL) != 0) return 0;
  pthread_join(t, &r);
  return (size_t)r;
}

static void check(const char* what, size_t got, size_t want) {
  // glibc may round up to a page and add its guard; unblock rounds to a page.
  if (got >= want && got <= want + 64 * 1024) {
    printf("%s: as expected\n", what);
  } else {
    printf("%s: got %zu, expected %zu\n", what, got, want);
  }
}

int main(void) {
  pthread_attr_t def;
  size_t glibc_default = 0;
  pthread_getattr_default_np(&def);
  pthread_attr_getstacksize(&def, &glibc_default);
  pthread_attr_destroy(&def);

  const char* mode = getenv("UNBLOCK_COMPARE_MODE");
  const char* env = getenv("EXPECT_DEFAULT_STACK");  // the UNBLOCK_STACK_SIZE of this test, in bytes
  size_t want_default = glibc_default;
  if (mode && strcmp(mode, "preload") == 0 && env) want_default = strtoull(env, NULL, 10);

  check("no attribute", run(NULL), want_default);

  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_JOINABLE);
  check("attribute without a size", run(&a), want_default);

  pthread_attr_setstacksize(&a, 1 << 20);
  check("attribute with 1 MiB", run(&a), 1 << 20);

  pthread_attr_setstacksize(&a, glibc_default);
  check("attribute with the default size set explicitly", run(&a), glibc_default);
  pthread_attr_destroy(&a);
  return 0;
}
