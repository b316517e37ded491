// A program that uses libfiu itself: its own points, and the control API.
// Under unblock the control calls are unblock's (they must keep libfiu's
// semantics for the program's own points) and they reach unblock's points.
// Prints one line per check; tests/fault/libfiu_program.sh compares a plain
// run with preloaded ones.
#define _GNU_SOURCE
#define FIU_ENABLE 1
#include <errno.h>
#include <fcntl.h>
#include <fiu-control.h>
#include <fiu.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int external_calls;
static int external(const char* name, int* failnum, void** failinfo, unsigned* flags) {
  ++external_calls;
  return external_calls % 2;  // fail every other check
}

static void* body(void* arg) {
  fiu_init(0);
  fiu_enable("myapp/db/commit", 7, (void*)42, 0);
  int f = fiu_fail("myapp/db/commit");
  printf("own point: failnum %d failinfo %ld\n", f, (long)fiu_failinfo());
  fiu_enable("myapp/cache/*", 1, NULL, FIU_ONETIME);
  int a = fiu_fail("myapp/cache/get"), b = fiu_fail("myapp/cache/get");
  printf("onetime wildcard: %d then %d\n", a, b);
  fiu_disable("myapp/db/commit");
  printf("disabled: %d\n", fiu_fail("myapp/db/commit"));
  fiu_enable_external("myapp/ext", 1, NULL, 0, external);
  int e = 0;
  for (int i = 0; i < 10; ++i) e += fiu_fail("myapp/ext") != 0;
  printf("external: %d of 10 (callback ran %d times)\n", e, external_calls);
  fiu_enable_random("myapp/rand", 1, NULL, 0, 0.5f);
  int r = 0;
  for (int i = 0; i < 1000; ++i) r += fiu_fail("myapp/rand") != 0;
  printf("random p=0.5: %s\n", r > 400 && r < 600 ? "about half" : "not half");
  printf("random count: %d\n", r);

  // The program enables a POSIX point: unblock's read hook sees it.
  int fd = open("/dev/zero", O_RDONLY);
  char buf[8];
  fiu_enable("posix/io/rw/read", 1, (void*)(long)EIO, 0);
  ssize_t n = read(fd, buf, sizeof buf);
  printf("read with posix/io/rw/read enabled: %s\n", n < 0 ? strerrorname_np(errno) : "ok");
  fiu_disable("posix/io/rw/read");
  n = read(fd, buf, sizeof buf);
  printf("read after disable: %s\n", n < 0 ? strerrorname_np(errno) : "ok");
  close(fd);
  return arg;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t t;
  pthread_create(&t, NULL, body, NULL);
  pthread_join(t, NULL);
  return 0;
}
