// A handler run for a thread ends its sigsuspend/pause with -1/EINTR (after
// the handler ran), its sleeps with EINTR and the time left, and a
// sigwaitinfo/sigtimedwait for another signal with EINTR, with and without
// SA_RESTART (the kernel never restarts these). sigsuspend puts the thread's
// mask back. sem_wait fails with EINTR without SA_RESTART and goes on with
// it (the kernel restarts an untimed futex wait).
//
// Main sends SIGUSR1 to the thread again and again until the call returns,
// so a signal that arrives just before the call starts cannot hang the test.
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kSuspend, kPause, kSleep, kNanosleep, kClockNanosleep, kUsleep, kSigwaitinfo, kSigtimedwait, kSemWait, kCalls };

static sem_t sem;  // never posted, except to end a sem_wait that goes on

static pthread_t sleeper_thread;
static volatile sig_atomic_t handled;
static volatile int current = -1;  // the call the sleeper is about to make or in
static volatile int returned = -1;  // the last call that returned

static void on_usr1(int sig) {
  (void)sig;
  handled++;
}

static void set_handler(int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
}

static int usr1_blocked(void) {
  sigset_t m;
  pthread_sigmask(SIG_BLOCK, NULL, &m);
  return sigismember(&m, SIGUSR1);
}

static void make_call(int call) {
  const struct timespec ten = {10, 0};
  struct timespec rem = {-1, -1};
  sig_atomic_t before = handled;
  current = call;
  int r, e;
  switch (call) {
    case kSuspend: {
      sigset_t block, open;
      sigemptyset(&block);
      sigaddset(&block, SIGUSR1);
      pthread_sigmask(SIG_BLOCK, &block, NULL);
      sigemptyset(&open);
      r = sigsuspend(&open);
      e = errno;
      printf("  sigsuspend: %d, %s, handler ran %s, SIGUSR1 blocked again: %s\n", r, e == EINTR ? "EINTR" : "?",
             handled > before ? "yes" : "no", usr1_blocked() ? "yes" : "no");
      pthread_sigmask(SIG_UNBLOCK, &block, NULL);
      break;
    }
    case kPause:
      r = pause();
      e = errno;
      printf("  pause: %d, %s, handler ran %s\n", r, e == EINTR ? "EINTR" : "?", handled > before ? "yes" : "no");
      break;
    case kSleep: {
      unsigned left = sleep(10);
      printf("  sleep(10): returned %u\n", left);
      break;
    }
    case kNanosleep:
      r = nanosleep(&ten, &rem);
      e = errno;
      printf("  nanosleep: %d, %s, 0 < rem < requested: %s\n", r, e == EINTR ? "EINTR" : "?",
             (rem.tv_sec > 0 || rem.tv_nsec > 0) && rem.tv_sec < 10 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000
                 ? "yes"
                 : "no");
      break;
    case kClockNanosleep:
      r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ten, &rem);
      printf("  clock_nanosleep: %s, 0 < rem < requested: %s\n", r == EINTR ? "EINTR" : "?",
             (rem.tv_sec > 0 || rem.tv_nsec > 0) && rem.tv_sec < 10 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000
                 ? "yes"
                 : "no");
      break;
    case kUsleep:
      r = usleep(10 * 1000 * 1000);
      e = errno;
      printf("  usleep: %d, %s\n", r, e == EINTR ? "EINTR" : "?");
      break;
    case kSigwaitinfo:
    case kSigtimedwait: {
      sigset_t usr2;
      sigemptyset(&usr2);
      sigaddset(&usr2, SIGUSR2);  // blocked in every thread
      r = call == kSigwaitinfo ? sigwaitinfo(&usr2, NULL) : sigtimedwait(&usr2, NULL, &ten);
      e = errno;
      printf("  %s for SIGUSR2: %d, %s, handler ran %s\n", call == kSigwaitinfo ? "sigwaitinfo" : "sigtimedwait", r,
             e == EINTR ? "EINTR" : "?", handled > before ? "yes" : "no");
      break;
    }
    case kSemWait:
      r = sem_wait(&sem);
      e = errno;
      printf("  sem_wait: %d, %s\n", r, r == 0 ? "went on until posted" : e == EINTR ? "EINTR" : "?");
      break;
  }
  fflush(stdout);
  returned = call;
}

static void* sleeper(void* arg) {
  (void)arg;
  for (int call = 0; call < kCalls; call++) make_call(call);
  return NULL;
}

static void run_all(const char* title, int flags) {
  printf("%s\n", title);
  fflush(stdout);
  set_handler(flags);
  current = returned = -1;
  pthread_create(&sleeper_thread, NULL, sleeper, NULL);
  for (int call = 0; call < kCalls; call++) {
    while (current != call) usleep(1000);
    usleep(20000);  // very likely inside the call by now
    sig_atomic_t base = handled;
    int posted = 0;
    while (returned != call) {
      pthread_kill(sleeper_thread, SIGUSR1);
      usleep(20000);
      // A sem_wait that goes on after many handler runs: end it.
      if (call == kSemWait && !posted && handled - base >= 10) {
        sem_post(&sem);
        posted = 1;
      }
    }
  }
  pthread_join(sleeper_thread, NULL);
}

int main(void) {
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &usr2, NULL);
  sem_init(&sem, 0, 0);
  run_all("handler without SA_RESTART:", 0);
  run_all("handler with SA_RESTART:", SA_RESTART);
  return 0;
}
