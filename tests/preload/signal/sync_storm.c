// A signal storm against a thread inside the synchronisation calls: a sender
// thread calls pthread_kill(target, SIGUSR1) in a loop (a handler is
// installed, without SA_RESTART unless the second argument is "restart")
// while the target makes one call family again and again against a partner
// thread that makes it block. glibc never lets a handler end a mutex,
// condition, rwlock, barrier, once or join wait (the handler runs, the wait
// goes on), so none of them may return EINTR, time out early or lose a
// wake-up; sem_wait and sem_timedwait may fail with EINTR (sem_wait not under
// SA_RESTART), and the sleeps end with EINTR and are restarted by the
// program with the time left. The target goes on until it made its
// iterations and the handler ran kMinHandled times, so every run sees a
// storm, plain or preloaded, and only the outcome is printed.
//
// With "ack" the sender waits for each handler before it sends the next
// signal, and fails if one is not handled within 5 s (the thread is parked in
// the call, or about to be).
//
//   sync_storm CALL|all [restart] [ack]     CALL: one of the names in kCalls
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

enum { kIterations = 3000, kMinHandled = 300 };

static pthread_t target;
static volatile int stop_storm;
static volatile int storm_running;
static volatile sig_atomic_t handled;
static volatile sig_atomic_t wrong_thread;
static int failures;

static void on_usr1(int sig) {
  (void)sig;
  if (!pthread_equal(pthread_self(), target)) wrong_thread = 1;
  handled++;
}

static void fail(const char* what, int err) {
  if (failures++ < 3) printf("  FAIL: %s: %s\n", what, strerror(err));
}

// Done when the call was made kIterations times and the storm was felt.
static int more(int i) { return i < kIterations || handled < kMinHandled; }

static int ack_mode;  // the sender waits for each handler before the next signal

static double now_s(clockid_t clock);

static void* storm(void* arg) {
  (void)arg;
  const struct timespec gap = {0, 20 * 1000};
  storm_running = 1;
  for (long n = 0; !stop_storm; n++) {
    sig_atomic_t before = handled;
    double sent = now_s(CLOCK_MONOTONIC);
    int e = pthread_kill(target, SIGUSR1);
    if (e) {
      fail("pthread_kill", e);
      break;
    }
    if (ack_mode) {
      // The program's patience: plain, a handler runs within microseconds
      // (milliseconds on a loaded machine).
      while (handled == before && !stop_storm) {
        if (now_s(CLOCK_MONOTONIC) - sent > 5) {
          printf("  FAIL: a signal to the thread was not handled within 5 s\n");
          failures++;
          return NULL;
        }
        nanosleep(&gap, NULL);
      }
    } else if (n % 4 == 3) {
      nanosleep(&gap, NULL);
    }
  }
  return NULL;
}

static struct timespec in_future(long sec) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += sec;
  return ts;
}

