// Threads that run, wait to run, and sit in a system call the library does
// not intercept, for the stacks of unblock-ctl dump (ctl_stacks.sh).
//
//   ctl_stacks spin FLAG_FILE   3 threads yield in yield_loop() while one
//                               spins in spin_loop() (no system call) until
//                               FLAG_FILE's first byte becomes '1' (shared
//                               mapping: the spin makes no call; at most 60 s)
//   ctl_stacks raw              one thread blocks in raw_read_caller() in
//                               syscall(SYS_read) on a pipe, and one with a
//                               stack of the program's own (an OS thread
//                               under the library) in plain_read_caller()
//                               in read() on another
//   ctl_stacks yield            4 threads yield in yield_loop() until
//                               released (dumped while they run)
//
// Prints "ready" when every thread is where it should be, then waits for a
// line on stdin; then releases them, joins them and prints what they did:
// the same with and without the library, with and without dumps.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_stop;
static atomic_int g_started;
static atomic_int g_go_spin;
static volatile char* g_flag;
static int g_pipe[2];
static int g_plain_pipe[2];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static long yield_loop(void) {
  long n = 0;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    sched_yield();
    n++;
  }
  return n;
}

static void* yielder(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "s-yield");
  atomic_fetch_add(&g_started, 1);
  yield_loop();
  return (void*)1L;
}

__attribute__((noinline)) static unsigned long spin_loop(void) {
  unsigned long n = 0;
  double end = 0;
  while (g_flag[0] != '1') {
    // No call in the loop except a clock read every 2^24 turns (a bound).
    if ((++n & ((1ul << 24) - 1)) == 0) {
      double t = now();
      if (end == 0) end = t + 60;
      else if (t > end) break;
    }
    __asm__ volatile("" ::: "memory");
  }
  return n;
}

static void* spinner(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "s-spin");
  atomic_fetch_add(&g_started, 1);
  while (!atomic_load(&g_go_spin)) sched_yield();
  spin_loop();
  atomic_store(&g_stop, 1);
  return (void*)1L;
}

__attribute__((noinline)) static long raw_read_caller(void) {
  char c = 0;
  long r = syscall(SYS_read, g_pipe[0], &c, 1);
  return r == 1 && c == 'x';
}

__attribute__((noinline)) static long plain_read_caller(void) {
  char c = 0;
  long r = read(g_plain_pipe[0], &c, 1);
  return r == 1 && c == 'y';
}

static void* plain_reader(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "s-plain");
  atomic_fetch_add(&g_started, 1);
  long r = plain_read_caller();
  __asm__ volatile("" ::: "memory");  // not a tail call: keep this frame
  return (void*)r;
}

static void* raw_reader(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "s-raw");
  atomic_fetch_add(&g_started, 1);
  return (void*)raw_read_caller();
}

int main(int argc, char** argv) {
  if (argc < 2 || (strcmp(argv[1], "spin") && strcmp(argv[1], "raw") && strcmp(argv[1], "yield")) ||
      (!strcmp(argv[1], "spin") && argc < 3)) {
    fprintf(stderr, "usage: ctl_stacks spin FLAG_FILE | raw | yield\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int spin = !strcmp(argv[1], "spin");
  int yield = !strcmp(argv[1], "yield");
  pthread_t t[4];
  int n = 0;
  if (spin) {
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) {
      perror("open");
      return 1;
    }
    g_flag = mmap(NULL, 1, PROT_READ, MAP_SHARED, fd, 0);
    if (g_flag == MAP_FAILED) {
      perror("mmap");
      return 1;
    }
    close(fd);
    for (int i = 0; i < 3; i++) pthread_create(&t[n++], NULL, yielder, NULL);
    pthread_create(&t[n++], NULL, spinner, NULL);
  } else if (yield) {
    for (int i = 0; i < 4; i++) pthread_create(&t[n++], NULL, yielder, NULL);
  } else {
    if (pipe(g_pipe) != 0 || pipe(g_plain_pipe) != 0) return 1;
    pthread_create(&t[n++], NULL, raw_reader, NULL);
    static char plain_stack[256 * 1024] __attribute__((aligned(4096)));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, plain_stack, sizeof plain_stack);
    pthread_create(&t[n++], &attr, plain_reader, NULL);
    pthread_attr_destroy(&attr);
  }
  while (atomic_load(&g_started) < n) sched_yield();
  if (spin) {
    // Under the library with one worker, main runs again only once the
    // spinner lets the worker go: say ready first (the script waits a
    // little before it dumps).
    printf("ready\n");
    atomic_store(&g_go_spin, 1);
  } else {
    struct timespec ts = {0, 200 * 1000 * 1000};  // let it reach its read
    nanosleep(&ts, NULL);
    printf("ready\n");
  }
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;
  if (yield) atomic_store(&g_stop, 1);
  if (!spin && !yield) {
    char c = 'x';
    if (write(g_pipe[1], &c, 1) != 1) return 1;
    c = 'y';
    if (write(g_plain_pipe[1], &c, 1) != 1) return 1;
  }
  long sum = 0;
  for (int i = 0; i < n; i++) {
    void* r;
    pthread_join(t[i], &r);
    sum += (long)r;
  }
  printf("%s: %d threads, %ld ok\n", argv[1], n, sum);
  return 0;
}
