/* Unnamed semaphores: counting, trywait EAGAIN, timedwait/clockwait
 * timeouts on both clocks and their EINVAL cases, sem_init EINVAL, sem_post
 * EOVERFLOW, getvalue, a process-shared semaphore, and sem_wait failing
 * with EINTR when a handler installed without SA_RESTART runs for the
 * waiting thread (pthread_kill, and a timer signal via alarm-style
 * setitimer directed at the only thread that does not block it); with
 * SA_RESTART the untimed wait goes on. */
#include "common.h"

#include <semaphore.h>
#include <signal.h>
#include <sys/time.h>

static int sem_errno(int r) { return r == 0 ? 0 : errno; }

static void basics(void) {
  sem_t s;
  CHECK("sem_init value > SEM_VALUE_MAX", sem_errno(sem_init(&s, 0, (unsigned)SEM_VALUE_MAX + 1)), EINVAL);
  CHECK("sem_init 2", sem_errno(sem_init(&s, 0, 2)), 0);
  int v = -1;
  sem_getvalue(&s, &v);
  printf("value %d\n", v);
  CHECK("sem_wait", sem_errno(sem_wait(&s)), 0);
  CHECK("sem_trywait", sem_errno(sem_trywait(&s)), 0);
  CHECK("sem_trywait on 0", sem_errno(sem_trywait(&s)), EAGAIN);
  struct timespec bad = {0, 1000000000};
  CHECK("sem_timedwait bad tv_nsec", sem_errno(sem_timedwait(&s, &bad)), EINVAL);
  struct timespec ok = in_ms(CLOCK_MONOTONIC, 10);
  CHECK("sem_clockwait unsupported clock", sem_errno(sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &ok)), EINVAL);
  struct timespec past = {-1, 0};
  CHECK("sem_timedwait tv_sec < 0", sem_errno(sem_timedwait(&s, &past)), ETIMEDOUT);
  struct timespec ts = in_ms(CLOCK_REALTIME, 40);
  int r = sem_errno(sem_timedwait(&s, &ts));
  CHECK("sem_timedwait (realtime) times out", r == ETIMEDOUT && !reached(CLOCK_REALTIME, &ts) ? -100 : r, ETIMEDOUT);
  ts = in_ms(CLOCK_MONOTONIC, 40);
  r = sem_errno(sem_clockwait(&s, CLOCK_MONOTONIC, &ts));
  CHECK("sem_clockwait (monotonic) times out", r == ETIMEDOUT && !reached(CLOCK_MONOTONIC, &ts) ? -100 : r, ETIMEDOUT);
  CHECK("sem_post", sem_errno(sem_post(&s)), 0);
  sem_getvalue(&s, &v);
  printf("value %d\n", v);
  CHECK("sem_destroy", sem_errno(sem_destroy(&s)), 0);
  CHECK("sem_init SEM_VALUE_MAX", sem_errno(sem_init(&s, 0, SEM_VALUE_MAX)), 0);
  CHECK("sem_post at SEM_VALUE_MAX", sem_errno(sem_post(&s)), EOVERFLOW);
}

/* A waiter woken by posts from several threads. */
static sem_t relay;
static void* poster(void* unused) {
  (void)unused;
  for (int i = 0; i < 1000; i++) sem_post(&relay);
  return NULL;
}
static void* taker(void* unused) {
  (void)unused;
  for (int i = 0; i < 1000; i++) {
    if (i % 2) {
      struct timespec ts = in_ms(CLOCK_REALTIME, 60000);
      if (sem_timedwait(&relay, &ts) != 0) abort();
    } else {
      sem_wait(&relay);
    }
  }
  return NULL;
}
static void relay_test(void) {
  sem_init(&relay, 0, 0);
  pthread_t p[4], t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, taker, NULL);
  for (int i = 0; i < 4; i++) pthread_create(&p[i], NULL, poster, NULL);
  for (int i = 0; i < 4; i++) {
    pthread_join(p[i], NULL);
    pthread_join(t[i], NULL);
  }
  int v = -1;
  sem_getvalue(&relay, &v);
  printf("relay: 4000 posts, 4000 waits, value left %d\n", v);
}

