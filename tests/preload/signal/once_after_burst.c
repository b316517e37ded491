// A process-directed signal is handled once, when it arrives, and never
// later (CPython's test_threadsignals: after a burst of SIGUSR1 that
// interrupts a timed lock acquire, the next test's single kill() ran its
// handler twice). Main waits while a helper thread sends a burst of SIGUSR1
// to the process, the last one right before it wakes main (a semaphore post,
// its exit, a pipe write, a condition signal); main then installs another
// handler. The kernel runs every handler of the burst before main's wait
// returns, so the new handler must not run until main sends one SIGUSR1
// itself, and then exactly once. Neither thread blocks SIGUSR1.
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kBurst = 20, kRounds = 3 };

static volatile sig_atomic_t burst_runs, later_runs;
static void on_burst(int sig) {
  (void)sig;
  burst_runs++;
}
static void on_later(int sig) {
  (void)sig;
  later_runs++;
}

enum Wait { kSemWait, kSemTimed, kJoin, kPipe, kPoll, kCond, kWaits };
static const char* const kNames[] = {"sem_wait", "sem_clockwait", "pthread_join", "read", "poll", "pthread_cond_wait"};

static int wait_kind;
static sem_t done, never;
static int fds[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int finished;

static void pause_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

static void* sender(void* arg) {
  (void)arg;
  for (int i = 0; i < kBurst; i++) {
    pause_ms(5);
    kill(getpid(), SIGUSR1);
  }
  // The wake right behind the last signal.
  switch (wait_kind) {
    case kSemWait:
    case kSemTimed: sem_post(&done); break;
    case kPipe:
    case kPoll:
      if (write(fds[1], "x", 1) != 1) perror("write");
      break;
    case kCond:
      pthread_mutex_lock(&mu);
      finished = 1;
      pthread_cond_signal(&cv);
      pthread_mutex_unlock(&mu);
      break;
    default: break;  // kJoin: its exit
  }
  return NULL;
}

static void round_of(int kind, int round) {
  wait_kind = kind;
  burst_runs = later_runs = 0;
  finished = 0;
  signal(SIGUSR1, on_burst);
  pthread_t t;
  pthread_create(&t, NULL, sender, NULL);
  char c;
  switch (kind) {
    case kSemWait:
      while (sem_wait(&done) != 0) {
      }
      break;
    case kSemTimed: {
      // Interrupted again and again; it times out (or the post arrives).
      struct timespec dl;
      clock_gettime(CLOCK_MONOTONIC, &dl);
      dl.tv_sec += 30;
      while (sem_clockwait(&done, CLOCK_MONOTONIC, &dl) != 0 && errno == EINTR) {
      }
      break;
    }
    case kPipe:
      while (read(fds[0], &c, 1) != 1) {
      }
      break;
    case kPoll: {
      struct pollfd p = {fds[0], POLLIN, 0};
      while (poll(&p, 1, -1) != 1) {
      }
      if (read(fds[0], &c, 1) != 1) perror("read");
      break;
    }
    case kCond:
      pthread_mutex_lock(&mu);
      while (!finished) pthread_cond_wait(&cv, &mu);
      pthread_mutex_unlock(&mu);
      break;
    default: break;
  }
  pthread_join(t, NULL);
  signal(SIGUSR1, on_later);
  pause_ms(50);
  int stale = later_runs;
  kill(getpid(), SIGUSR1);
  pause_ms(50);
  printf("%s, round %d: the new handler ran %d times before the kill, %d after it (the burst's handler ran: %s)\n",
         kNames[kind], round, stale, later_runs - stale, burst_runs > 0 ? "yes" : "no");
  fflush(stdout);
}

int main(void) {
  sem_init(&done, 0, 0);
  sem_init(&never, 0, 0);
  if (pipe(fds) != 0) return 1;
  for (int kind = 0; kind < kWaits; kind++) {
    for (int round = 0; round < kRounds; round++) round_of(kind, round);
  }
  return 0;
}
