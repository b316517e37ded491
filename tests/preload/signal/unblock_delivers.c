// A signal that waits while every thread blocks it is delivered the moment a
// thread unblocks it, before pthread_sigmask/sigprocmask returns, in that
// thread: a process-directed one to whichever thread unblocks it first, a
// thread-directed one only to its own thread (another thread unblocking it
// does not take it).
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_barrier_t step;
static volatile sig_atomic_t handled;
static pthread_t handled_by;
static pthread_t threads[2];

static void on_usr1(int sig) {
  (void)sig;
  handled++;
  handled_by = pthread_self();
}

static void set_usr1(int how) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(how, &s, NULL);
}

static const char* who(void) {
  if (pthread_equal(handled_by, threads[0])) return "thread 0";
  if (pthread_equal(handled_by, threads[1])) return "thread 1";
  return "main";
}

static void* thread_main(void* arg) {
  long me = (long)arg;
  pthread_barrier_wait(&step);  // 1: main sent SIGUSR1 to the process
  if (me == 0) {
    int before = handled;
    set_usr1(SIG_UNBLOCK);
    int after = handled;
    printf("thread 0 unblocked it: handled before pthread_sigmask returned: %s, by %s\n",
           after == before + 1 ? "yes" : "no", who());
    set_usr1(SIG_BLOCK);
  }
  pthread_barrier_wait(&step);  // 2
  pthread_barrier_wait(&step);  // 3: main sent SIGUSR1 to thread 1 only
  if (me == 0) {
    int before = handled;
    set_usr1(SIG_UNBLOCK);
    usleep(20000);
    printf("thread 0 unblocked it too: handled meanwhile: %s\n", handled == before ? "no" : "yes");
    set_usr1(SIG_BLOCK);
  }
  pthread_barrier_wait(&step);  // 4
  if (me == 1) {
    int before = handled;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &s, NULL);
    int after = handled;
    printf("thread 1 unblocked it with sigprocmask: handled before it returned: %s, by %s\n",
           after == before + 1 ? "yes" : "no", who());
  }
  pthread_barrier_wait(&step);  // 5
  return NULL;
}

int main(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  set_usr1(SIG_BLOCK);  // inherited by both threads
  pthread_barrier_init(&step, NULL, 3);
  for (long i = 0; i < 2; i++) pthread_create(&threads[i], NULL, thread_main, (void*)i);

  kill(getpid(), SIGUSR1);
  usleep(20000);  // would have been handled by now if anybody accepted it
  printf("sent to the process while every thread blocks it: handled %d\n", (int)handled);
  pthread_barrier_wait(&step);  // 1
  pthread_barrier_wait(&step);  // 2: thread 0 is done with the first round
  pthread_kill(threads[1], SIGUSR1);
  pthread_barrier_wait(&step);  // 3
  pthread_barrier_wait(&step);  // 4
  pthread_barrier_wait(&step);  // 5
  for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
  printf("handled %d times in all\n", (int)handled);
  return 0;
}
