// I/O, timers and joins keep moving behind a crowd of runnable threads.
// 200 threads call sched_yield in a loop, so the run queue is never empty;
// meanwhile 8 pairs of threads play ping-pong over socketpairs, 4 threads
// sleep in 1 ms steps and one reads a pipe fed by another. The epoll engine
// reaps less often while the queue is long (round_reap in
// runtime/scheduler.cpp): a reap must still come at least once per pass
// through the queue, so every round trip completes and nothing waits for the
// yielders to stop. Output is counts only, the same plain and preloaded.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kYielders = 200, kPairs = 8, kRoundTrips = 2000, kSleepers = 4, kSleeps = 50, kPipeMessages = 500 };

static atomic_int stop;
static atomic_long yields;

static void die(const char* what) {
  fprintf(stderr, "%s: %s\n", what, strerror(errno));
  exit(1);
}

static void* yielder(void* arg) {
  (void)arg;
  long n = 0;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    sched_yield();
    n++;
  }
  atomic_fetch_add(&yields, n);
  return NULL;
}

struct player {
  int fd;
  int serve;  // 1: answers, 0: asks
  long done;
};

static void* play(void* arg) {
  struct player* p = arg;
  char b[16];
  for (int i = 0; i < kRoundTrips; i++) {
    if (!p->serve) {
      snprintf(b, sizeof b, "%09d", i);
      if (write(p->fd, b, 9) != 9) die("write");
    }
    size_t got = 0;
    while (got < 9) {
      ssize_t r = read(p->fd, b + got, 9 - got);
      if (r <= 0) die("read");
      got += (size_t)r;
    }
    if (atoi(b) != i) {
      fprintf(stderr, "pair out of step: %d != %d\n", atoi(b), i);
      exit(1);
    }
    if (p->serve && write(p->fd, b, 9) != 9) die("write");
    p->done++;
  }
  return NULL;
}

static void* sleeper(void* arg) {
  long* done = arg;
  struct timespec ms = {0, 1000000};
  for (int i = 0; i < kSleeps; i++) {
    if (nanosleep(&ms, NULL) != 0) die("nanosleep");
    ++*done;
  }
  return NULL;
}

static int pipe_fds[2];

static void* pipe_writer(void* arg) {
  (void)arg;
  for (int i = 0; i < kPipeMessages; i++) {
    unsigned char c = (unsigned char)i;
    if (write(pipe_fds[1], &c, 1) != 1) die("pipe write");
    if (i % 50 == 0) usleep(200);
  }
  close(pipe_fds[1]);
  return NULL;
}

static void* pipe_reader(void* arg) {
  long* sum = arg;
  unsigned char c;
  ssize_t r;
  while ((r = read(pipe_fds[0], &c, 1)) == 1) *sum += c;
  if (r < 0) die("pipe read");
  return NULL;
}

int main(void) {
  pthread_t ys[kYielders], ps[2 * kPairs], ss[kSleepers], pw, pr;
  struct player pl[2 * kPairs];
  long slept[kSleepers] = {0}, pipe_sum = 0;
  for (int i = 0; i < kYielders; i++)
    if (pthread_create(&ys[i], NULL, yielder, NULL)) die("pthread_create");
  for (int i = 0; i < kPairs; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) die("socketpair");
    pl[2 * i] = (struct player){sv[0], 0, 0};
    pl[2 * i + 1] = (struct player){sv[1], 1, 0};
  }
  for (int i = 0; i < 2 * kPairs; i++)
    if (pthread_create(&ps[i], NULL, play, &pl[i])) die("pthread_create");
  for (int i = 0; i < kSleepers; i++)
    if (pthread_create(&ss[i], NULL, sleeper, &slept[i])) die("pthread_create");
  if (pipe(pipe_fds)) die("pipe");
  if (pthread_create(&pr, NULL, pipe_reader, &pipe_sum) || pthread_create(&pw, NULL, pipe_writer, NULL))
    die("pthread_create");

  // Everything but the yielders finishes while they still yield (they stop
  // only after these joins; starved I/O shows as the test's timeout).
  long trips = 0, sleeps = 0;
  for (int i = 0; i < 2 * kPairs; i++) {
    pthread_join(ps[i], NULL);
    trips += pl[i].done;
  }
  for (int i = 0; i < kSleepers; i++) {
    pthread_join(ss[i], NULL);
    sleeps += slept[i];
  }
  pthread_join(pw, NULL);
  pthread_join(pr, NULL);
  atomic_store(&stop, 1);
  for (int i = 0; i < kYielders; i++) pthread_join(ys[i], NULL);

  long expect_sum = 0;
  for (int i = 0; i < kPipeMessages; i++) expect_sum += (unsigned char)i;
  printf("round trips: %ld of %d\n", trips, 2 * kPairs * kRoundTrips);
  printf("sleeps: %ld of %d\n", sleeps, kSleepers * kSleeps);
  printf("pipe bytes summed: %s\n", pipe_sum == expect_sum ? "all" : "WRONG");
  printf("yielders yielded: %s\n", atomic_load(&yields) > kYielders ? "yes" : "no");
  return 0;
}
