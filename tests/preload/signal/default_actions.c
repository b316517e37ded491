// Default actions, started from a thread other than main. The argument picks
// the case. The program runs the case in a child (itself, executed again),
// reports how the child ended, and exits as the shell would report it (128 +
// the signal number when a signal killed it), so both the signal and the
// status are compared plain and under the preload (a process killed by a
// signal could not write the preload's counters, which show that threads ran
// as fibers; the parent's do):
//   term    kill(getpid(), SIGTERM)       -> dies of SIGTERM
//   raise   raise(SIGUSR1)                -> dies of SIGUSR1
//   abort   abort()                       -> dies of SIGABRT
//   external  another process sends SIGTERM -> dies of SIGTERM
//   pipe    write() to a pipe nobody reads -> dies of SIGPIPE
//   ignore  SIGCHLD, SIGWINCH, SIGURG, SIGCONT to the process and to threads -> nothing happens
//   stop    kill(getpid(), SIGSTOP), a child sends SIGCONT -> the process goes on
//   tstp    raise(SIGTSTP) (default: stop), a child sends SIGCONT -> the process goes on
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char* mode;
static pthread_t main_thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int finished;

// The state letter of process `pid` in /proc/<pid>/stat ('T' when stopped).
static char state_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE* f = fopen(path, "r");
  if (!f) return '?';
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  return p && p[1] == ' ' ? p[2] : '?';
}

// A child that sends SIGCONT once the parent has stopped (or after two
// seconds, so a stop the kernel discarded cannot hang the test).
static pid_t start_continuer(void) {
  pid_t parent = getpid();
  pid_t child = fork();
  if (child == 0) {
    for (int i = 0; i < 2000 && state_of(parent) != 'T'; i++) usleep(1000);
    kill(parent, SIGCONT);
    _exit(0);
  }
  return child;
}

static void stop_and_continue(int use_raise) {
  pid_t child = start_continuer();
  if (use_raise) raise(SIGTSTP);
  else kill(getpid(), SIGSTOP);
  int status;
  waitpid(child, &status, 0);
  printf("continued, the child that sent SIGCONT exited %d\n", WEXITSTATUS(status));
}

static void* actor(void* arg) {
  (void)arg;
  fflush(stdout);
  if (strcmp(mode, "term") == 0) {
    kill(getpid(), SIGTERM);
  } else if (strcmp(mode, "raise") == 0) {
    raise(SIGUSR1);
  } else if (strcmp(mode, "abort") == 0) {
    abort();
  } else if (strcmp(mode, "external") == 0) {
    pid_t child = fork();
    if (child == 0) {
      kill(getppid(), SIGTERM);
      _exit(0);
    }
  } else if (strcmp(mode, "pipe") == 0) {
    int p[2];
    if (pipe(p) == 0) {
      close(p[0]);
      (void)!write(p[1], "x", 1);
    }
  } else if (strcmp(mode, "ignore") == 0) {
    kill(getpid(), SIGCHLD);
    kill(getpid(), SIGWINCH);
    kill(getpid(), SIGURG);
    kill(getpid(), SIGCONT);
    raise(SIGCHLD);
    raise(SIGWINCH);
    raise(SIGURG);
    pthread_kill(main_thread, SIGCHLD);
    pthread_kill(main_thread, SIGWINCH);
    printf("ignored signals did nothing\n");
    return NULL;
  } else if (strcmp(mode, "stop") == 0) {
    stop_and_continue(0);
    return NULL;
  } else if (strcmp(mode, "tstp") == 0) {
    stop_and_continue(1);
    return NULL;
  }
  // The process is dying; give it time, then say it did not.
  struct timespec ts = {5, 0};
  nanosleep(&ts, NULL);
  printf("still alive after %s\n", mode);
  return NULL;
}

// A bystander parked in a condition wait, so the process has more threads.
static void* bystander(void* arg) {
  (void)arg;
  pthread_mutex_lock(&lock);
  while (!finished) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  return NULL;
}

static void* nothing(void* arg) { return arg; }

static int run_case(void) {
  main_thread = pthread_self();
  pthread_t a, b;
  pthread_create(&b, NULL, bystander, NULL);
  pthread_create(&a, NULL, actor, NULL);
  pthread_join(a, NULL);
  pthread_mutex_lock(&lock);
  finished = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  pthread_join(b, NULL);
  printf("main returns\n");
  return 0;
}

int main(int argc, char** argv) {
  mode = argc > 1 ? argv[1] : "ignore";
  if (argc > 2 && strcmp(argv[2], "child") == 0) return run_case();

  // The parent runs a thread too (so its own run shows fibers), then the case.
  pthread_t t;
  pthread_create(&t, NULL, nothing, NULL);
  pthread_join(t, NULL);
  printf("mode %s\n", mode);
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    execl("/proc/self/exe", argv[0], mode, "child", (char*)NULL);
    _exit(127);
  }
  int status;
  if (waitpid(child, &status, 0) != child) return 1;
  if (WIFSIGNALED(status)) {
    printf("the process was killed by signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 128 + WTERMSIG(status);
  }
  printf("the process exited with status %d\n", WEXITSTATUS(status));
  return WEXITSTATUS(status);
}
