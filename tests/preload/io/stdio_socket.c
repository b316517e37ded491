// stdio on sockets and pipes: glibc's FILE functions read and write with
// libc-internal calls that a preload cannot interpose, so a thread blocked
// in fgets() on an fdopen'd socket blocks its worker. The program must not
// notice: the other threads keep running (the monitor hands them to another
// OS thread) and every line arrives intact. With UNBLOCK_WORKERS=1 a ticker
// that needs 50 sleeps to finish before the line is sent would deadlock
// without the hand-off.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { kLines = 200, kTicks = 50 };

static atomic_int ticks;

static void* ticker(void* arg) {
  (void)arg;
  for (int i = 0; i < kTicks; ++i) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&ticks, 1);
  }
  return NULL;
}

static void* line_reader(void* arg) {
  FILE* in = fdopen((int)(long)arg, "r");
  char line[256];
  long n = 0, bytes = 0;
  while (fgets(line, sizeof line, in)) {
    int want = snprintf(NULL, 0, "line %ld of the socket\n", n);
    char expect[64];
    snprintf(expect, sizeof expect, "line %ld of the socket\n", n);
    if ((int)strlen(line) != want || strcmp(line, expect) != 0) {
      printf("line %ld garbled: %s", n, line);
      break;
    }
    ++n;
    bytes += want;
  }
  fclose(in);
  return (void*)n;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
  pthread_t r, t;
  pthread_create(&r, NULL, line_reader, (void*)(long)sv[0]);
  // Let the reader block in fgets first, then run the ticker to the end
  // while it stays blocked.
  struct timespec ts = {0, 20000000};
  nanosleep(&ts, NULL);
  pthread_create(&t, NULL, ticker, NULL);
  pthread_join(t, NULL);
  printf("ticker finished %d ticks while the reader waited in fgets\n", atomic_load(&ticks));

  // The writer side through stdio too, in a thread of its own, with a
  // buffer smaller than what is written so it flushes many times.
  FILE* out = fdopen(sv[1], "w");
  static char buf[512];
  setvbuf(out, buf, _IOFBF, sizeof buf);
  for (int i = 0; i < kLines; ++i) fprintf(out, "line %d of the socket\n", i);
  fclose(out);
  void* got;
  pthread_join(r, &got);
  printf("reader got %ld of %d lines intact\n", (long)got, kLines);
  return 0;
}
