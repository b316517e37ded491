// The dedicated signal thread pattern: main blocks SIGTERM and SIGINT before
// creating any thread, so every thread inherits the mask; one thread waits in
// sigwaitinfo and shuts the program down. The library's own threads must
// never take these signals. "self": a worker sends them with kill();
// "external": a child process does.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stopping;
static int external;

static void* worker(void* arg) {
  long id = (long)arg;
  if (id == 0) {
    // Let everybody start waiting, then ask for a shutdown.
    usleep(20000);
    if (external) {
      pid_t child = fork();
      if (child == 0) {
        kill(getppid(), SIGINT);
        usleep(20000);
        kill(getppid(), SIGTERM);
        _exit(0);
      }
      waitpid(child, NULL, 0);
    } else {
      kill(getpid(), SIGINT);
      usleep(20000);
      kill(getpid(), SIGTERM);
    }
  }
  pthread_mutex_lock(&lock);
  while (!stopping) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void* signal_thread(void* arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    if (sig < 0) {
      perror("sigwaitinfo");
      continue;
    }
    printf("signal thread: got %s, from %s, code SI_USER %d\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
           si.si_pid == getpid() ? "this process" : si.si_pid == 0 ? "nobody" : "another process",
           si.si_code == SI_USER);
    fflush(stdout);
    if (sig == SIGTERM) break;
  }
  pthread_mutex_lock(&lock);
  stopping = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  return NULL;
}

int main(int argc, char** argv) {
  external = argc > 1 && strcmp(argv[1], "external") == 0;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  pthread_t sig_thread, workers[4];
  pthread_create(&sig_thread, NULL, signal_thread, NULL);
  for (long i = 0; i < 4; i++) pthread_create(&workers[i], NULL, worker, (void*)i);
  pthread_join(sig_thread, NULL);
  for (int i = 0; i < 4; i++) pthread_join(workers[i], NULL);
  printf("clean shutdown, exit status 0\n");
  return 0;
}
