// A thread blocked in read() on an empty pipe gets a signal: with SA_RESTART
// the read goes on and returns the data written later; without it the read
// fails with EINTR (and the data stays in the pipe for the next read).
//
// Without SA_RESTART, main sends the signal again until the read returns, so
// a signal that arrives just before the read starts cannot change the result.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fds[2];
static volatile sig_atomic_t handled;
static volatile int reading, done;
static ssize_t result;
static int result_errno;
static char buf[32];

static void on_usr1(int sig) {
  (void)sig;
  handled++;
}

static void* reader(void* arg) {
  (void)arg;
  reading = 1;
  result = read(fds[0], buf, sizeof buf);
  result_errno = errno;
  done = 1;
  return NULL;
}

static void run(int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  if (pipe(fds) != 0) return;
  handled = 0;
  reading = done = 0;
  memset(buf, 0, sizeof buf);
  pthread_t t;
  pthread_create(&t, NULL, reader, NULL);
  while (!reading) usleep(1000);
  usleep(20000);  // very likely blocked in read() by now
  pthread_kill(t, SIGUSR1);
  usleep(20000);
  if (!(flags & SA_RESTART)) {
    for (int i = 0; i < 500 && !done; i++) {
      pthread_kill(t, SIGUSR1);
      usleep(20000);
    }
  }
  if (write(fds[1], "data", 4) != 4) return;
  pthread_join(t, NULL);
  printf("%s: handler ran: %s, read returned %zd", flags & SA_RESTART ? "SA_RESTART" : "no SA_RESTART",
         handled > 0 ? "yes" : "no", result);
  if (result < 0) {
    printf(" (%s)", result_errno == EINTR ? "EINTR" : "other errno");
    result = read(fds[0], buf, sizeof buf);
    printf(", the next read got %zd bytes", result);
  }
  printf(" '%s'\n", buf);
  close(fds[0]);
  close(fds[1]);
}

int main(void) {
  run(SA_RESTART);
  run(0);
  return 0;
}
