// Opening a FIFO (fifo(7)): a blocking read-only open waits for a writer, a
// blocking write-only open waits for a reader; O_NONBLOCK readers open at
// once, O_NONBLOCK writers without a reader get ENXIO; O_RDWR never waits.
// The waiting thread parks while others run, the fd is the lowest free one,
// and a signal handler interrupts the wait (EINTR without SA_RESTART).
// Prints results, not timings.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char path[64];
static atomic_int opened;  // the waiting open returned

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

struct Opener {
  int flags;
  int fd;
  int err;
};

static void* opener(void* arg) {
  struct Opener* o = arg;
  errno = 0;
  o->fd = open(path, o->flags);
  o->err = errno;
  atomic_store(&opened, 1);
  return NULL;
}

static void on_usr1(int s) { (void)s; }

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  snprintf(path, sizeof path, "/tmp/unblock-fifo-%d", (int)getpid());
  unlink(path);
  if (mkfifo(path, 0600) != 0) return 1;

  // A reader waits for a writer; meanwhile other threads run (main ticks).
  {
    struct Opener o = {O_RDONLY, -1, 0};
    pthread_t t;
    atomic_store(&opened, 0);
    pthread_create(&t, NULL, opener, &o);
    int ticks = 0;
    for (; ticks < 20; ++ticks) sleep_ms(1);
    printf("reader open still waiting after %d ticks: %d\n", ticks, !atomic_load(&opened));
    int w = open(path, O_WRONLY);
    pthread_join(t, NULL);
    printf("writer open: %s, reader open: %s\n", w >= 0 ? "ok" : strerror(errno), o.fd >= 0 ? "ok" : strerror(o.err));
    printf("reader flags: O_NONBLOCK %d\n", (fcntl(o.fd, F_GETFL) & O_NONBLOCK) != 0);
    if (write(w, "through the fifo", 16) != 16) return 1;
    char buf[32];
    ssize_t n = read(o.fd, buf, sizeof buf);
    printf("read %zd '%.*s'\n", n, (int)(n > 0 ? n : 0), buf);
    close(w);
    n = read(o.fd, buf, sizeof buf);
    printf("read after the writer closed: %zd\n", n);
    close(o.fd);
  }

  // A writer waits for a reader.
  {
    struct Opener o = {O_WRONLY, -1, 0};
    pthread_t t;
    atomic_store(&opened, 0);
    pthread_create(&t, NULL, opener, &o);
    sleep_ms(20);
    printf("writer open still waiting: %d\n", !atomic_load(&opened));
    int r = open(path, O_RDONLY);
    pthread_join(t, NULL);
    printf("reader open: %s, writer open: %s\n", r >= 0 ? "ok" : strerror(errno), o.fd >= 0 ? "ok" : strerror(o.err));
    if (write(o.fd, "x", 1) != 1) return 1;
    char c;
    printf("read %zd\n", read(r, &c, 1));
    close(o.fd);
    close(r);
  }

  // The lowest free fd, as natively: close 0 and open a FIFO reader. The
  // writer is a child process, which has descriptors of its own: opened in
  // this process before the reader's open (under load), it took number 0
  // itself and the reader got another (2 in 150 runs). The child very
  // likely opens once the reader waits; either order gives the reader 0.
  {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
      sleep_ms(10);
      int w = open(path, O_WRONLY);
      _exit(w >= 0 ? 0 : 1);
    }
    int saved = dup(0);
    close(0);
    struct Opener o = {O_RDONLY, -1, 0};
    pthread_t t;
    pthread_create(&t, NULL, opener, &o);
    pthread_join(t, NULL);
    int status = -1;
    waitpid(child, &status, 0);
    printf("reader got fd %d; the writer (a child process) opened: %s\n", o.fd,
           WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "yes" : "no");
    close(o.fd);
    dup2(saved, 0);
    close(saved);
  }

  // Non-blocking and read-write opens never wait.
  {
    errno = 0;
    int w = open(path, O_WRONLY | O_NONBLOCK);
    printf("O_WRONLY|O_NONBLOCK without a reader: %d %s\n", w, w < 0 ? strerror(errno) : "");
    int r = open(path, O_RDONLY | O_NONBLOCK);
    printf("O_RDONLY|O_NONBLOCK: %s, O_NONBLOCK set %d\n", r >= 0 ? "ok" : strerror(errno),
           r >= 0 && (fcntl(r, F_GETFL) & O_NONBLOCK) != 0);
    w = open(path, O_WRONLY | O_NONBLOCK);
    printf("O_WRONLY|O_NONBLOCK with a reader: %s\n", w >= 0 ? "ok" : strerror(errno));
    close(w);
    close(r);
    int rw = open(path, O_RDWR);
    printf("O_RDWR: %s\n", rw >= 0 ? "ok" : strerror(errno));
    close(rw);
  }

  // A handler without SA_RESTART interrupts a waiting open.
  {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    struct Opener o = {O_RDONLY, -1, 0};
    pthread_t t;
    atomic_store(&opened, 0);
    pthread_create(&t, NULL, opener, &o);
    sleep_ms(20);
    for (int i = 0; i < 1000 && !atomic_load(&opened); ++i) {
      pthread_kill(t, SIGUSR1);
      sleep_ms(2);
    }
    pthread_join(t, NULL);
    printf("open interrupted by a handler: %d %s\n", o.fd, o.fd < 0 ? strerror(o.err) : "");
    if (o.fd >= 0) close(o.fd);
  }

  // open is a cancellation point: a thread cancelled while waiting for a
  // writer ends, and leaves no reader behind (a non-blocking writer then
  // finds none).
  {
    struct Opener o = {O_RDONLY, -1, 0};
    pthread_t t;
    atomic_store(&opened, 0);
    pthread_create(&t, NULL, opener, &o);
    sleep_ms(20);
    pthread_cancel(t);
    void* res;
    pthread_join(t, &res);
    printf("open cancelled: %s, returned %d\n", res == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "not cancelled",
           atomic_load(&opened));
    errno = 0;
    int w = open(path, O_WRONLY | O_NONBLOCK);
    printf("then O_WRONLY|O_NONBLOCK: %d %s\n", w, w < 0 ? strerror(errno) : "");
    if (w >= 0) close(w);
  }

  // Regular files and /dev/null open as before.
  int z = open("/dev/null", O_RDONLY);
  struct stat st;
  printf("/dev/null: %s\n", z >= 0 && fstat(z, &st) == 0 && S_ISCHR(st.st_mode) ? "ok" : "wrong");
  close(z);
  unlink(path);
  return 0;
}
