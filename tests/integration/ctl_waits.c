// Threads parked in every wait kind, for unblock-ctl dump (ctl_dump.sh).
//
//   ctl_waits PER_KIND EXPECT_FILE [spin]
//
// Starts PER_KIND threads of each kind, each named after its kind, writes
// one line per thread to EXPECT_FILE: "TID NAME WHAT" where WHAT is the text
// the dump must show for it (state and wait object), prints "ready" and
// waits for a line on stdin. Then it releases every thread, joins them and
// prints what they got: the same output with and without the library, with
// and without dumps. With "spin", one more thread spins on an atomic until
// released (a worker that never comes back to its scheduler).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

enum Kind { kMutex, kCond, kRwlock, kSem, kSleep, kRecv, kAccept, kPoll, kRead, kSigwait, kBarrier, kJoin, kKinds };
static const char* const kNames[kKinds] = {"w-mutex", "w-cond", "w-rwlock", "w-sem", "w-sleep", "w-recv",
                                           "w-accept", "w-poll", "w-read", "w-sigwait", "w-barrier", "w-join"};

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static int g_cond_go = 0;
static pthread_rwlock_t g_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static sem_t g_sem;
static pthread_barrier_t g_barrier;
static int g_listener;
static int g_listen_port;
static int g_pipe[2];
static int g_sleep_pipe[2];
static atomic_int g_spin_stop;
static atomic_int g_started;

struct Job {
  int kind;
  int index;
  int tid;
  int fd;            // recv: this thread's connected socket; poll: first of its 3 pipe read ends
  int fds[3];
  int peer_fd;       // the other end (main writes to it)
  pthread_t join_target;
  long result;
};

static struct Job* g_jobs;
static int g_per_kind;

static void* run(void* arg) {
  struct Job* j = arg;
  pthread_setname_np(pthread_self(), kNames[j->kind]);
  j->tid = (int)syscall(SYS_gettid);
  char c = 0;
  atomic_fetch_add(&g_started, 1);
  switch (j->kind) {
    case kMutex:
      pthread_mutex_lock(&g_mutex);
      j->result = 1;
      pthread_mutex_unlock(&g_mutex);
      break;
    case kCond:
      pthread_mutex_lock(&g_cond_mutex);
      while (!g_cond_go) pthread_cond_wait(&g_cond, &g_cond_mutex);
      pthread_mutex_unlock(&g_cond_mutex);
      j->result = 2;
      break;
    case kRwlock:
      pthread_rwlock_rdlock(&g_rwlock);
      j->result = 3;
      pthread_rwlock_unlock(&g_rwlock);
      break;
    case kSem:
      sem_wait(&g_sem);
      j->result = 4;
      break;
    case kSleep: {
      // Sleeps 1000 s unless woken by the pipe (a poll with a timeout would
      // be a poll; this is a plain sleep, ended by a signal-free trick: main
      // never wakes it, the thread is detached from the result count).
      struct timespec ts = {1000, 0};
      nanosleep(&ts, NULL);
      j->result = 5;
      break;
    }
    case kRecv:
      j->result = recv(j->fd, &c, 1, 0) == 1 ? c : -1;
      break;
    case kAccept: {
      int s = accept(g_listener, NULL, NULL);
      j->result = s >= 0 ? 7 : -1;
      if (s >= 0) close(s);
      break;
    }
    case kPoll: {
      struct pollfd p[3] = {{j->fds[0], POLLIN, 0}, {j->fds[1], POLLIN, 0}, {j->fds[2], POLLIN, 0}};
      j->result = poll(p, 3, -1);
      break;
    }
    case kRead:
      j->result = read(g_pipe[0], &c, 1) == 1 ? 9 : -1;
      break;
    case kSigwait: {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGUSR1);
      int sig = 0;
      sigwait(&s, &sig);
      j->result = sig == SIGUSR1 ? 10 : -1;
      break;
    }
    case kBarrier:
      pthread_barrier_wait(&g_barrier);
      j->result = 11;
      break;
    case kJoin: {
      void* r;
      j->result = pthread_join(j->join_target, &r) == 0 ? 12 : -1;
      break;
    }
  }
  return NULL;
}

static int connected_pair(int* client) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(g_listen_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c, (struct sockaddr*)&a, sizeof a) != 0) {
    perror("connect");
    exit(1);
  }
  *client = c;
  return accept(g_listener, NULL, NULL);
}

static void local_addr(int fd, char* out, size_t cap, int peer) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  if (peer) getpeername(fd, (struct sockaddr*)&a, &l);
  else getsockname(fd, (struct sockaddr*)&a, &l);
  snprintf(out, cap, "127.0.0.1:%d", ntohs(a.sin_port));
}

