// A thread forks; the child's only thread calls pthread_exit. The child ends
// as with exit(0): thread-specific destructors run, then atexit handlers and
// stdio flushing, and its status is 0. Also from main, and from a child that
// created a thread of its own (the last thread to end exits the process).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_key_t key;
static int out_fd;

static void say(const char* s) { (void)!write(out_fd, s, strlen(s)); }
static void key_dtor(void* v) { say((const char*)v); }
static void at_exit(void) { say("child: atexit handler ran\n"); }

static void* child_thread(void* arg) {
  (void)arg;
  usleep(100 * 1000);
  say("child: second thread ends last\n");
  return NULL;
}

static int run_child(int second_thread) {
  pid_t pid = fork();
  if (pid == 0) {
    atexit(at_exit);
    pthread_setspecific(key, "child: key destructor ran\n");
    printf("child: stdio buffered before pthread_exit\n");  // flushed by exit(0)
    if (second_thread) {
      pthread_t t;
      pthread_create(&t, NULL, child_thread, NULL);
    }
    pthread_exit(NULL);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  fflush(stdout);
  if (WIFEXITED(st)) printf("child exited with %d\n", WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) printf("child killed by signal %d\n", WTERMSIG(st));
  fflush(stdout);
  return 0;
}

static void* forker(void* arg) {
  run_child(arg != NULL);
  return NULL;
}

int main(void) {
  out_fd = STDOUT_FILENO;
  setvbuf(stdout, NULL, _IOFBF, 4096);
  pthread_key_create(&key, key_dtor);
  pthread_t t;
  printf("from a thread:\n");
  fflush(stdout);
  pthread_create(&t, NULL, forker, NULL);
  pthread_join(t, NULL);
  printf("from a thread, child with a second thread:\n");
  fflush(stdout);
  pthread_create(&t, NULL, forker, (void*)1);
  pthread_join(t, NULL);
  printf("from main:\n");
  fflush(stdout);
  run_child(0);
  return 0;
}
