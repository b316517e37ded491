// Reads of regular files give what the kernel's give, whether the page
// cache holds the data, part of it or none (a direct RWF_NOWAIT read for
// cached data, the rest through the engine, was tried against this test
// and not kept: docs/benchmarks/README.md): a read
// fills the buffer unless the file ends first, the file position moves by
// what was read, pread leaves it alone, a read at or past the end gives 0.
// A file of 8 MiB is written, its second half dropped from the cache
// (posix_fadvise DONTNEED after fsync), and read whole in one call.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

static unsigned char pattern(long i) { return (unsigned char)(i * 13 + (i >> 12)); }

static long first_wrong(const unsigned char* b, long from, long n) {
  for (long i = 0; i < n; i++) {
    if (b[i] != pattern(from + i)) return from + i;
  }
  return -1;
}

enum { kBig = 8 << 20, kSmall = 100 };

static void* reads(void* arg) {
  const char* dir = arg;
  char path[256];
  snprintf(path, sizeof path, "%s/unblock-file-reads.%d", dir, (int)getpid());
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) die("open");
  unlink(path);
  unsigned char* buf = malloc(kBig);
  if (!buf) die("malloc");
  for (long i = 0; i < kBig; i++) buf[i] = pattern(i);
  if (write(fd, buf, kSmall) != kSmall) die("write");

  // A buffer larger than the file: what is there, then 0.
  unsigned char small[4096];
  long r1 = pread(fd, small, sizeof small, 0);
  long r2 = pread(fd, small, sizeof small, kSmall);
  long r3 = pread(fd, small, sizeof small, 5000);
  printf("pread 4096 of a %d-byte file at 0: %ld (wrong at %ld); at its end: %ld; past it: %ld\n", kSmall, r1,
         first_wrong(small, 0, r1 > 0 ? r1 : 0), r2, r3);
  if (lseek(fd, 40, SEEK_SET) != 40) die("lseek");
  r1 = read(fd, small, sizeof small);
  long pos = lseek(fd, 0, SEEK_CUR);
  r2 = read(fd, small, sizeof small);
  printf("read 4096 from 40: %ld, position then %ld; again: %ld\n", r1, pos, r2);

  // 8 MiB, the second half not cached: one read returns all of it.
  if (ftruncate(fd, 0) != 0) die("ftruncate");
  if (pwrite(fd, buf, kBig, 0) != kBig) die("pwrite");
  if (fsync(fd) != 0) die("fsync");
  int adv = posix_fadvise(fd, kBig / 2, kBig / 2, POSIX_FADV_DONTNEED);
  memset(buf, 0, kBig);
  if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");
  r1 = read(fd, buf, kBig);
  pos = lseek(fd, 0, SEEK_CUR);
  printf("read of 8 MiB, half of it dropped from the cache (fadvise %s): %ld, wrong at %ld, position %ld\n",
         adv == 0 ? "ok" : "failed", r1, first_wrong(buf, 0, r1 > 0 ? r1 : 0), pos);
  adv = posix_fadvise(fd, 0, kBig, POSIX_FADV_DONTNEED);
  memset(buf, 0, kBig);
  r1 = pread(fd, buf, kBig - 1000, 1000);
  printf("pread of 8 MiB - 1000 at 1000, none of it cached: %ld, wrong at %ld, position still %ld\n", r1,
         first_wrong(buf, 1000, r1 > 0 ? r1 : 0), (long)lseek(fd, 0, SEEK_CUR));

  // Many small reads of a cached file: each gives its byte.
  if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");
  long bad = -1;
  for (long i = 0; i < 20000; i++) {
    unsigned char c;
    if (read(fd, &c, 1) != 1 || c != pattern(i)) {
      bad = i;
      break;
    }
  }
  printf("20000 one-byte reads: first wrong %ld\n", bad);
  free(buf);
  close(fd);
  return NULL;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  // A thread, so that under the preload the reads are a fiber's; the file
  // lives where the build runs (/tmp may be a tmpfs: no fadvise effect).
  const char* dir = argc > 1 ? argv[1] : ".";
  pthread_t t;
  if (pthread_create(&t, NULL, reads, (void*)dir) != 0) die("pthread_create");
  pthread_join(t, NULL);
  return 0;
}
