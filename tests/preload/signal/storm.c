// Many signals to busy threads: worker threads pass a token around a ring of
// pipes and bump a shared counter under a mutex, waking each other with a
// condition variable, while sender threads fire pthread_kill at them (each
// signal acknowledged by its handler before the next one goes to that
// thread) and at the whole process. Every handler runs in the thread it was
// sent to, every signal is handled, and the workers' own work is exact: no
// token is lost or duplicated, no read or write fails (SA_RESTART), the
// counter matches.
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { kWorkers = 6, kSenders = 2, kPerSender = 300, kLaps = 400 };

static pthread_t workers[kWorkers];
static int ring[kWorkers][2];  // worker i reads ring[i], writes ring[(i+1) % kWorkers]
static sem_t acked[kWorkers];
static volatile sig_atomic_t handled[kWorkers];
static volatile sig_atomic_t misdirected;
static __thread int my_index = -1;
static volatile sig_atomic_t process_handled;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter;
static long turn;  // the condition: workers take turns by index

static int io_errors;

static void on_usr1(int sig) {
  (void)sig;
  int i = my_index;
  if (i < 0) {
    misdirected = 1;
    return;
  }
  handled[i]++;
  sem_post(&acked[i]);
}

static void on_usr2(int sig) {
  (void)sig;
  process_handled++;
}

static int senders_done;
static pthread_barrier_t started;  // workers know their index before any signal

// Waits for its turn on the condition, takes the token from its pipe, counts,
// passes the turn and the token on. Stays until the senders are done, so
// every signal finds it.
static void* worker(void* arg) {
  long me = (long)arg;
  my_index = (int)me;
  pthread_barrier_wait(&started);
  for (int lap = 0; lap < kLaps; lap++) {
    pthread_mutex_lock(&lock);
    while (turn % kWorkers != me) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    char token;
    if (read(ring[me][0], &token, 1) != 1) __atomic_fetch_add(&io_errors, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&lock);
    counter++;
    turn++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    if (write(ring[(me + 1) % kWorkers][1], &token, 1) != 1) __atomic_fetch_add(&io_errors, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_lock(&lock);
  while (!senders_done) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void* sender(void* arg) {
  unsigned seed = (unsigned)(long)arg * 7919u + 1;
  int sent = 0;
  for (int k = 0; k < kPerSender; k++) {
    seed = seed * 1103515245u + 12345u;
    int target = (int)((seed >> 16) % kWorkers);
    if (k % 10 == 9) {
      kill(getpid(), SIGUSR2);
      continue;
    }
    // Two senders may aim at the same thread: the acknowledgement keeps one
    // SIGUSR1 in flight per target at a time (standard signals merge).
    static pthread_mutex_t target_lock[kWorkers] = {
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};
    pthread_mutex_lock(&target_lock[target]);
    if (pthread_kill(workers[target], SIGUSR1) == 0) {
      while (sem_wait(&acked[target]) != 0) {
      }
      sent++;
    }
    pthread_mutex_unlock(&target_lock[target]);
  }
  return (void*)(long)sent;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_usr2;
  sigaction(SIGUSR2, &sa, NULL);
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  for (int i = 0; i < kWorkers; i++) {
    if (pipe(ring[i]) != 0) return 1;
    sem_init(&acked[i], 0, 0);
  }
  pthread_barrier_init(&started, NULL, kWorkers + 1);
  for (long i = 0; i < kWorkers; i++) pthread_create(&workers[i], NULL, worker, (void*)i);
  pthread_barrier_wait(&started);
  if (write(ring[0][1], "t", 1) != 1) return 1;
  pthread_t senders[kSenders];
  for (long i = 0; i < kSenders; i++) pthread_create(&senders[i], NULL, sender, (void*)i);

  long sent = 0;
  for (int i = 0; i < kSenders; i++) {
    void* r;
    pthread_join(senders[i], &r);
    sent += (long)r;
  }
  pthread_mutex_lock(&lock);
  senders_done = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  for (int i = 0; i < kWorkers; i++) pthread_join(workers[i], NULL);
  // Main blocks SIGUSR2 only now: every one sent has been handled (by main,
  // the senders or the workers) before its kill() returned or soon after.
  pthread_sigmask(SIG_BLOCK, &usr2, NULL);
  long total = 0;
  for (int i = 0; i < kWorkers; i++) total += handled[i];
  char token = 0;
  ssize_t left = read(ring[0][0], &token, 1);
  printf("SIGUSR1 handled as often as acknowledged: %s, none misdirected: %s\n", total == sent ? "yes" : "no",
         misdirected ? "no" : "yes");
  printf("process-directed SIGUSR2 handled: %s\n", process_handled > 0 ? "yes" : "no");
  printf("counter %ld (expected %d), token back at the start: %s, I/O errors %d\n", counter, kWorkers * kLaps,
         left == 1 && token == 't' ? "yes" : "no", io_errors);
  return 0;
}