static double now_s(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// ---- the partner side of each call ---------------------------------------

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv2 = PTHREAD_COND_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_barrier_t bar;
static sem_t sem_a, sem_b;
static volatile int partner_stop;
static long shared_count;
static long turn;  // ping-pong: even = target's turn, odd = partner's
static long queued;  // cond_signal: items the target produced and the partner has not taken

// Holds the lock across a short sleep, so the target really waits, then
// leaves it free for as long, so the target gets it (plain or preloaded, on
// one worker too).
static void pause_briefly(void) {
  const struct timespec t = {0, 30 * 1000};
  nanosleep(&t, NULL);
}

static void* partner_mutex(void* arg) {
  (void)arg;
  while (!partner_stop) {
    pthread_mutex_lock(&mu);
    shared_count++;
    pause_briefly();
    pthread_mutex_unlock(&mu);
    pause_briefly();
  }
  return NULL;
}

static void* partner_pingpong(void* arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (turn % 2 == 0 && !partner_stop) pthread_cond_wait(&cv, &mu);
    if (partner_stop) break;
    turn++;
    pthread_cond_signal(&cv2);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void* partner_consumer(void* arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (queued == 0 && !partner_stop) pthread_cond_wait(&cv, &mu);
    if (queued == 0 && partner_stop) break;
    queued--;
    shared_count++;
    pthread_cond_signal(&cv2);
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void* partner_writer(void* arg) {
  (void)arg;
  while (!partner_stop) {
    pthread_rwlock_wrlock(&rw);
    shared_count++;
    pause_briefly();
    pthread_rwlock_unlock(&rw);
    pause_briefly();
  }
  return NULL;
}

static volatile long last_round = -1;  // barrier: set by the target before its last wait
static void* partner_barrier(void* arg) {
  (void)arg;
  for (long round = 0;; round++) {
    int r = pthread_barrier_wait(&bar);
    if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD) fail("partner pthread_barrier_wait", r);
    if (round == last_round) break;
  }
  return NULL;
}

static void* partner_sem(void* arg) {
  (void)arg;
  for (;;) {
    while (sem_wait(&sem_a) != 0) {
    }
    if (partner_stop) break;
    sem_post(&sem_b);
  }
  return NULL;
}

enum { kOnces = 200000 };
static pthread_once_t* onces;
static long once_runs;
static long partner_onces;
static void once_init(void) {
  __atomic_fetch_add(&once_runs, 1, __ATOMIC_RELAXED);
  sched_yield();  // the other caller finds it in progress and waits
}

static void* partner_once(void* arg) {
  (void)arg;
  long i = 0;
  for (; i < kOnces && !partner_stop; i++) pthread_once(&onces[i], once_init);
  partner_onces = i;
  return NULL;
}

static void* nothing(void* arg) { return arg; }

// ---- the target side ---------------------------------------------------------

static int restart_flag;
static long sem_eintr;

static void run_call(const char* call) {
  int i = 0, e;
  shared_count = 0;
  turn = 0;
  queued = 0;
  partner_stop = 0;
  pthread_t p = 0;
  int have_partner = 1;
  long mine = 0;

  if (!strcmp(call, "mutex_lock") || !strcmp(call, "mutex_trylock") || !strcmp(call, "mutex_timedlock")) {
    pthread_create(&p, NULL, partner_mutex, NULL);
  } else if (!strcmp(call, "cond_wait") || !strcmp(call, "cond_timedwait")) {
    pthread_create(&p, NULL, partner_pingpong, NULL);
  } else if (!strcmp(call, "cond_signal")) {
    pthread_create(&p, NULL, partner_consumer, NULL);
  } else if (!strncmp(call, "rwlock", 6)) {
    pthread_create(&p, NULL, partner_writer, NULL);
  } else if (!strcmp(call, "barrier")) {
    pthread_barrier_init(&bar, NULL, 2);
    pthread_create(&p, NULL, partner_barrier, NULL);
  } else if (!strncmp(call, "sem_", 4)) {
    sem_init(&sem_a, 0, 0);
    sem_init(&sem_b, 0, 0);
    pthread_create(&p, NULL, partner_sem, NULL);
  } else if (!strcmp(call, "once")) {
    onces = calloc(kOnces, sizeof *onces);
    for (int k = 0; k < kOnces; k++) onces[k] = (pthread_once_t)PTHREAD_ONCE_INIT;
    once_runs = 0;
    pthread_create(&p, NULL, partner_once, NULL);
  } else {
    have_partner = 0;
  }
  // The partner was created with SIGUSR1 blocked (inherited from main): only
  // the target takes it.
  sigset_t usr1_set;
  sigemptyset(&usr1_set);
  sigaddset(&usr1_set, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &usr1_set, NULL);

  if (!strcmp(call, "mutex_lock")) {
    for (; more(i); i++) {
      if ((e = pthread_mutex_lock(&mu))) fail("pthread_mutex_lock", e);
      shared_count++;
      mine++;
      pthread_mutex_unlock(&mu);
    }
  } else if (!strcmp(call, "mutex_trylock")) {
    for (; more(i); i++) {
      e = pthread_mutex_trylock(&mu);
      if (e == 0) {
        shared_count++;
        mine++;
        pthread_mutex_unlock(&mu);
      } else if (e == EBUSY) {
        sched_yield();
      } else {
        fail("pthread_mutex_trylock", e);
      }
    }
  } else if (!strcmp(call, "mutex_timedlock")) {
    for (; more(i); i++) {
      struct timespec ts = in_future(60);
      if ((e = pthread_mutex_timedlock(&mu, &ts))) fail("pthread_mutex_timedlock", e);
      shared_count++;
      mine++;
      pthread_mutex_unlock(&mu);
    }
  } else if (!strcmp(call, "cond_wait") || !strcmp(call, "cond_timedwait")) {
    int timed = !strcmp(call, "cond_timedwait");
    pthread_mutex_lock(&mu);
    for (; more(i); i++) {
      turn++;  // odd: the partner's turn
      pthread_cond_signal(&cv);
      while (turn % 2 == 1) {
        if (timed) {
          struct timespec ts = in_future(60);
          e = pthread_cond_timedwait(&cv2, &mu, &ts);
        } else {
          e = pthread_cond_wait(&cv2, &mu);
        }
        if (e) fail(call, e);
      }
    }
    partner_stop = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    if (turn != 2L * i) printf("  FAIL: %ld turns for %d rounds\n", turn, i), failures++;
  } else if (!strcmp(call, "cond_signal")) {
    for (; more(i); i++) {
      pthread_mutex_lock(&mu);
      while (queued >= 4) pthread_cond_wait(&cv2, &mu);
      queued++;
      if ((e = pthread_cond_signal(&cv))) fail("pthread_cond_signal", e);
      pthread_mutex_unlock(&mu);
    }
    pthread_mutex_lock(&mu);
    while (queued > 0) pthread_cond_wait(&cv2, &mu);
    partner_stop = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    mine = i;
  } else if (!strcmp(call, "once")) {
    for (; more(i) && i < kOnces; i++) {
      if ((e = pthread_once(&onces[i], once_init))) fail("pthread_once", e);
    }
  } else if (!strcmp(call, "sigmask")) {
    sigset_t usr1, got;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    for (; more(i); i++) {
      if ((e = pthread_sigmask(SIG_BLOCK, &usr1, NULL))) fail("pthread_sigmask(SIG_BLOCK)", e);
      sig_atomic_t before = handled;
      for (volatile int k = 0; k < 50; k++) {
      }
      if (handled != before) printf("  FAIL: a handler ran while SIGUSR1 was blocked\n"), failures++;
      if ((e = pthread_sigmask(SIG_UNBLOCK, &usr1, &got))) fail("pthread_sigmask(SIG_UNBLOCK)", e);
      if (!sigismember(&got, SIGUSR1)) printf("  FAIL: the old mask lost SIGUSR1\n"), failures++;
    }
  } else if (!strncmp(call, "rwlock", 6)) {
    for (; more(i); i++) {
      struct timespec ts = in_future(60);
      if (!strcmp(call, "rwlock_rdlock")) e = pthread_rwlock_rdlock(&rw);
      else if (!strcmp(call, "rwlock_wrlock")) e = pthread_rwlock_wrlock(&rw);
      else if (!strcmp(call, "rwlock_timedrdlock")) e = pthread_rwlock_timedrdlock(&rw, &ts);
      else e = pthread_rwlock_timedwrlock(&rw, &ts);
      if (e) fail(call, e);
      if (call[7] == 'w' || call[12] == 'w') shared_count++, mine++;
      pthread_rwlock_unlock(&rw);
    }
  } else if (!strcmp(call, "barrier")) {
    last_round = -1;
    for (; more(i); i++) {
      e = pthread_barrier_wait(&bar);
      if (e != 0 && e != PTHREAD_BARRIER_SERIAL_THREAD) fail("pthread_barrier_wait", e);
    }
    last_round = i;
    e = pthread_barrier_wait(&bar);
    if (e != 0 && e != PTHREAD_BARRIER_SERIAL_THREAD) fail("pthread_barrier_wait", e);
  } else if (!strncmp(call, "sem_", 4)) {
    int timed = !strcmp(call, "sem_timedwait");
    for (; more(i); i++) {
      sem_post(&sem_a);
      for (;;) {
        struct timespec ts = in_future(60);
        int r = timed ? sem_timedwait(&sem_b, &ts) : sem_wait(&sem_b);
        if (r == 0) break;
        if (errno != EINTR) {
          fail(call, errno);
          break;
        }
        sem_eintr++;
      }
    }
    partner_stop = 1;
    sem_post(&sem_a);
    int v = -1;
    sem_getvalue(&sem_b, &v);
    if (v != 0) printf("  FAIL: %s: %d posts left over\n", call, v), failures++;
    if (!timed && restart_flag && sem_eintr) printf("  FAIL: sem_wait failed with EINTR under SA_RESTART\n"), failures++;
  } else if (!strcmp(call, "join")) {
    for (; more(i); i++) {
      pthread_t t;
      void* res = NULL;
      if ((e = pthread_create(&t, NULL, nothing, (void*)(long)(i + 1)))) {
        fail("pthread_create", e);
        break;
      }
      if ((e = pthread_join(t, &res))) fail("pthread_join", e);
      if ((long)res != i + 1) printf("  FAIL: join result\n"), failures++;
    }
  } else if (!strcmp(call, "nanosleep") || !strcmp(call, "clock_nanosleep") || !strcmp(call, "usleep")) {
    // 200 sleeps of 1 ms each, restarted with the time left: never less in total.
    double start = now_s(CLOCK_MONOTONIC);
    for (int k = 0; k < 200; k++) {
      struct timespec req = {0, 1000 * 1000}, rem;
      if (!strcmp(call, "nanosleep")) {
        // Restarted until the 1 ms passed: the time left the kernel reports
        // includes its timer slack, so a storm would never let a loop that
        // only follows it end.
        double until = now_s(CLOCK_MONOTONIC) + 0.001;
        while (nanosleep(&req, &rem) != 0) {
          if (errno != EINTR) {
            fail("nanosleep", errno);
            break;
          }
          if (rem.tv_sec != 0 || rem.tv_nsec < 0 || rem.tv_nsec > 2 * 1000 * 1000) {
            printf("  FAIL: nanosleep left %ld.%09ld\n", (long)rem.tv_sec, rem.tv_nsec), failures++;
            break;
          }
          double left = until - now_s(CLOCK_MONOTONIC);
          if (left <= 0) break;
          req.tv_nsec = (long)(left * 1e9);
        }
      } else if (!strcmp(call, "clock_nanosleep")) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 1000 * 1000;
        if (until.tv_nsec >= 1000000000) until.tv_nsec -= 1000000000, until.tv_sec++;
        while ((e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL)) != 0) {
          if (e != EINTR) {
            fail("clock_nanosleep", e);
            break;
          }
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec < until.tv_sec || (t.tv_sec == until.tv_sec && t.tv_nsec < until.tv_nsec))
          printf("  FAIL: clock_nanosleep returned before its deadline\n"), failures++;
      } else {
        double until = now_s(CLOCK_MONOTONIC) + 0.001;
        while (now_s(CLOCK_MONOTONIC) < until) {
          if (usleep(1000) != 0 && errno != EINTR) {
            fail("usleep", errno);
            break;
          }
        }
      }
      i++;
    }
    if (now_s(CLOCK_MONOTONIC) - start < 0.2) printf("  FAIL: %s: slept less than asked\n", call), failures++;
    while (handled < kMinHandled) {
      struct timespec req = {0, 1000 * 1000};
      nanosleep(&req, NULL);
    }
  } else {
    printf("unknown call %s\n", call);
    exit(2);
  }

  if (have_partner) {
    partner_stop = 1;
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(p, NULL);
  }
  if (!strncmp(call, "mutex", 5) || !strcmp(call, "rwlock_wrlock") || !strcmp(call, "rwlock_timedwrlock")) {
    if (shared_count < mine) printf("  FAIL: %s: count %ld < own %ld\n", call, shared_count, mine), failures++;
  }
  if (!strcmp(call, "cond_signal") && shared_count != mine)
    printf("  FAIL: cond_signal: %ld consumed of %ld\n", shared_count, mine), failures++;
  if (!strcmp(call, "once")) {
    // Every control either caller reached ran its routine exactly once.
    long reached = partner_onces > i ? partner_onces : i;
    for (long k = 0; k < reached; k++) pthread_once(&onces[k], once_init);
    if (once_runs != reached) printf("  FAIL: once: %ld runs for %ld controls\n", once_runs, reached), failures++;
    free(onces);
  }
}

