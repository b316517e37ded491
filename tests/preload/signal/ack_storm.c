// Two sender threads keep one thread inside a call under signals: each
// sender sends its signal (SIGUSR1 or SIGUSR2, to the process with kill(),
// or to the thread with pthread_kill()), waits on a semaphore that the
// handler posts, and sends again, while the worker thread - the only one
// that does not block the two signals - makes the call in a loop. After a
// while main stops everyone at once. No call may fail with EINTR, and every
// signal sent must be handled exactly once: a process-directed signal the
// worker had not handled when it ended goes to the next thread that takes
// it (main, once it unblocks the signals), never nowhere, so the senders
// always finish.
//
//   ack_storm CALL|all process|thread      CALL: one of the names in kCalls
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;
static int to_process;
static pthread_t worker_thread;
static sem_t acked[2];
static volatile sig_atomic_t handled[2];
static long sent[2];
static sigset_t both;
static const char* call;
static int eintr, errors;

static void on_signal(int sig) {
  int k = sig == SIGUSR1 ? 0 : 1;
  handled[k]++;
  sem_post(&acked[k]);
}

static void* sender(void* arg) {
  int k = (int)(long)arg;
  int sig = k == 0 ? SIGUSR1 : SIGUSR2;
  while (!stop) {
    while (sem_wait(&acked[k]) != 0) {
    }
    if (stop) break;
    sent[k]++;
    int e = to_process ? (kill(getpid(), sig) ? errno : 0) : pthread_kill(worker_thread, sig);
    if (e) {
      printf("  FAIL: sending: %s\n", strerror(e));
      errors++;
      break;
    }
  }
  return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static sem_t sem;

// Keeps the condition waiter going and takes the lock now and then.
static void* partner(void* arg) {
  (void)arg;
  const struct timespec t = {0, 50 * 1000};
  while (!stop) {
    pthread_mutex_lock(&mu);
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_rwlock_wrlock(&rw);
    pthread_rwlock_unlock(&rw);
    sem_post(&sem);
    nanosleep(&t, NULL);
  }
  pthread_mutex_lock(&mu);
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  sem_post(&sem);
  return NULL;
}

static void no_op(void) {}

static void check(const char* what, int r) {
  if (r == EINTR) {
    if (eintr++ == 0) printf("  FAIL: %s returned EINTR\n", what);
  } else if (r != 0) {
    if (errors++ == 0) printf("  FAIL: %s: %s\n", what, strerror(r));
  }
}

static void* worker(void* arg) {
  (void)arg;
  pthread_sigmask(SIG_UNBLOCK, &both, NULL);
  while (!stop) {
    if (!strcmp(call, "mutex_trylock")) {
      int r = pthread_mutex_trylock(&mu);
      if (r == 0) r = pthread_mutex_unlock(&mu);
      else if (r == EBUSY) r = 0;
      check("pthread_mutex_trylock", r);
    } else if (!strcmp(call, "mutex_lock")) {
      check("pthread_mutex_lock", pthread_mutex_lock(&mu));
      pthread_mutex_unlock(&mu);
    } else if (!strcmp(call, "once")) {
      pthread_once_t once = PTHREAD_ONCE_INIT;
      check("pthread_once", pthread_once(&once, no_op));
    } else if (!strcmp(call, "sigmask")) {
      check("pthread_sigmask", pthread_sigmask(SIG_BLOCK, &both, NULL));
      check("pthread_sigmask", pthread_sigmask(SIG_UNBLOCK, &both, NULL));
    } else if (!strcmp(call, "cond_wait") || !strcmp(call, "cond_timedwait")) {
      pthread_mutex_lock(&mu);
      if (!stop) {
        if (call[4] == 'w') {
          check("pthread_cond_wait", pthread_cond_wait(&cv, &mu));
        } else {
          struct timespec ts;
          clock_gettime(CLOCK_REALTIME, &ts);
          ts.tv_sec += 10;
          check("pthread_cond_timedwait", pthread_cond_timedwait(&cv, &mu, &ts));
        }
      }
      pthread_mutex_unlock(&mu);
    } else if (!strcmp(call, "cond_signal")) {
      pthread_mutex_lock(&mu);
      check("pthread_cond_signal", pthread_cond_signal(&cv));
      pthread_mutex_unlock(&mu);
    } else if (!strcmp(call, "rwlock")) {
      check("pthread_rwlock_rdlock", pthread_rwlock_rdlock(&rw));
      pthread_rwlock_unlock(&rw);
    } else if (!strcmp(call, "sem_trywait")) {
      if (sem_trywait(&sem) != 0 && errno != EAGAIN) check("sem_trywait", errno);
    } else {
      printf("unknown call %s\n", call);
      exit(2);
    }
  }
  return NULL;
}

static const char* const kCalls[] = {"mutex_trylock", "mutex_lock", "once",   "sigmask",    "cond_wait",
                                     "cond_timedwait", "cond_signal", "rwlock", "sem_trywait"};

static void run(const char* c) {
  call = c;
  stop = 0;
  eintr = errors = 0;
  for (int k = 0; k < 2; k++) {
    sem_init(&acked[k], 0, 1);
    handled[k] = 0;
    sent[k] = 0;
  }
  sem_init(&sem, 0, 0);
  pthread_sigmask(SIG_BLOCK, &both, NULL);  // every thread but the worker blocks them
  pthread_t s[2], p;
  pthread_create(&worker_thread, NULL, worker, NULL);
  pthread_create(&p, NULL, partner, NULL);
  for (long k = 0; k < 2; k++) pthread_create(&s[k], NULL, sender, (void*)k);
  // At least 300 ms, and until each sender had 50 signals handled (a loaded
  // machine may hold the threads back): every run is a storm.
  const struct timespec tick = {0, 10 * 1000 * 1000};
  for (int t = 0; t < 30 || ((handled[0] < 50 || handled[1] < 50) && t < 3000); t++) nanosleep(&tick, NULL);
  stop = 1;
  pthread_join(worker_thread, NULL);
  pthread_join(p, NULL);
  // A process-directed signal sent while the worker was ending is main's now.
  pthread_sigmask(SIG_UNBLOCK, &both, NULL);
  for (int k = 0; k < 2; k++) pthread_join(s[k], NULL);
  sched_yield();
  int counts_ok = 1;
  for (int k = 0; k < 2; k++) {
    // To the process: each signal handled once. To the thread: the last one
    // may have found the worker gone.
    if (to_process ? handled[k] != sent[k] : (handled[k] > sent[k] || handled[k] < sent[k] - 1)) counts_ok = 0;
    if (sent[k] < 50) counts_ok = 0;
  }
  printf("%s: %s\n", c, !eintr && !errors && counts_ok ? "ok" : "FAILED");
  if (!counts_ok) printf("  handled %d of %ld and %d of %ld\n", (int)handled[0], sent[0], (int)handled[1], sent[1]);
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s CALL|all process|thread\n", argv[0]);
    return 2;
  }
  to_process = !strcmp(argv[2], "process");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  sigemptyset(&both);
  sigaddset(&both, SIGUSR1);
  sigaddset(&both, SIGUSR2);
  for (size_t k = 0; k < sizeof kCalls / sizeof *kCalls; k++) {
    if (strcmp(argv[1], "all") && strcmp(argv[1], kCalls[k])) continue;
    run(kCalls[k]);
  }
  return 0;
}
