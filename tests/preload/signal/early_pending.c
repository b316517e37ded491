// Signals that became pending before the first thread was created keep
// their target: main raises SIGUSR1 to itself and sends SIGUSR2 to the
// process while blocking both, then creates a thread. The thread sees only
// the process-directed SIGUSR2 as pending and, when it unblocks both, takes
// only that one; main's own SIGUSR1 waits for main.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_t main_thread;
static volatile sig_atomic_t usr1_in_main, usr1_elsewhere, usr2_in_main, usr2_elsewhere;

static void on_signal(int sig) {
  int in_main = pthread_equal(pthread_self(), main_thread);
  if (sig == SIGUSR1) {
    if (in_main) usr1_in_main++;
    else usr1_elsewhere++;
  } else {
    if (in_main) usr2_in_main++;
    else usr2_elsewhere++;
  }
}

static void report(const char* who) {
  sigset_t p;
  sigpending(&p);
  printf("%s: pending SIGUSR1 %d, SIGUSR2 %d\n", who, sigismember(&p, SIGUSR1), sigismember(&p, SIGUSR2));
}

static void both(int how) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  sigaddset(&s, SIGUSR2);
  pthread_sigmask(how, &s, NULL);
}

static void* thread_main(void* arg) {
  (void)arg;
  report("thread");
  both(SIG_UNBLOCK);
  printf("thread unblocked both: SIGUSR1 handled here %d, SIGUSR2 handled here %d\n", (int)usr1_elsewhere,
         (int)usr2_elsewhere);
  return NULL;
}

int main(void) {
  main_thread = pthread_self();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  both(SIG_BLOCK);
  raise(SIGUSR1);
  kill(getpid(), SIGUSR2);
  report("main before any thread");
  pthread_t t;
  pthread_create(&t, NULL, thread_main, NULL);
  pthread_join(t, NULL);
  report("main after the thread");
  both(SIG_UNBLOCK);
  printf("main unblocked both: SIGUSR1 handled in main %d, SIGUSR2 handled in main %d\n", (int)usr1_in_main,
         (int)usr2_in_main);
  return 0;
}
