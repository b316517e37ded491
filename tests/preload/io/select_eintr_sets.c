// select and pselect ended by a signal (EINTR) leave the caller's sets as
// they were: Linux writes the sets only with a result. CPython retries an
// interrupted select with the same fd_set objects (PEP 475), after its C
// handler wrote the wakeup fd it selects on (signal.set_wakeup_fd, asyncio's
// self-pipe): the retry must find that fd readable. Under the preload the
// sets came back cleared and the retry waited on nothing (issue 16).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <unistd.h>

static int wake_wr;

static void on_alarm(int sig) {
  (void)sig;
  int saved = errno;
  char b = 1;
  (void)!write(wake_wr, &b, 1);
  errno = saved;
}

static void* nothing(void* arg) { return arg; }

static void arm(void) {
  struct itimerval it = {{0, 0}, {0, 50000}};
  setitimer(ITIMER_REAL, &it, NULL);
}

int main(int argc, char** argv) {
  (void)argv;
  setvbuf(stdout, NULL, _IONBF, 0);
  int use_pselect = argc > 1;
  const char* name = use_pselect ? "pselect" : "select";
  int p[2];
  if (pipe2(p, O_NONBLOCK) != 0) return 1;
  wake_wr = p[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;  // no SA_RESTART: select fails with EINTR
  sigaction(SIGALRM, &sa, NULL);
  pthread_t t;  // the runtime starts with the first thread
  pthread_create(&t, NULL, nothing, NULL);
  pthread_join(t, NULL);

  fd_set r, w;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_SET(p[0], &r);
  struct timeval tv = {5, 0};
  struct timespec ts = {5, 0};
  arm();
  int n = use_pselect ? pselect(p[0] + 1, &r, &w, NULL, &ts, NULL) : select(p[0] + 1, &r, &w, NULL, &tv);
  int err = errno;
  printf("%s: returned %d (%s), wakeup fd still in the read set: %s\n", name, n, n < 0 ? strerror(err) : "-",
         FD_ISSET(p[0], &r) ? "yes" : "no");
  if (!use_pselect) printf("select: timeout updated: %s\n", tv.tv_sec < 5 ? "yes" : "no");
  // The retry with the same sets (as CPython does) finds the handler's byte.
  n = use_pselect ? pselect(p[0] + 1, &r, &w, NULL, &ts, NULL) : select(p[0] + 1, &r, &w, NULL, &tv);
  printf("%s retry: returned %d, wakeup fd readable: %s\n", name, n, n == 1 && FD_ISSET(p[0], &r) ? "yes" : "no");
  return 0;
}