static void shared(void) {
  sem_t s;
  CHECK("process-shared sem_init", sem_errno(sem_init(&s, 1, 0)), 0);
  CHECK("process-shared sem_post", sem_errno(sem_post(&s)), 0);
  CHECK("process-shared sem_wait", sem_errno(sem_wait(&s)), 0);
  struct timespec ts = in_ms(CLOCK_MONOTONIC, 20);
  CHECK("process-shared sem_clockwait times out", sem_errno(sem_clockwait(&s, CLOCK_MONOTONIC, &ts)), ETIMEDOUT);
}

/* EINTR */
static sem_t never;
static volatile sig_atomic_t handled;
static void on_signal(int sig) {
  (void)sig;
  handled++;
}
static void install(int sig, int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = flags;
  sigaction(sig, &sa, NULL);
}

struct wait_result {
  volatile int done;
  int err;
  int timed;
};
static void* interrupted_waiter(void* p) {
  struct wait_result* w = p;
  int r;
  if (w->timed) {
    struct timespec ts = in_ms(CLOCK_REALTIME, 60000);
    r = sem_timedwait(&never, &ts);
  } else {
    r = sem_wait(&never);
  }
  w->err = r == 0 ? 0 : errno;
  __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Signals the thread until its wait ends: a signal that lands just before
 * the thread blocks runs its handler without interrupting anything. */
static int interrupt_with_pthread_kill(int timed, int flags) {
  install(SIGUSR1, flags);
  struct wait_result w = {0, -1, timed};
  pthread_t t;
  pthread_create(&t, NULL, interrupted_waiter, &w);
  for (int i = 0; i < 2000 && !__atomic_load_n(&w.done, __ATOMIC_ACQUIRE); i++) {
    pthread_kill(t, SIGUSR1);
    usleep(5000);
  }
  if (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE)) sem_post(&never);  /* kept waiting */
  pthread_join(t, NULL);
  return w.err;
}

static void eintr(void) {
  sem_init(&never, 0, 0);
  CHECK("sem_wait, pthread_kill, no SA_RESTART", interrupt_with_pthread_kill(0, 0), EINTR);
  CHECK("sem_timedwait, pthread_kill, no SA_RESTART", interrupt_with_pthread_kill(1, 0), EINTR);
  CHECK("sem_timedwait, pthread_kill, SA_RESTART", interrupt_with_pthread_kill(1, SA_RESTART), EINTR);
  /* With SA_RESTART the untimed wait goes on: stop after a few handlers
   * have run and post. */
  install(SIGUSR1, SA_RESTART);
  struct wait_result w = {0, -1, 0};
  pthread_t t;
  handled = 0;
  pthread_create(&t, NULL, interrupted_waiter, &w);
  while (handled < 5) {
    pthread_kill(t, SIGUSR1);
    usleep(5000);
  }
  int waiting_through_handlers = !__atomic_load_n(&w.done, __ATOMIC_ACQUIRE);
  sem_post(&never);
  pthread_join(t, NULL);
  printf("sem_wait, SA_RESTART: kept waiting through handlers %d, then %s\n", waiting_through_handlers,
         ename(w.err));

  /* A process-directed timer signal: every thread but the waiter blocks it. */
  install(SIGALRM, 0);
  sigset_t alrm;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  struct wait_result a = {0, -1, 0};
  pthread_create(&t, NULL, interrupted_waiter, &a);  /* created with SIGALRM unblocked */
  pthread_sigmask(SIG_BLOCK, &alrm, NULL);
  struct itimerval it = {{0, 20000}, {0, 20000}};  /* every 20 ms until the wait ends */
  setitimer(ITIMER_REAL, &it, NULL);
  for (int i = 0; i < 500 && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE); i++) usleep(10000);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  if (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE)) sem_post(&never);
  pthread_join(t, NULL);
  CHECK("sem_wait, timer SIGALRM, no SA_RESTART", a.err, EINTR);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  basics();
  relay_test();
  shared();
  eintr();
  return 0;
}
