// fork(), system() and popen() from threads; a forked child keeps working as
// an ordinary process (it may even create threads of its own).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static __thread int marker = 1;

static void* child_thread(void* arg) { return (void*)((long)arg + 1); }

static void* run(void* arg) {
  (void)arg;
  marker = 42;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    // The child: the forking thread's TLS is intact, threads work.
    pthread_t t;
    void* r;
    pthread_create(&t, NULL, child_thread, (void*)41);
    pthread_join(t, &r);
    usleep(1000);
    printf("child: marker %d, thread result %ld\n", marker, (long)r);
    fflush(stdout);
    _exit(3);
  }
  int status;
  waitpid(pid, &status, 0);
  printf("parent: child exited %d\n", WEXITSTATUS(status));
  fflush(stdout);
  int rc = system("echo system-ok; exit 4");
  printf("system status %d\n", WEXITSTATUS(rc));
  FILE* p = popen("echo popen-ok", "r");
  char buf[64] = "";
  if (p && fgets(buf, sizeof buf, p)) buf[strcspn(buf, "\n")] = 0;
  int pc = p ? pclose(p) : -1;
  printf("popen read '%s' status %d\n", buf, WEXITSTATUS(pc));
  return NULL;
}

int main(void) {
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    pthread_create(&t[i], NULL, run, NULL);
    pthread_join(t[i], NULL);
  }
  return 0;
}
