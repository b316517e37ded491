// startup: what LD_PRELOAD=libunblock.so costs a process that never creates
// a thread (children inherit LD_PRELOAD: a `make -j` starts hundreds).
// Spawns PROGRAM (default /bin/true) N times with and without the preload,
// alternating, and prints the median wall time of each and the difference.
//   startup LIB [N] [PROGRAM ARGS...]
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char** environ;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double run(char** argv, char** envp) {
  double t0 = now();
  pid_t pid;
  if (posix_spawn(&pid, argv[0], NULL, NULL, argv, envp) != 0) return -1;
  int st;
  waitpid(pid, &st, 0);
  return now() - t0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: startup LIB [N] [PROGRAM ARGS...]\n");
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 400;
  char* def[] = {"/bin/true", NULL};
  char** prog = argc > 3 ? argv + 3 : def;
  int envc = 0;
  while (environ[envc]) envc++;
  char** plain = calloc(envc + 1, sizeof(char*));
  char** pre = calloc(envc + 2, sizeof(char*));
  int k = 0;
  for (int i = 0; i < envc; i++) {
    if (strncmp(environ[i], "LD_PRELOAD=", 11) == 0) continue;
    plain[k] = pre[k] = environ[i];
    k++;
  }
  char ld[4096];
  snprintf(ld, sizeof ld, "LD_PRELOAD=%s", argv[1]);
  pre[k] = ld;
  double* a = malloc(n * sizeof(double));
  double* b = malloc(n * sizeof(double));
  for (int i = 0; i < 20; i++) run(prog, i % 2 ? pre : plain);  // warm the page cache
  for (int i = 0; i < n; i++) {
    a[i] = run(prog, plain);
    b[i] = run(prog, pre);
  }
  qsort(a, n, sizeof(double), cmp);
  qsort(b, n, sizeof(double), cmp);
  printf("%s: plain median %.0f us, with libunblock.so median %.0f us, difference %.0f us (%d runs each)\n", prog[0],
         a[n / 2], b[n / 2], b[n / 2] - a[n / 2], n);
  return 0;
}
