// The sigwait family and sigpending, per thread:
//   - sigtimedwait with a timeout and nothing pending fails with EAGAIN;
//   - sigwaitinfo returns sigqueue()'s si_value, real-time signals queue in
//     order, pthread_sigqueue reaches the one thread it names;
//   - sigpending: a signal sent with pthread_kill to a thread that blocks it
//     is pending in that thread only; a process-directed one that every
//     thread blocks is pending in all of them; sigtimedwait takes them.
// Every thread blocks SIGUSR1, SIGUSR2 and the real-time signals used here
// (main blocks them before creating any thread).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_barrier_t step;
static pthread_t waiter_thread, other_thread;

static const char* name_of(int sig) {
  if (sig == SIGUSR1) return "SIGUSR1";
  if (sig == SIGUSR2) return "SIGUSR2";
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+1";
  return "other";
}

static void print_pending(const char* who) {
  sigset_t p;
  sigpending(&p);
  printf("  %s: pending SIGUSR1 %d, SIGUSR2 %d\n", who, sigismember(&p, SIGUSR1), sigismember(&p, SIGUSR2));
}

// Every thread reports its pending set, one after another (main, the thread
// SIGUSR2 was sent to, another thread). All three call it.
static void report_pending(int me, const char* when) {
  static const char* const who[3] = {"main", "the thread SIGUSR2 was sent to", "another thread"};
  for (int turn = 0; turn < 3; turn++) {
    pthread_barrier_wait(&step);
    if (turn == me) {
      if (me == 0) printf("%s\n", when);
      print_pending(who[me]);
      fflush(stdout);
    }
  }
  pthread_barrier_wait(&step);
}

static void* waiter(void* arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  struct timespec ts = {0, 50 * 1000 * 1000};
  siginfo_t si;
  int r = sigtimedwait(&set, &si, &ts);
  printf("sigtimedwait with nothing pending: %d, errno %s\n", r, r < 0 && errno == EAGAIN ? "EAGAIN" : "other");

  // Real-time signals from main: three queued SIGRTMIN, then SIGRTMIN+1 to this thread.
  sigemptyset(&set);
  sigaddset(&set, SIGRTMIN);
  sigaddset(&set, SIGRTMIN + 1);
  pthread_barrier_wait(&step);  // main sends them
  pthread_barrier_wait(&step);  // all four are pending: the one sent to this thread comes first
  for (int i = 0; i < 4; i++) {
    int sig = sigwaitinfo(&set, &si);
    printf("sigwaitinfo: %s, code SI_QUEUE %d, from this process %d, value %d\n", name_of(sig),
           si.si_code == SI_QUEUE, si.si_pid == getpid(), si.si_value.sival_int);
  }
  fflush(stdout);
  pthread_barrier_wait(&step);  // main sends SIGUSR2 to this thread only
  report_pending(1, "after pthread_kill(SIGUSR2) to one thread:");
  report_pending(1, "after kill(getpid(), SIGUSR1):");

  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  struct timespec zero = {0, 0};
  int first = sigtimedwait(&set, &si, &zero);
  int second = sigtimedwait(&set, &si, &zero);
  int third = sigtimedwait(&set, &si, &zero);
  printf("taken by the thread SIGUSR2 was sent to: %s, %s, then %d (%s)\n", name_of(first), name_of(second), third,
         third < 0 && errno == EAGAIN ? "EAGAIN" : "other");
  fflush(stdout);
  report_pending(1, "after sigtimedwait took them:");
  return NULL;
}

static void* other(void* arg) {
  (void)arg;
  pthread_barrier_wait(&step);
  pthread_barrier_wait(&step);
  pthread_barrier_wait(&step);
  report_pending(2, "");
  report_pending(2, "");
  report_pending(2, "");
  return NULL;
}

int main(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  sigaddset(&set, SIGRTMIN);
  sigaddset(&set, SIGRTMIN + 1);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  pthread_barrier_init(&step, NULL, 3);
  pthread_create(&waiter_thread, NULL, waiter, NULL);
  pthread_create(&other_thread, NULL, other, NULL);

  pthread_barrier_wait(&step);
  union sigval v;
  for (int i = 1; i <= 3; i++) {
    v.sival_int = i;
    sigqueue(getpid(), SIGRTMIN, v);
  }
  v.sival_int = 42;
  pthread_sigqueue(waiter_thread, SIGRTMIN + 1, v);
  pthread_barrier_wait(&step);  // all four are pending before the waiter looks
  pthread_kill(waiter_thread, SIGUSR2);
  pthread_barrier_wait(&step);
  report_pending(0, "after pthread_kill(SIGUSR2) to one thread:");
  kill(getpid(), SIGUSR1);
  report_pending(0, "after kill(getpid(), SIGUSR1):");
  report_pending(0, "after sigtimedwait took them:");
  pthread_join(waiter_thread, NULL);
  pthread_join(other_thread, NULL);
  return 0;
}
