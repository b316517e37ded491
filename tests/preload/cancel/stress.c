/* 200 threads blocked in different cancellation points (pipe read, socket
 * recv, nanosleep, condition wait, semaphore wait, poll, pthread_join of
 * another blocked thread, sigwait) are cancelled at the same time by four
 * threads; every one is joined with PTHREAD_CANCELED and ran its cleanup
 * handler exactly once. The test's timeout bounds it: a lost request hangs. */
#include "common.h"

#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

#define N 200
#define KINDS 8

static pthread_t threads[N];
static pthread_t joined[N]; /* kind 6's targets: blocked, cancelled last */
static atomic_int cleanups[KINDS];
static atomic_int started;
static int pipefd[2];
static int sv[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sem_t sem;
static pthread_barrier_t go;
static int mutex_owner_errors;

static void count(void* arg) { atomic_fetch_add(&cleanups[(long)arg], 1); }
static void cond_cleanup(void* arg) {
  if (pthread_mutex_unlock(&mu) != 0) mutex_owner_errors++;
  count(arg);
}

static void* blocked(void* arg) {
  long i = (long)arg;
  long kind = i % KINDS;
  char c;
  pthread_cleanup_push(count, (void*)kind);
  atomic_fetch_add(&started, 1);
  switch (kind) {
    case 0: if (read(pipefd[0], &c, 1) < 0) abort(); break;
    case 1: recv(sv[0], &c, 1, 0); break;
    case 2: {
      struct timespec ts = {1000, 0};
      nanosleep(&ts, NULL);
      break;
    }
    case 3: { /* two handlers: counted twice */
      pthread_mutex_lock(&mu);
      pthread_cleanup_push(cond_cleanup, (void*)kind);
      for (;;) pthread_cond_wait(&cv, &mu);
      pthread_cleanup_pop(0);
      break;
    }
    case 4: sem_wait(&sem); break;
    case 5: {
      struct pollfd p = {pipefd[0], POLLIN, 0};
      poll(&p, 1, -1);
      break;
    }
    case 6: pthread_join(joined[i], NULL); break; /* a thread that is itself blocked */
    case 7: {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGUSR1);
      int sig;
      sigwait(&s, &sig);
      break;
    }
  }
  printf("not reached: kind %ld\n", kind);
  pthread_cleanup_pop(0);
  return NULL;
}

static void* forever(void* arg) {
  char c;
  if (read(pipefd[0], &c, 1) < 0) abort();
  return NULL;
}

static void* canceller(void* arg) {
  long k = (long)arg;
  pthread_barrier_wait(&go);
  for (long i = k; i < N; i += 4) pthread_cancel(threads[i]);
  return NULL;
}

int main(void) {
  CHECK(pipe(pipefd) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  sem_init(&sem, 0, 0);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, NULL); /* inherited: sigwait needs it blocked */
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 256 * 1024);
  for (long i = 6; i < N; i += KINDS) CHECK(pthread_create(&joined[i], &a, forever, NULL) == 0);
  for (long i = 0; i < N; ++i) CHECK(pthread_create(&threads[i], &a, blocked, (void*)i) == 0);
  while (atomic_load(&started) < N) settle();
  settle();
  pthread_barrier_init(&go, NULL, 5);
  pthread_t c[4];
  for (long k = 0; k < 4; ++k) CHECK(pthread_create(&c[k], NULL, canceller, (void*)k) == 0);
  pthread_barrier_wait(&go);
  for (int k = 0; k < 4; ++k) pthread_join(c[k], NULL);
  int canceled = 0;
  for (int i = 0; i < N; ++i) {
    void* r = NULL;
    CHECK(pthread_join(threads[i], &r) == 0);
    if (r == PTHREAD_CANCELED) canceled++;
  }
  printf("cancelled %d of %d\n", canceled, N);
  /* A cancelled joiner leaves its target joinable. */
  int targets = 0;
  for (int i = 6; i < N; i += KINDS) {
    void* r = NULL;
    pthread_cancel(joined[i]);
    CHECK(pthread_join(joined[i], &r) == 0);
    if (r == PTHREAD_CANCELED) targets++;
  }
  printf("joiners' targets cancelled and joined afterwards: %d\n", targets);
  for (int k = 0; k < KINDS; ++k) printf("kind %d: %d cleanups\n", k, atomic_load(&cleanups[k]));
  printf("condition cleanups without the mutex: %d\n", mutex_owner_errors);
  /* Nothing was left behind on the objects. */
  CHECK(write(pipefd[1], "x", 1) == 1);
  char ch;
  CHECK(read(pipefd[0], &ch, 1) == 1);
  CHECK(sem_post(&sem) == 0 && sem_trywait(&sem) == 0);
  printf("objects usable\n");
  return 0;
}
