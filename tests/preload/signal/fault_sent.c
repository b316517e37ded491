// SIGSEGV and SIGBUS that are sent (raise, kill, pthread_kill), not raised
// by a fault, end the process with their default action, are ignored under
// SIG_IGN, and reach a handler the program installed: in a child forked
// before any thread, in one forked from a thread (the library's fault
// handler is installed by then and inherited), in a thread of a child, and
// in main after threads exist. Each case runs in its own child, which
// reports through its exit status; the parent prints how each ended.
//
// Under the preload a sent SIGSEGV with the default action used to return
// from the library's fault handler and let the process go on (the handler
// restored SIG_DFL and returned, expecting the faulting instruction to run
// again): CPython's ProcessPoolExecutor then got a result from a worker
// that had "crashed" with faulthandler._sigsegv() (test_concurrent_futures,
// ProcessPoolForkExecutorDeadlockTest).
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_fault(int sig) { handled = sig; }

enum how { kRaise, kKill, kPthreadKill };
static const char* const hows[] = {"raise", "kill", "pthread_kill"};

static void send_it(int sig, enum how how) {
  switch (how) {
    case kRaise: raise(sig); break;
    case kKill: kill(getpid(), sig); break;
    case kPthreadKill: pthread_kill(pthread_self(), sig); break;
  }
}

struct job {
  int sig;
  enum how how;
  int disposition;  // 0 default, 1 ignore, 2 handler
};

// What the child does; it exits 0 when the signal did not end it.
static void run_job(const struct job* j) {
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);  // no core files from the default action
  if (j->disposition == 1) signal(j->sig, SIG_IGN);
  if (j->disposition == 2) signal(j->sig, on_fault);
  send_it(j->sig, j->how);
  // kill() to a process with two threads may reach the other one, a little
  // later: wait for the handler up to 2 s.
  for (int i = 0; i < 2000 && j->disposition == 2 && handled != j->sig; i++) usleep(1000);
  if (j->disposition == 2 && handled != j->sig) _exit(3);
  // Likewise the default action, natively too (SIGSEGV and SIGBUS dump
  // core, so the kernel does not end the group when the signal is sent):
  // 2 s for it before exiting as if it had not come.
  for (int i = 0; i < 2000 && j->disposition == 0; i++) usleep(1000);
  _exit(0);
}

static void* job_thread(void* arg) {
  run_job(arg);
  return NULL;
}

static void report(const char* where, const struct job* j, int status) {
  const char* disp = j->disposition == 0 ? "default" : j->disposition == 1 ? "ignored" : "handler";
  if (WIFSIGNALED(status)) {
    printf("%-28s %-7s %-12s %-7s: killed by %s\n", where, strsignal(j->sig), hows[j->how], disp,
           strsignal(WTERMSIG(status)));
  } else {
    printf("%-28s %-7s %-12s %-7s: exit %d\n", where, strsignal(j->sig), hows[j->how], disp, WEXITSTATUS(status));
  }
}

// where: 0 the child's main thread, 1 a thread of the child.
static void in_child(const char* label, const struct job* j, int in_thread) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    if (in_thread) {
      pthread_t t;
      if (pthread_create(&t, NULL, job_thread, (void*)j) != 0) _exit(4);
      pthread_join(t, NULL);
      _exit(5);
    }
    run_job(j);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  report(label, j, status);
}

static void all_jobs(const char* label, int in_thread) {
  const int sigs[] = {SIGSEGV, SIGBUS};
  for (int s = 0; s < 2; s++) {
    for (int how = kRaise; how <= kPthreadKill; how++) {
      for (int disp = 0; disp < 3; disp++) {
        struct job j = {sigs[s], (enum how)how, disp};
        in_child(label, &j, in_thread);
      }
    }
  }
}

static void* forker(void* arg) {
  (void)arg;
  all_jobs("child forked from a thread", 0);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  all_jobs("child forked before threads", 0);
  pthread_t t;
  if (pthread_create(&t, NULL, forker, NULL) != 0) return 1;
  pthread_join(t, NULL);
  all_jobs("child's own thread", 1);
  all_jobs("child forked from main", 0);
  return 0;
}
