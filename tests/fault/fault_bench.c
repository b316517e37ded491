// End-to-end cost of the read() hook with fault injection configured in
// different ways: N one-byte reads of /dev/zero on the main thread (no
// fibers: what is measured is the hook, not the ring). Prints ns per call.
//   fault_bench [N]
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 2000000;
  int fd = open("/dev/zero", O_RDONLY);
  char c;
  for (long i = 0; i < 10000; ++i) read(fd, &c, 1);
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; ++i) {
      if (read(fd, &c, 1) != 1) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;
    if (ns < best) best = ns;
  }
  printf("%.1f\n", best);
  return 0;
}
