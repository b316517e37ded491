// Thread names: prctl(PR_SET_NAME/PR_GET_NAME) and pthread_{set,get}name_np
// name the calling thread only (under the library, not the OS thread that
// happens to carry it), a created thread starts with its creator's name,
// long names are cut to 15 bytes, and a bad pointer gives EFAULT.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static pthread_barrier_t g_both_named;

struct Seen {
  const char* set;
  char prctl_name[16], getname[16], grand_prctl[16], grand_getname[16];
};

static void* grandchild(void* arg) {
  struct Seen* s = arg;
  prctl(PR_GET_NAME, s->grand_prctl, 0, 0, 0);
  pthread_getname_np(pthread_self(), s->grand_getname, 16);
  return NULL;
}

static void* named(void* arg) {
  struct Seen* s = arg;
  prctl(PR_SET_NAME, (unsigned long)s->set, 0, 0, 0);
  // Both threads set their names before either reads: a name set on a
  // shared OS thread would show up in the other.
  pthread_barrier_wait(&g_both_named);
  usleep(20000);
  prctl(PR_GET_NAME, s->prctl_name, 0, 0, 0);
  pthread_getname_np(pthread_self(), s->getname, 16);
  pthread_t t;
  pthread_create(&t, NULL, grandchild, s);
  pthread_join(t, NULL);
  return NULL;
}

int main(void) {
  pthread_barrier_init(&g_both_named, NULL, 2);
  struct Seen seen[2] = {{.set = "first-thread-with-a-long-name"}, {.set = "beta"}};
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) pthread_create(&t[i], NULL, named, &seen[i]);
  for (int i = 0; i < 2; ++i) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; ++i) {
    printf("set %s: prctl=%s getname=%s; its child: prctl=%s getname=%s\n", seen[i].set, seen[i].prctl_name,
           seen[i].getname, seen[i].grand_prctl, seen[i].grand_getname);
  }
  char a[16] = {0}, b[16] = {0};
  prctl(PR_GET_NAME, a, 0, 0, 0);
  pthread_getname_np(pthread_self(), b, sizeof b);
  printf("main: prctl=%s getname=%s\n", a, b);
  int r = prctl(PR_SET_NAME, (unsigned long)8, 0, 0, 0);
  printf("bad pointer: %d %s\n", r, r ? strerror(errno) : "");
  r = prctl(PR_GET_NAME, (unsigned long)8, 0, 0, 0);
  printf("bad pointer get: %d %s\n", r, r ? strerror(errno) : "");
  printf("other option: %d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) >= 0);
  return 0;
}
