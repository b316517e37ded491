// An interval timer's SIGALRM interrupts blocking calls while a handler is
// installed; then the program stops the timer and puts SIG_DFL back, as
// CPython's _test_eintr does in every test's tearDown. Natively the process
// survives: a SIGALRM the timer raised before setitimer(0) was delivered to
// the one thread that does not block it, with the handler, before that
// thread's next instruction. The library must not keep such a signal past
// the disposition change and then apply SIG_DFL to it (the process died of
// SIGALRM in 1-3 of 5 runs of _test_eintr).
//
// Two child processes that compute keep both CPUs of a small machine busy:
// the library's signal thread then wakes late, as on a loaded machine (where
// the CPython test failed).
//
// A watchdog thread that blocks every signal starts the runtime (CPython's
// faulthandler.dump_traceback_later does the same) and leaves main the only
// thread that takes SIGALRM. Each round: handler, a 1 ms interval timer, a
// blocking call (read on an empty pipe, nanosleep, lockf on a file a child
// holds, open of a FIFO nobody opens, sigsuspend) ended by the signal, up to
// 2 ms of quick calls (dup, close, fcntl) while the timer keeps firing, setitimer(0), SIG_DFL. Prints the calls that
// ended with EINTR and the rounds; the handler counts are timing and are
// not printed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_alarm(int sig) {
  (void)sig;
  handled++;
}

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static int stop;

static void* watchdog(void* arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  pthread_mutex_lock(&stop_lock);
  while (!stop) pthread_cond_wait(&stop_cond, &stop_lock);
  pthread_mutex_unlock(&stop_lock);
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Computes and makes calls that take no time (CPython's interpreter between
// two blocking calls: fcntl, dup, close, fstat).
static void busy(double secs, int fd) {
  double end = now() + secs;
  while (now() < end) {
    int d = dup(fd);
    if (d >= 0) close(d);
    (void)fcntl(fd, F_GETFL);
  }
}

static void arm(long usec) {
  struct itimerval it = {{0, usec}, {0, usec}};
  setitimer(ITIMER_REAL, &it, NULL);
}

static void disarm_and_default(void) {
  struct itimerval zero = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &zero, NULL);
  signal(SIGALRM, SIG_DFL);
}

static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;  // no SA_RESTART: the blocking calls end with EINTR
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
}

enum { kRead, kSleep, kLockf, kFifo, kSuspend, kCalls };
static const char* const names[kCalls] = {"read", "nanosleep", "lockf", "fifo_open", "sigsuspend"};

int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 1000;
  pthread_t w;
  if (pthread_create(&w, NULL, watchdog, NULL) != 0) return 2;

  pid_t spinners[2];
  for (int k = 0; k < 2; ++k) {
    spinners[k] = fork();
    if (spinners[k] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(1);
      double end = now() + 60;
      while (now() < end) {
      }
      _exit(0);
    }
  }

  char dir[] = "/tmp/alarm_default.XXXXXX";
  if (!mkdtemp(dir)) return 2;
  char lockpath[64], fifopath[64];
  snprintf(lockpath, sizeof lockpath, "%s/lock", dir);
  snprintf(fifopath, sizeof fifopath, "%s/fifo", dir);
  int lfd = open(lockpath, O_RDWR | O_CREAT, 0600);
  if (lfd < 0 || mkfifo(fifopath, 0600) != 0) return 2;
  int ready[2], pipefd[2];
  if (pipe(ready) != 0 || pipe(pipefd) != 0) return 2;
  pid_t holder = fork();
  if (holder == 0) {
    // Holds the lock until killed (or its parent dies).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(1);
    int fd = open(lockpath, O_RDWR);
    if (fd < 0 || lockf(fd, F_LOCK, 0) != 0) _exit(3);
    if (write(ready[1], "x", 1) != 1) _exit(3);
    for (;;) pause();
  }
  char c;
  if (read(ready[0], &c, 1) != 1) return 2;

  int eintr[kCalls] = {0}, other[kCalls] = {0};
  for (int i = 0; i < rounds; ++i) {
    int call = i % kCalls;
    install();
    arm(1000);
    int r = 0;
    errno = 0;
    switch (call) {
      case kRead:
        r = (int)read(pipefd[0], &c, 1);
        break;
      case kSleep: {
        struct timespec ts = {5, 0};
        r = nanosleep(&ts, NULL);
        break;
      }
      case kLockf:
        r = lockf(lfd, F_LOCK, 0);
        break;
      case kFifo:
        r = open(fifopath, O_WRONLY);
        if (r >= 0) close(r);
        break;
      case kSuspend: {
        sigset_t none;
        sigemptyset(&none);
        r = sigsuspend(&none);
        break;
      }
    }
    if (r == -1 && errno == EINTR) {
      eintr[call]++;
    } else {
      other[call]++;
    }
    // The timer keeps firing while the program goes on.
    busy((i % 7) * 0.0003, pipefd[0]);
    disarm_and_default();
  }
  for (int k = 0; k < kCalls; ++k) printf("%s: %d EINTR, %d other\n", names[k], eintr[k], other[k]);
  printf("rounds: %d, survived\n", rounds);
  fflush(stdout);

  kill(holder, SIGKILL);
  waitpid(holder, NULL, 0);
  for (int k = 0; k < 2; ++k) {
    kill(spinners[k], SIGKILL);
    waitpid(spinners[k], NULL, 0);
  }
  pthread_mutex_lock(&stop_lock);
  stop = 1;
  pthread_cond_signal(&stop_cond);
  pthread_mutex_unlock(&stop_lock);
  pthread_join(w, NULL);
  unlink(fifopath);
  unlink(lockpath);
  rmdir(dir);
  return 0;
}
