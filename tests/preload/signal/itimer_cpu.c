// setitimer(ITIMER_REAL) and alarm() interrupt a thread that computes
// without ever making a call: SIGALRM's handler runs in that thread (the
// only one not blocking SIGALRM), between two instructions of its loop.
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

enum { kTicks = 10 };

static pthread_t cpu_thread;
static volatile sig_atomic_t ticks;
static volatile sig_atomic_t wrong_thread;
static volatile sig_atomic_t phase;  // 1: interval timer, 2: alarm()
static volatile sig_atomic_t alarm_base;
static sem_t phase_done;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int finished;

static void on_alrm(int sig) {
  (void)sig;
  if (!pthread_equal(pthread_self(), cpu_thread)) wrong_thread = 1;
  ticks++;
}

static void* compute(void* arg) {
  (void)arg;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);
  pthread_sigmask(SIG_UNBLOCK, &s, NULL);
  unsigned long work = 0;
  while (phase != 1) work++;
  while (ticks < kTicks) work++;
  sem_post(&phase_done);
  while (phase != 2) work++;
  while (ticks <= alarm_base) work++;
  sem_post(&phase_done);
  return (void*)(work > 0 ? 1L : 0L);
}

// Another thread, parked the whole time with SIGALRM blocked.
static void* bystander(void* arg) {
  (void)arg;
  pthread_mutex_lock(&lock);
  while (!finished) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alrm;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  sem_init(&phase_done, 0, 0);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &s, NULL);  // inherited by both threads; the computing one unblocks it

  pthread_t other;
  pthread_create(&other, NULL, bystander, NULL);
  pthread_create(&cpu_thread, NULL, compute, NULL);

  struct itimerval it = {{0, 5000}, {0, 5000}};
  setitimer(ITIMER_REAL, &it, NULL);
  phase = 1;
  while (sem_wait(&phase_done) != 0) {
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  printf("interval timer: at least %d ticks handled while computing\n", kTicks);

  usleep(50000);  // a tick generated before the timer stopped has been handled by now (or is lost)
  alarm_base = ticks;
  phase = 2;
  alarm(1);
  while (sem_wait(&phase_done) != 0) {
  }
  printf("alarm: handled while computing\n");

  void* r;
  pthread_join(cpu_thread, &r);
  pthread_mutex_lock(&lock);
  finished = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  pthread_join(other, NULL);
  printf("every handler ran in the computing thread: %s\n", wrong_thread ? "no" : "yes");
  return 0;
}
