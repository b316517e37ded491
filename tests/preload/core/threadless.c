// A program that never creates a thread runs exactly as without the
// library: no hidden thread, no io_uring instance.
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  int threads = -1;
  while (fgets(line, sizeof line, f)) sscanf(line, "Threads: %d", &threads);
  fclose(f);
  int rings = 0;
  DIR* d = opendir("/proc/self/fd");
  struct dirent* e;
  while ((e = readdir(d))) {
    char path[300], target[256];
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n > 0) {
      target[n] = 0;
      if (strstr(target, "io_uring")) rings++;
    }
  }
  closedir(d);
  printf("threads %d io_uring fds %d\n", threads, rings);
  return 0;
}
