// The classic time-out pattern: a handler leaves a blocking call with
// siglongjmp. A thread blocked in read() on an empty pipe, one sleeping and
// one computing are each interrupted by a handler that jumps back to their
// sigsetjmp; afterwards the signal mask is what sigsetjmp saved (SIGUSR1
// deliverable again), and the thread's next read works normally.
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kRead, kSleep, kCompute, kKinds };
static const char* const kName[kKinds] = {"blocked in read", "sleeping", "computing"};

static __thread sigjmp_buf tls_env;
static __thread volatile sig_atomic_t tls_armed;
static volatile int waiting[kKinds], finished[kKinds];
static int pipes[kKinds][2];

static void on_usr1(int sig) {
  (void)sig;
  if (tls_armed) {
    tls_armed = 0;
    siglongjmp(tls_env, 1);
  }
}

static int usr1_blocked(void) {
  sigset_t m;
  pthread_sigmask(SIG_BLOCK, NULL, &m);
  return sigismember(&m, SIGUSR1);
}

static void* thread_main(void* arg) {
  long kind = (long)arg;
  volatile int jumped = 0;  // lives across sigsetjmp
  if (sigsetjmp(tls_env, 1) == 0) {
    tls_armed = 1;
    waiting[kind] = 1;
    char c;
    struct timespec ts = {10, 0};
    switch (kind) {
      case kRead:
        (void)!read(pipes[kind][0], &c, 1);
        break;
      case kSleep:
        nanosleep(&ts, NULL);
        break;
      case kCompute:
        while (tls_armed) {
        }
        break;
    }
  } else {
    jumped = 1;
  }
  int blocked = usr1_blocked();
  char buf[8] = "";
  if (write(pipes[kind][1], "ok", 2) != 2) return NULL;
  ssize_t n = read(pipes[kind][0], buf, sizeof buf - 1);
  printf("%s: left with siglongjmp: %s, SIGUSR1 blocked afterwards: %s, next read got %zd bytes '%s'\n",
         kName[kind], jumped ? "yes" : "no", blocked ? "yes" : "no", n, buf);
  fflush(stdout);
  finished[kind] = 1;
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  for (long k = 0; k < kKinds; k++) {
    if (pipe(pipes[k]) != 0) return 1;
    pthread_t t;
    pthread_create(&t, NULL, thread_main, (void*)k);
    while (!waiting[k]) usleep(1000);
    usleep(20000);  // very likely in the call by now
    // Again and again until it has jumped, in case the first signal came
    // before the call started (the handler then jumps out of the call setup).
    while (!finished[k]) {
      pthread_kill(t, SIGUSR1);
      usleep(20000);
    }
    pthread_join(t, NULL);
  }
  return 0;
}
