// Per-thread masks: a process-directed SIGUSR1 goes to the one thread that
// does not block it, whatever that thread is doing (waiting on a condition
// variable, sleeping, or computing), and its handler runs in that thread.
//
// Main blocks SIGUSR1 until the last round. In round r, thread r unblocks
// it, every thread meets main at the barrier, thread r waits in its own way
// until its handler ran, blocks SIGUSR1 again, and everybody meets at the
// barrier once more. Every thread does exactly two barrier waits per round.
// In the last round main itself takes it while computing, sent by thread 0.
//
// "self" (the default): kill(getpid()) from main; "external": a child
// process sends each signal, so it comes from outside the process.
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kThreads = 3 };

static pthread_t threads[kThreads];
static pthread_barrier_t barrier;
static sem_t handled_sem;
static volatile sig_atomic_t handled;  // handler runs so far
static pthread_t handled_by[kThreads + 1];
static __thread volatile sig_atomic_t my_handled;  // handler runs in this thread

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int released;  // rounds whose condition waiter main has released

static void on_usr1(int sig) {
  (void)sig;
  if (handled <= kThreads) handled_by[handled] = pthread_self();
  my_handled++;
  handled++;
  sem_post(&handled_sem);
}

static void set_usr1(int how) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(how, &s, NULL);
}

// Round 0: a condition wait that only main ends (the handler's run does not).
static void wait_on_condition(void) {
  pthread_mutex_lock(&lock);
  while (released < 1) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
}

// Round 1: sleeps; an interrupted sleep just starts another.
static void wait_sleeping(void) {
  while (!my_handled) usleep(200000);
}

// Round 2: computes until its own handler has run.
static void wait_computing(void) {
  unsigned long spins = 0;
  while (!my_handled) spins++;
  (void)spins;
}

static int sender_pipe = -1;  // "external": one byte asks the child for one SIGUSR1

static void send_usr1(void) {
  if (sender_pipe < 0) kill(getpid(), SIGUSR1);
  else if (write(sender_pipe, "k", 1) != 1) perror("write");
}

static pid_t start_sender(void) {
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[1]);
    char c;
    while (read(p[0], &c, 1) == 1) kill(getppid(), SIGUSR1);
    _exit(0);
  }
  close(p[0]);
  sender_pipe = p[1];
  return pid;
}

static void* thread_main(void* arg) {
  long me = (long)arg;
  set_usr1(SIG_BLOCK);
  for (long round = 0; round < kThreads; round++) {
    if (round == me) set_usr1(SIG_UNBLOCK);
    pthread_barrier_wait(&barrier);
    if (round == me) {
      if (me == 0) wait_on_condition();
      if (me == 1) wait_sleeping();
      if (me == 2) wait_computing();
      set_usr1(SIG_BLOCK);
    }
    pthread_barrier_wait(&barrier);
  }
  pthread_barrier_wait(&barrier);  // the last round: main accepts and computes
  if (me == 0) {
    usleep(20000);
    send_usr1();
  }
  return (void*)(long)my_handled;
}

static int index_of(pthread_t t) {
  for (int i = 0; i < kThreads; i++) {
    if (pthread_equal(t, threads[i])) return i;
  }
  return pthread_equal(t, pthread_self()) ? 9 : -1;
}

int main(int argc, char** argv) {
  pid_t sender = -1;
  if (argc > 1 && strcmp(argv[1], "external") == 0) sender = start_sender();
  static const char* const how[kThreads] = {"waiting on a condition", "sleeping", "computing"};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sem_init(&handled_sem, 0, 0);
  set_usr1(SIG_BLOCK);  // main takes it only in the last round
  pthread_barrier_init(&barrier, NULL, kThreads + 1);
  for (long i = 0; i < kThreads; i++) pthread_create(&threads[i], NULL, thread_main, (void*)i);

  for (int round = 0; round < kThreads; round++) {
    pthread_barrier_wait(&barrier);  // thread `round` has unblocked SIGUSR1
    usleep(20000);                   // and very likely waits in its own way by now
    send_usr1();
    while (sem_wait(&handled_sem) != 0) {
    }
    printf("round %d: the thread %s got it: handled by thread %d\n", round, how[round],
           index_of(handled_by[round]));
    if (round == 0) {
      pthread_mutex_lock(&lock);
      released = 1;
      pthread_cond_broadcast(&cond);
      pthread_mutex_unlock(&lock);
    }
    pthread_barrier_wait(&barrier);
  }

  set_usr1(SIG_UNBLOCK);
  pthread_barrier_wait(&barrier);
  unsigned long spins = 0;
  while (!my_handled) spins++;
  printf("last round: main got it while computing: handled by %s\n",
         pthread_equal(handled_by[kThreads], pthread_self()) ? "main" : "another thread");
  for (int i = 0; i < kThreads; i++) {
    void* ran;
    pthread_join(threads[i], &ran);
    printf("thread %d ran the handler %ld time(s)\n", i, (long)ran);
  }
  printf("handled %d times in all\n", (int)handled);
  if (sender > 0) {
    close(sender_pipe);
    waitpid(sender, NULL, 0);
  }
  return 0;
}
