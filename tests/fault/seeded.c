// A program whose every read may be faulted at random: prints, per thread,
// which of its reads failed or came back short. Under the same
// UNBLOCK_FAULT_SEED the output must be the same run after run
// (tests/fault/seed.sh).
//
// seeded THREADS READS
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int reads;
static char report[64][4096];

static void* reader(void* arg) {
  long id = (long)arg;
  int fd = open("/dev/zero", O_RDONLY);
  char* out = report[id];
  int len = snprintf(out, sizeof report[id], "thread %ld:", id);
  for (int i = 0; i < reads; ++i) {
    char buf[64];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) len += snprintf(out + len, sizeof report[id] - len, " %d:%s", i, strerrorname_np(errno));
    else if (r < (ssize_t)sizeof buf) len += snprintf(out + len, sizeof report[id] - len, " %d:short%zd", i, r);
    if (len >= (int)sizeof report[id] - 32) break;
  }
  close(fd);
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  reads = argc > 2 ? atoi(argv[2]) : 100;
  if (threads < 1 || threads > 64) return 2;
  pthread_t t[64];
  if (threads == 1) {
    reader(0);
  } else {
    for (long i = 0; i < threads; ++i) pthread_create(&t[i], NULL, reader, (void*)i);
    for (int i = 0; i < threads; ++i) pthread_join(t[i], NULL);
  }
  for (int i = 0; i < threads; ++i) puts(report[i]);
  return 0;
}