static const char* const kCalls[] = {
    "mutex_trylock", "mutex_lock",   "mutex_timedlock", "once",          "sigmask",
    "cond_wait",     "cond_timedwait", "cond_signal",   "rwlock_rdlock", "rwlock_wrlock",
    "rwlock_timedrdlock", "rwlock_timedwrlock", "barrier", "sem_wait",   "sem_timedwait",
    "join",          "nanosleep",    "clock_nanosleep", "usleep",
};

struct target_arg {
  const char* call;
};

static void* target_main(void* arg) {
  const char* call = ((struct target_arg*)arg)->call;
  run_call(call);
  return NULL;
}

static void storm_one(const char* call) {
  handled = 0;
  stop_storm = 0;
  storm_running = 0;
  sem_eintr = 0;
  failures = 0;
  struct target_arg a = {call};
  pthread_t s;
  // The target is a thread of its own, so main (the thread the kernel
  // prefers) is not involved; it is known before the storm starts.
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, &old);  // inherited: only the target unblocks
  pthread_create(&target, NULL, target_main, &a);
  pthread_create(&s, NULL, storm, NULL);
  pthread_join(target, NULL);
  stop_storm = 1;
  pthread_join(s, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  printf("%s: %s%s\n", call, failures ? "FAILED" : "ok", wrong_thread ? " (a handler ran in another thread)" : "");
  fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CALL|all [restart]\n", argv[0]);
    return 2;
  }
  for (int a = 2; a < argc; a++) {
    if (!strcmp(argv[a], "restart")) restart_flag = 1;
    if (!strcmp(argv[a], "ack")) ack_mode = 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = restart_flag ? SA_RESTART : 0;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  int bad = 0;
  for (size_t k = 0; k < sizeof kCalls / sizeof *kCalls; k++) {
    if (strcmp(argv[1], "all") && strcmp(argv[1], kCalls[k])) continue;
    storm_one(kCalls[k]);
    bad |= failures != 0;
  }
  return bad;
}
