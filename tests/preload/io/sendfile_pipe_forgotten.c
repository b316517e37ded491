// sendfile() to a blocking socket runs through a pipe of the library's own,
// closed before it returns. Its descriptor numbers are then free: the next
// descriptor the program gets from a call the library does not track (here
// eventfd) may reuse one, and must be treated as what it is, not as the
// blocking pipe that had the number. A non-blocking eventfd with a zero
// count answers read() with EAGAIN at once; waited on as a blocking pipe,
// the read never returned (the alarm ends the run).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

static void* run(void* arg) {
  (void)arg;
  char path[] = "/tmp/unblock-sendfile-pipe-XXXXXX";
  int f = mkstemp(path);
  if (f < 0) return (void*)1;
  static char data[4096];
  memset(data, 'd', sizeof data);
  if (write(f, data, sizeof data) != (ssize_t)sizeof data) return (void*)1;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return (void*)1;
  off_t off = 0;
  ssize_t sent = sendfile(sv[0], f, &off, sizeof data);
  printf("sendfile: %zd\n", sent);
  // The lowest free numbers: where the library's pipe was, if it used one.
  int e1 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int e2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  uint64_t v;
  ssize_t r1 = read(e1, &v, sizeof v);
  int err1 = errno;
  ssize_t r2 = read(e2, &v, sizeof v);
  int err2 = errno;
  printf("eventfd reads: %zd %s, %zd %s\n", r1, r1 < 0 ? strerror(err1) : "-", r2, r2 < 0 ? strerror(err2) : "-");
  close(e1);
  close(e2);
  close(sv[0]);
  close(sv[1]);
  close(f);
  unlink(path);
  return NULL;
}

int main(void) {
  alarm(20);
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  void* r;
  pthread_join(t, &r);
  return r ? 1 : 0;
}
