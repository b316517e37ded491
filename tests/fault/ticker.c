// A long-running program for live control: a thread reads /dev/zero every
// 20 ms and prints one line per read ("N ok" or "N -1 ERRNO"), until the file
// named by $STOP_FILE exists (then it exits normally) or 60 s pass.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void* tick(void* arg) {
  const char* stop = getenv("STOP_FILE");
  int fd = open("/dev/zero", O_RDONLY);
  for (int i = 0; i < 3000; ++i) {
    if (stop && access(stop, F_OK) == 0) break;
    char buf[32];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) printf("%d -1 %s\n", i, strerrorname_np(errno));
    else printf("%d ok\n", i);
    usleep(20000);
  }
  close(fd);
  return arg;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_t t;
  pthread_create(&t, NULL, tick, NULL);
  pthread_join(t, NULL);
  return 0;
}
