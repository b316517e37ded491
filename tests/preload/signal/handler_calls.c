// Calls made inside a signal handler work: the handler reads one byte from a
// pipe that has data (a blocking read that is ready at once) and reports it
// with write(2), whatever its thread was doing when the signal came: raising
// it itself, computing, waiting on a condition, blocked in read() on an
// empty pipe (SA_RESTART: that read goes on afterwards), or sleeping.
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kRaise, kCompute, kCond, kRead, kSleep, kKinds };
static const char* const kName[kKinds] = {"raising it itself", "computing", "waiting on a condition",
                                          "blocked in read", "sleeping"};

static int ready[2];  // always holds bytes for the handler
static int empty[kKinds][2];
static sem_t handled_sem;
static __thread volatile sig_atomic_t my_handled;
static volatile int released;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static void on_usr1(int sig) {
  (void)sig;
  char c = '?';
  ssize_t n = read(ready[0], &c, 1);
  char msg[] = "  handler: read 1 byte 'x' from a ready pipe\n";
  if (n != 1) *strchr(msg, '1') = '0';
  *strchr(msg, 'x') = c;
  (void)!write(1, msg, sizeof msg - 1);
  my_handled = 1;
  sem_post(&handled_sem);
}

static void* thread_main(void* arg) {
  long kind = (long)arg;
  switch (kind) {
    case kRaise:
      raise(SIGUSR1);
      break;
    case kCompute:
      while (!my_handled) {
      }
      break;
    case kCond:
      pthread_mutex_lock(&lock);
      while (!released) pthread_cond_wait(&cond, &lock);
      pthread_mutex_unlock(&lock);
      break;
    case kRead: {
      char buf[8];
      ssize_t n = read(empty[kind][0], buf, sizeof buf);
      return (void*)(long)n;
    }
    case kSleep:
      while (!released) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
      }
      break;
  }
  return (void*)(long)my_handled;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sem_init(&handled_sem, 0, 0);
  if (pipe(ready) != 0 || write(ready[1], "abcde", 5) != 5) return 1;
  if (pipe(empty[kRead]) != 0) return 1;

  pthread_t t[kKinds];
  for (int k = 0; k < kKinds; k++) {
    printf("thread %s:\n", kName[k]);
    fflush(stdout);
    pthread_create(&t[k], NULL, thread_main, (void*)(long)k);
    if (k != kRaise) {
      usleep(20000);  // very likely in its state by now
      pthread_kill(t[k], SIGUSR1);
    }
    while (sem_wait(&handled_sem) != 0) {
    }
  }
  pthread_mutex_lock(&lock);
  released = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  if (write(empty[kRead][1], "later", 5) != 5) return 1;
  for (int k = 0; k < kKinds; k++) {
    void* r;
    pthread_join(t[k], &r);
    if (k == kRead) printf("the interrupted read went on and returned %ld bytes\n", (long)r);
    else printf("thread %s: handled %ld\n", kName[k], (long)r);
  }
  return 0;
}
