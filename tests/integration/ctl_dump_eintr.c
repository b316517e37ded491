// A thread that alternates a short spin with a raw ppoll(2) of 10 us (a
// system call the library does not intercept and the kernel does not
// restart once a handler has run), for ctl_dump_eintr.sh: a dump that reads
// its stack while it runs may land its marker just after the thread entered
// the ppoll, which then fails with EINTR. The library cannot prevent that
// (README, Limitations) but must detect it: the script compares the EINTRs
// this program saw with the stats' dump_spurious_eintr.
//
// Prints "ready", waits for a line on stdin, stops the thread, prints
// "nap: done" on stdout (the same with and without the library) and
// "eintr N" on stderr.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_stop;
static long g_eintr;

static long raw_ppoll(const struct timespec* ts) {
  long r;
  register long r10 __asm__("r10") = 0;  // no signal mask
  register long r8 __asm__("r8") = 8;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "0"((long)SYS_ppoll), "D"(0L), "S"(0L), "d"(ts), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return r;
}

__attribute__((noinline)) static void nap_loop(void) {
  const struct timespec ts = {0, 10 * 1000};
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    for (volatile int i = 0; i < 5000; ++i) {
    }
    if (raw_ppoll(&ts) == -EINTR) ++g_eintr;
  }
}

static void* napper(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "s-nap");
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  // naps of 10 us, not 60
  nap_loop();
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t t;
  pthread_create(&t, NULL, napper, NULL);
  printf("ready\n");
  // Wait in poll (the library parks it) rather than in a read of a FIFO
  // it may not intercept: the napper needs the one worker.
  struct pollfd in = {0, POLLIN, 0};
  while (poll(&in, 1, -1) < 0) {
  }
  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;
  atomic_store(&g_stop, 1);
  pthread_join(t, NULL);
  printf("nap: done\n");
  fprintf(stderr, "eintr %ld\n", g_eintr);
  return 0;
}
