// poll and select on a descriptor in a lasting state that the call does not
// count: a hung-up pipe watched only for exceptional conditions (select's
// except set counts only POLLPRI), a full socket whose peer shut down writing
// watched for POLLOUT (POLLRDHUP not asked). The call must sleep until the
// timeout, or until what it asked for happens (the peer reads: writable),
// without using the CPU. Under the preload io_uring's poll completes for
// POLLHUP/POLLERR/POLLRDHUP whatever was asked, so each re-armed poll
// completed at once and the hook looped until the deadline (~300 ms of CPU
// for a 300 ms wait; forever without one).
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu_ms(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static const char* cpu_word(double ms) { return ms < 100 ? "little" : "busy"; }

// A unix stream socket whose send buffer is full and whose peer has shut
// down writing: s[0] reports POLLRDHUP (and POLLIN: EOF) but not POLLOUT.
static void full_half_closed(int s[2]) {
  socketpair(AF_UNIX, SOCK_STREAM, 0, s);
  int fl = fcntl(s[0], F_GETFL);
  fcntl(s[0], F_SETFL, fl | O_NONBLOCK);
  char buf[4096] = {0};
  while (write(s[0], buf, sizeof buf) > 0) {
  }
  fcntl(s[0], F_SETFL, fl);
  shutdown(s[1], SHUT_WR);
}

static void* drain_later(void* arg) {
  int fd = *(int*)arg;
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  char buf[65536];
  for (int i = 0; i < 64; i++) {
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) break;
  }
  return NULL;
}

static void* nothing(void* arg) { return arg; }

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  pthread_t t;  // the runtime starts with the first thread
  pthread_create(&t, NULL, nothing, NULL);
  pthread_join(t, NULL);

  int p[2];
  if (pipe(p) != 0) return 1;
  close(p[1]);
  fd_set e;
  FD_ZERO(&e);
  FD_SET(p[0], &e);
  struct timeval tv = {0, 300000};
  double c0 = cpu_ms();
  int r = select(p[0] + 1, NULL, NULL, &e, &tv);
  printf("select, except set, hung-up pipe, 300 ms: %d, cpu %s\n", r, cpu_word(cpu_ms() - c0));

  int s[2];
  full_half_closed(s);
  struct pollfd pf = {s[0], POLLOUT, 0};
  c0 = cpu_ms();
  r = poll(&pf, 1, 300);
  printf("poll POLLOUT, full socket, peer shut down writing, 300 ms: %d revents %#x, cpu %s\n", r, pf.revents,
         cpu_word(cpu_ms() - c0));

  // The peer reads after 100 ms: the wait ends writable.
  pthread_create(&t, NULL, drain_later, &s[1]);
  c0 = cpu_ms();
  r = poll(&pf, 1, -1);
  printf("poll POLLOUT, no timeout, peer reads later: %d revents %#x, cpu %s\n", r, pf.revents,
         cpu_word(cpu_ms() - c0));
  pthread_join(t, NULL);
  close(s[0]);
  close(s[1]);

  full_half_closed(s);
  pthread_create(&t, NULL, drain_later, &s[1]);
  fd_set w;
  FD_ZERO(&w);
  FD_SET(s[0], &w);
  c0 = cpu_ms();
  r = select(s[0] + 1, NULL, &w, NULL, NULL);
  printf("select, write set, no timeout, peer reads later: %d writable %d, cpu %s\n", r, FD_ISSET(s[0], &w),
         cpu_word(cpu_ms() - c0));
  pthread_join(t, NULL);
  return 0;
}
