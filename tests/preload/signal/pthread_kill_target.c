// pthread_kill to one thread runs the handler in that very thread, whatever
// it is doing: parked on a mutex, parked in a condition wait, sleeping, or
// computing; and in main while it waits in pthread_join. Inside the handler pthread_self() is the target, and a
// thread-local variable the handler writes is the target's own.
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { kMutex, kCond, kSleep, kRunning, kTargets };
static const char* const kHow[kTargets] = {"parked on a mutex", "in a condition wait", "sleeping", "computing"};

static pthread_t targets[kTargets];
static sem_t handled_sem;
static pthread_t last_self;  // pthread_self() in the last handler run

static __thread volatile sig_atomic_t tls_hits;   // written by the handler
static __thread pthread_t tls_self_in_handler;    // pthread_self() the handler saw

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;  // main holds it while the mutex target waits
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static volatile int released;  // the condition and sleep targets may finish

static void on_usr1(int sig) {
  (void)sig;
  tls_hits++;
  tls_self_in_handler = pthread_self();
  last_self = pthread_self();
  sem_post(&handled_sem);
}

struct Report {
  int hits;
  int self_matched;
};

static void* target(void* arg) {
  long kind = (long)arg;
  switch (kind) {
    case kMutex:
      pthread_mutex_lock(&held);
      pthread_mutex_unlock(&held);
      break;
    case kCond:
      pthread_mutex_lock(&lock);
      while (!released) pthread_cond_wait(&cond, &lock);
      pthread_mutex_unlock(&lock);
      break;
    case kSleep:
      while (!released) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
      }
      break;
    case kRunning:
      while (!tls_hits) {
      }
      break;
  }
  static struct Report reports[kTargets];
  reports[kind].hits = tls_hits;
  reports[kind].self_matched = pthread_equal(tls_self_in_handler, pthread_self());
  return &reports[kind];
}

static pthread_t main_thread;

static void* kill_main(void* arg) {
  (void)arg;
  usleep(20000);  // main very likely waits in pthread_join by now
  pthread_kill(main_thread, SIGUSR1);
  while (sem_wait(&handled_sem) != 0) {
  }
  return NULL;
}

int main(void) {
  main_thread = pthread_self();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sem_init(&handled_sem, 0, 0);

  pthread_mutex_lock(&held);
  for (long k = 0; k < kTargets; k++) pthread_create(&targets[k], NULL, target, (void*)k);
  usleep(20000);  // every target very likely waits (or computes) by now

  for (int k = 0; k < kTargets; k++) {
    int err = pthread_kill(targets[k], SIGUSR1);
    while (sem_wait(&handled_sem) != 0) {
    }
    printf("%s: pthread_kill %d, handler ran in the target: %s, main's tls untouched: %s\n", kHow[k], err,
           pthread_equal(last_self, targets[k]) ? "yes" : "no", tls_hits == 0 ? "yes" : "no");
  }

  pthread_mutex_unlock(&held);
  pthread_mutex_lock(&lock);
  released = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  for (int k = 0; k < kTargets; k++) {
    struct Report* r;
    pthread_join(targets[k], (void**)&r);
    printf("%s: the target's own tls counted %d handler run(s), pthread_self() in the handler was the target: %s\n",
           kHow[k], r->hits, r->self_matched ? "yes" : "no");
  }

  pthread_t killer;
  pthread_create(&killer, NULL, kill_main, NULL);
  pthread_join(killer, NULL);
  printf("main in pthread_join: handler ran in main: %s, main's tls counted %d, pthread_self() was main: %s\n",
         pthread_equal(last_self, main_thread) ? "yes" : "no", (int)tls_hits,
         pthread_equal(tls_self_in_handler, main_thread) ? "yes" : "no");
  return 0;
}
