// A program that creates threads until pthread_create fails sees EAGAIN at
// the limit glibc meets, then goes on: its threads end, are joined, and a
// new thread can be created again.
//   nproc:  after one thread ran and was joined, as an unprivileged user
//           (kTestUid; the test must start as root) with RLIMIT_NPROC 24:
//           plain, the kernel refuses the 24th task of the user, main
//           included, so 23 threads are created. Skipped (a "skipped"
//           line) when not root or when kTestUid already runs tasks.
//           The limit counts every task of the uid on the machine, so the
//           uid is one no other test uses: other tests drop to 65534
//           (nobody) while they run in parallel with this one.
//   memory: RLIMIT_AS leaves about 1 GiB above what the process maps: the
//           8 MiB stacks run out (the count differs a little between plain
//           and preloaded runs, so only a range is printed).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_THREADS 4096  // bounds the loop if no limit applied

enum { kTestUid = 47613 };  // used by this test only

static pthread_t threads[MAX_THREADS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int release_all;

static void* waiter(void* arg) {
  pthread_mutex_lock(&mu);
  while (!release_all) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return arg;
}

// Tasks (threads of any process) whose real uid is `uid`.
static int tasks_of(uid_t uid) {
  DIR* proc = opendir("/proc");
  if (!proc) return -1;
  int n = 0;
  struct dirent* e;
  while ((e = readdir(proc))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    unsigned ruid = ~0u;
    int threads = 0;
    while (fgets(line, sizeof line, f)) {
      sscanf(line, "Uid: %u", &ruid);
      sscanf(line, "Threads: %d", &threads);
    }
    fclose(f);
    if (ruid == uid) n += threads;
  }
  closedir(proc);
  return n;
}

static long vm_size_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = 0;
  while (f && fgets(line, sizeof line, f)) sscanf(line, "VmSize: %ld", &kib);
  if (f) fclose(f);
  return kib;
}

// Says why the case cannot run here, the same way plain and preloaded
// (one thread still runs, so the preloaded run uses fibers).
static int skip(const char* why) {
  printf("skipped: %s\n", why);
  pthread_t t;
  release_all = 1;
  pthread_create(&t, NULL, waiter, NULL);
  pthread_join(t, NULL);
  return 0;
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int nproc = argc > 1 && strcmp(argv[1], "nproc") == 0;
  if (nproc) {
    if (getuid() != 0) return skip("not root");
    if (tasks_of(kTestUid) != 0) return skip("the test uid runs tasks");
    // A thread first (the limit is then set while threads already ran).
    pthread_t first;
    pthread_create(&first, NULL, waiter, (void*)1);
    pthread_mutex_lock(&mu);
    release_all = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(first, NULL);
    release_all = 0;
    if (setresgid(kTestUid, kTestUid, 0) != 0 || setresuid(kTestUid, kTestUid, 0) != 0) return skip("cannot become the test uid");
    struct rlimit rl = {24, 24};
    if (setrlimit(RLIMIT_NPROC, &rl) != 0) return 1;
  } else {
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = (rlim_t)(vm_size_kib() + 1024 * 1024) * 1024;
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 1;
  }
  int n = 0, err = 0;
  while (n < MAX_THREADS) {
    err = pthread_create(&threads[n], NULL, waiter, NULL);
    if (err) break;
    ++n;
  }
  if (nproc) printf("created %d, then: %s\n", n, strerror(err));
  else printf("created %s, then: %s\n", n > 64 && n < 200 ? "64 to 200" : "a number out of range", strerror(err));
  if (!nproc && (n <= 64 || n >= 200)) fprintf(stderr, "created %d\n", n);
  pthread_mutex_lock(&mu);
  release_all = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < n; ++i) pthread_join(threads[i], NULL);
  pthread_t again;
  int r = pthread_create(&again, NULL, waiter, NULL);
  printf("after joining them all, create: %s\n", strerror(r));
  if (r == 0) pthread_join(again, NULL);
  if (nproc && setresuid(-1, 0, -1) != 0) return 1;
  return 0;
}
