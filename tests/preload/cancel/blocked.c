/* A thread blocked in each kind of cancellation point is cancelled: the
 * blocking call ends, the cleanup handler runs (a condition waiter's with the
 * mutex held again), and pthread_join reports PTHREAD_CANCELED. */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/socket.h>

static void say(void* what) {
  printf("  cleanup: %s\n", (const char*)what);
  fflush(stdout);
}

static int pipefd[2];
static void* in_read(void* arg) {
  char c;
  pthread_cleanup_push(say, "read");
  ssize_t n = read(pipefd[0], &c, 1);
  printf("read returned %zd\n", n);
  pthread_cleanup_pop(0);
  return NULL;
}

static int sv[2];
static void* in_recv(void* arg) {
  char c;
  pthread_cleanup_push(say, "recv");
  ssize_t n = recv(sv[0], &c, 1, 0);
  printf("recv returned %zd\n", n);
  pthread_cleanup_pop(0);
  return NULL;
}

static int listener;
static void* in_accept(void* arg) {
  pthread_cleanup_push(say, "accept");
  int fd = accept(listener, NULL, NULL);
  printf("accept returned %d\n", fd);
  pthread_cleanup_pop(0);
  return NULL;
}

static void* in_nanosleep(void* arg) {
  pthread_cleanup_push(say, "nanosleep");
  struct timespec ts = {1000, 0};
  int r = nanosleep(&ts, NULL);
  printf("nanosleep returned %d\n", r);
  pthread_cleanup_pop(0);
  return NULL;
}

static void* in_poll(void* arg) {
  pthread_cleanup_push(say, "poll");
  struct pollfd p = {pipefd[0], POLLIN, 0};
  int r = poll(&p, 1, -1);
  printf("poll returned %d\n", r);
  pthread_cleanup_pop(0);
  return NULL;
}

static pthread_mutex_t mu;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void cond_cleanup(void* arg) {
  /* POSIX: the mutex is held again when the handlers run. An error-checking
   * mutex reports EPERM if we do not own it. */
  int e = pthread_mutex_unlock(&mu);
  printf("  cleanup: cond_wait, unlock -> %s\n", e == 0 ? "0 (mutex was held)" : strerror(e));
  fflush(stdout);
}
static void* in_cond_wait(void* arg) {
  pthread_mutex_lock(&mu);
  pthread_cleanup_push(cond_cleanup, NULL);
  for (;;) pthread_cond_wait(&cv, &mu);
  pthread_cleanup_pop(0);
  return NULL;
}
static void* in_cond_timedwait(void* arg) {
  pthread_mutex_lock(&mu);
  pthread_cleanup_push(cond_cleanup, NULL);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 1000;
  for (;;) pthread_cond_timedwait(&cv, &mu, &ts);
  pthread_cleanup_pop(0);
  return NULL;
}

static sem_t sem;
static void* in_sem_wait(void* arg) {
  pthread_cleanup_push(say, "sem_wait");
  int r = sem_wait(&sem);
  printf("sem_wait returned %d\n", r);
  pthread_cleanup_pop(0);
  return NULL;
}

static pthread_t forever;
static void* in_join(void* arg) {
  pthread_cleanup_push(say, "pthread_join");
  int r = pthread_join(forever, NULL);
  printf("pthread_join returned %d\n", r);
  pthread_cleanup_pop(0);
  return NULL;
}

static void run(const char* name, void* (*fn)(void*)) {
  pthread_t t;
  CHECK(pthread_create(&t, NULL, fn, NULL) == 0);
  settle();
  cancel_and_report(name, t);
}

int main(void) {
  CHECK(pipe(pipefd) == 0);
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  CHECK(bind(listener, (struct sockaddr*)&a, sizeof a) == 0 && listen(listener, 4) == 0);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&mu, &ma);
  sem_init(&sem, 0, 0);

  run("read", in_read);
  run("recv", in_recv);
  run("accept", in_accept);
  run("nanosleep", in_nanosleep);
  run("poll", in_poll);
  run("cond_wait", in_cond_wait);
  run("cond_timedwait", in_cond_timedwait);
  run("sem_wait", in_sem_wait);

  /* The mutex is free again after each condition waiter's cleanup. */
  printf("mutex trylock after: %d\n", pthread_mutex_trylock(&mu));
  pthread_mutex_unlock(&mu);

  /* A cancelled joiner leaves its target joinable. */
  CHECK(pthread_create(&forever, NULL, in_read, NULL) == 0);
  run("pthread_join", in_join);
  cancel_and_report("target", forever);

  /* The pipe and socket still work: nothing was left queued on them. */
  CHECK(write(pipefd[1], "x", 1) == 1);
  char c = 0;
  CHECK(read(pipefd[0], &c, 1) == 1);
  CHECK(send(sv[1], "y", 1, 0) == 1);
  CHECK(recv(sv[0], &c, 1, 0) == 1);
  printf("pipe and socket still work: %c\n", c);
  return 0;
}
