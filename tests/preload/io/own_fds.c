// The library's own descriptors (rings or epoll sets, eventfds, the control
// socket) must not show in the program's numbering or fall to its closing
// sweeps. A plain run's first descriptors are 3, 4, 5...: under the preload
// they must be the same numbers. A daemon-style sweep - close() of every
// number up to a bound, then close_range(3, ~0U), then closefrom(3) - must
// close exactly what the program had (the library's answer EBADF, as the
// plain run's unused numbers do), and blocking calls across threads must
// go on working after each sweep. Prints numbers and counts, not timings.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void* late_writer(void* arg) {
  int fd = *(int*)arg;
  sleep_ms(20);
  if (write(fd, "ping", 4) != 4) abort();
  return NULL;
}

// A blocking read that has to wait for another thread (the engine's path).
static void round_trip(const char* when) {
  int p[2];
  if (pipe(p) != 0) abort();
  pthread_t t;
  pthread_create(&t, NULL, late_writer, &p[1]);
  char buf[8] = {0};
  ssize_t n = read(p[0], buf, sizeof buf);
  pthread_join(t, NULL);
  sleep_ms(5);
  printf("%s: read %zd \"%.*s\"\n", when, n, (int)(n > 0 ? n : 0), buf);
  close(p[0]);
  close(p[1]);
}

static int limit;

// Every number from 3 up, as a daemon does: what the harness left open is
// the same in both runs, the library's own must answer as unused numbers.
static void sweep_close(void) {
  int closed = 0, ebadf = 0, other = 0;
  for (int fd = 3; fd < limit; ++fd) {
    if (close(fd) == 0) ++closed;
    else if (errno == EBADF) ++ebadf;
    else ++other;
  }
  printf("close sweep: %d closed, %d EBADF, %d other\n", closed, ebadf, other);
}

enum { kOpened = 8 };
static int opened[kOpened];

// Five descriptors at the lowest numbers, and three placed by dup2 high up
// (among and above where a library would keep its own: a sweep that
// stopped at the first of those would leave them open).
static void open_some(void) {
  int p[2];
  opened[0] = open("/dev/null", O_RDONLY);
  opened[1] = socket(AF_UNIX, SOCK_STREAM, 0);
  if (pipe(p) != 0) abort();
  opened[2] = p[0];
  opened[3] = p[1];
  opened[4] = dup(opened[0]);
  int high[3] = {limit / 2, limit / 2 + 7, limit - 1};
  for (int i = 0; i < 3; ++i) opened[5 + i] = dup2(opened[0], high[i]) == high[i] ? high[i] : -1;
  printf("numbers: open %d socket %d pipe %d %d dup %d; high ones placed: %d\n", opened[0], opened[1], opened[2],
         opened[3], opened[4], (opened[5] >= 0) + (opened[6] >= 0) + (opened[7] >= 0));
}

static void report_opened(const char* when) {
  int open_now = 0;
  for (int i = 0; i < kOpened; ++i) open_now += opened[i] >= 0 && fcntl(opened[i], F_GETFD) >= 0;
  printf("%s: %d of ours still open\n", when, open_now);
}

int main(int argc, char** argv) {
  (void)argc;
  // The same limit in every environment (4,096, or the hard limit if
  // lower), set before the library starts: the process runs itself again.
  if (!getenv("OWN_FDS_LIMITED")) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
    setenv("OWN_FDS_LIMITED", "1", 1);
    execv("/proc/self/exe", argv);
    return 3;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  long max = sysconf(_SC_OPEN_MAX);
  limit = max <= 0 || max > 1 << 20 ? 1 << 20 : (int)max;  // unlimited: a bound of our own
  round_trip("start");

  open_some();
  sweep_close();
  report_opened("after the close sweep");
  round_trip("after the close sweep");

  open_some();
  // In pieces that end and start at arbitrary numbers.
  unsigned cuts[] = {3, 100, 900, 1000, (unsigned)limit / 2, (unsigned)limit / 2 + 1, ~0U};
  for (int i = 0; i + 1 < (int)(sizeof cuts / sizeof cuts[0]); ++i) {
    unsigned last = i + 2 < (int)(sizeof cuts / sizeof cuts[0]) ? cuts[i + 1] - 1 : ~0U;
    if (cuts[i] <= last && close_range(cuts[i], last, 0) != 0) printf("close_range: %s\n", strerror(errno));
  }
  report_opened("after close_range");
  round_trip("after close_range");

  open_some();
  closefrom(3);
  report_opened("after closefrom");
  round_trip("after closefrom");
  open_some();
  // A forked child that goes on running (a pre-fork server's worker) holds
  // what the program had, and none of the library's.
  pid_t pid = fork();
  if (pid == 0) {
    int n = 0;
    for (int fd = 3; fd < limit; ++fd) n += fcntl(fd, F_GETFD) >= 0;
    printf("child: %d descriptors from 3 up\n", n);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return 0;
}
