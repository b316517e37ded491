// sendfile() and splice() to blocking sockets: all bytes arrive in order,
// the offset argument / file position move as the kernel's do.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

enum { kSize = 3 << 20 };
static unsigned char* data;

static void* drain(void* arg) {
  int fd = (int)(long)arg;
  static unsigned char buf[65536];
  long total = 0, bad = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; i++) bad += buf[i] != data[(total + i) % kSize];
    total += n;
  }
  return (void*)(bad ? -1 : total);
}

static void* run(void* arg) {
  (void)arg;
  char path[] = "/tmp/unblock-sendfile-XXXXXX";
  int f = mkstemp(path);
  write(f, data, kSize);
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pthread_t t;
  pthread_create(&t, NULL, drain, (void*)(long)sv[1]);
  off_t off = 0;
  ssize_t a = sendfile(sv[0], f, &off, kSize);  // with an offset: position untouched
  printf("sendfile with offset: %zd, offset now %ld, position %ld\n", a, (long)off, (long)lseek(f, 0, SEEK_CUR));
  lseek(f, 0, SEEK_SET);
  ssize_t b = sendfile(sv[0], f, NULL, kSize);  // without: position moves
  printf("sendfile without offset: %zd, position %ld\n", b, (long)lseek(f, 0, SEEK_CUR));
  int p[2];
  pipe(p);
  write(p[1], data, 4096);  // continues the byte pattern
  ssize_t c = splice(p[0], NULL, sv[0], NULL, 4096, 0);
  printf("splice pipe to socket: %zd\n", c);
  shutdown(sv[0], SHUT_WR);
  void* r;
  pthread_join(t, &r);
  printf("bytes received and verified: %ld (want %ld)\n", (long)r, 2L * kSize + 4096);
  close(sv[0]);
  close(sv[1]);
  close(p[0]);
  close(p[1]);
  close(f);
  unlink(path);
  return NULL;
}

int main(void) {
  data = malloc(kSize);
  for (int i = 0; i < kSize; i++) data[i] = (unsigned char)(i * 7 + i / 4096);
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  return 0;
}