static void* spin(void* arg) {
  (void)arg;
  pthread_setname_np(pthread_self(), "w-spin");
  while (!atomic_load_explicit(&g_spin_stop, memory_order_relaxed)) {
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: ctl_waits PER_KIND EXPECT_FILE [spin]\n");
    return 2;
  }
  g_per_kind = atoi(argv[1]);
  FILE* expect = fopen(argv[2], "w");
  if (!expect) {
    perror(argv[2]);
    return 1;
  }
  int with_spin = argc > 3 && !strcmp(argv[3], "spin");
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, NULL);  // inherited: sigwait threads get it
  sem_init(&g_sem, 0, 0);
  pthread_barrier_init(&g_barrier, NULL, (unsigned)g_per_kind + 1);
  pipe(g_pipe);
  g_listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  bind(g_listener, (struct sockaddr*)&a, sizeof a);
  listen(g_listener, 4096);
  getsockname(g_listener, (struct sockaddr*)&a, &al);
  g_listen_port = ntohs(a.sin_port);

  pthread_mutex_lock(&g_mutex);
  pthread_rwlock_wrlock(&g_rwlock);
  int main_tid = (int)syscall(SYS_gettid);

  int n = g_per_kind * kKinds;
  g_jobs = calloc((size_t)n, sizeof *g_jobs);
  pthread_t* threads = calloc((size_t)n, sizeof *threads);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  // Connected sockets are made before the accept threads start (they would take them).
  for (int k = 0; k < kKinds; ++k) {
    for (int i = 0; i < g_per_kind; ++i) {
      struct Job* j = &g_jobs[k * g_per_kind + i];
      j->kind = k;
      j->index = i;
      j->fd = j->peer_fd = -1;
      if (k == kRecv) j->fd = connected_pair(&j->peer_fd);
      if (k == kPoll) {
        for (int p = 0; p < 3; ++p) {
          int fds[2];
          pipe(fds);
          j->fds[p] = fds[0];
          if (p == 0) j->peer_fd = fds[1];
        }
      }
    }
  }
  for (int k = 0; k < kKinds; ++k) {
    for (int i = 0; i < g_per_kind; ++i) {
      struct Job* j = &g_jobs[k * g_per_kind + i];
      // A joiner joins the mutex waiter with the same index.
      if (k == kJoin) j->join_target = threads[kMutex * g_per_kind + i];
      if (pthread_create(&threads[k * g_per_kind + i], &attr, run, j) != 0) {
        perror("pthread_create");
        return 1;
      }
    }
  }
  pthread_t spinner;
  if (with_spin) pthread_create(&spinner, &attr, spin, NULL);
  while (atomic_load(&g_started) < n) usleep(1000);
  usleep(300 * 1000);  // let every thread reach its wait

  for (int idx = 0; idx < n; ++idx) {
    struct Job* j = &g_jobs[idx];
    char what[256] = "";
    char x[64], y[64];
    switch (j->kind) {
      case kMutex: snprintf(what, sizeof what, "mutex %p held by thread %d", (void*)&g_mutex, main_tid); break;
      case kCond: snprintf(what, sizeof what, "cond %p", (void*)&g_cond); break;
      case kRwlock: snprintf(what, sizeof what, "rwlock %p write-locked by thread %d", (void*)&g_rwlock, main_tid); break;
      case kSem: snprintf(what, sizeof what, "sem %p", (void*)&g_sem); break;
      case kSleep: snprintf(what, sizeof what, "sleep 99"); break;  // "sleep 99x.x s left"
      case kRecv:
        local_addr(j->fd, x, sizeof x, 0);
        local_addr(j->fd, y, sizeof y, 1);
        snprintf(what, sizeof what, "recv fd=%d %s->%s", j->fd, x, y);
        break;
      case kAccept: snprintf(what, sizeof what, "accept fd=%d 127.0.0.1:%d", g_listener, g_listen_port); break;
      case kPoll: snprintf(what, sizeof what, "poll 3 fds"); break;
      case kRead: snprintf(what, sizeof what, "read fd=%d pipe:[", g_pipe[0]); break;
      case kSigwait: snprintf(what, sizeof what, "sigwait"); break;
      case kBarrier: snprintf(what, sizeof what, "barrier %p", (void*)&g_barrier); break;
      case kJoin: snprintf(what, sizeof what, "join thread %d", g_jobs[kMutex * g_per_kind + j->index].tid); break;
    }
    fprintf(expect, "%d %s %s\n", j->tid, kNames[j->kind], what);
  }
  fclose(expect);
  printf("ready\n");
  fflush(stdout);

  char line[64];
  if (!fgets(line, sizeof line, stdin)) return 1;

  // Release everything (sleepers are left to sleep: they are detached below).
  pthread_mutex_unlock(&g_mutex);
  pthread_mutex_lock(&g_cond_mutex);
  g_cond_go = 1;
  pthread_cond_broadcast(&g_cond);
  pthread_mutex_unlock(&g_cond_mutex);
  pthread_rwlock_unlock(&g_rwlock);
  for (int i = 0; i < g_per_kind; ++i) sem_post(&g_sem);
  for (int i = 0; i < g_per_kind; ++i) {
    // One connection per accepter (their accept takes it).
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(g_listen_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c, (struct sockaddr*)&to, sizeof to) != 0) perror("connect");
  }
  char ch = 'x';
  for (int i = 0; i < g_per_kind; ++i) {
    send(g_jobs[kRecv * g_per_kind + i].peer_fd, &ch, 1, 0);
    write(g_jobs[kPoll * g_per_kind + i].peer_fd, &ch, 1);
    write(g_pipe[1], &ch, 1);
  }
  for (int i = 0; i < g_per_kind; ++i) {
    for (int t = 0; t < n; ++t) {
      if (g_jobs[t].kind == kSigwait && g_jobs[t].index == i) pthread_kill(threads[t], SIGUSR1);
    }
  }
  pthread_barrier_wait(&g_barrier);
  atomic_store(&g_spin_stop, 1);
  if (with_spin) pthread_join(spinner, NULL);
  long sum[kKinds] = {0};
  for (int t = 0; t < n; ++t) {
    if (g_jobs[t].kind == kSleep || g_jobs[t].kind == kMutex) continue;  // mutex waiters are joined by the joiners
    pthread_join(threads[t], NULL);
    sum[g_jobs[t].kind] += g_jobs[t].result;
  }
  for (int t = 0; t < n; ++t) {
    if (g_jobs[t].kind == kMutex) sum[kMutex] += g_jobs[t].result;
  }
  for (int k = 0; k < kKinds; ++k) {
    if (k != kSleep) printf("%s %ld\n", kNames[k], sum[k]);
  }
  fflush(stdout);
  _exit(0);  // the sleepers still sleep
}
