// setgid()/setuid() after threads exist change the credentials of every
// thread (glibc broadcasts the change to each thread with SIGSETXID; the
// kernel keeps credentials per thread). Each thread then reads its own
// credentials with raw system calls, and every task in /proc/self/task
// shows the new Uid/Gid.
//
// Needs root (to give the credentials away); otherwise both runs print the
// same "skipped" line. The argument says who calls setgid/setuid: "main"
// (the default) or "thread" (one of the other threads). The case runs in a
// child (this program executed again): once it is nobody, a process cannot
// write the preload's counters into the test's private directory, and those
// show that threads ran as fibers; the parent's do.
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { kThreads = 4, kNobody = 65534 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t started;
static int changed;  // 1 once the credentials were changed
static volatile int spin_release;
static int by_thread;

struct Creds {
  long uid, euid, gid, egid;
};
static struct Creds seen[kThreads + 1];

static struct Creds raw_creds(void) {
  struct Creds c = {syscall(SYS_getuid), syscall(SYS_geteuid), syscall(SYS_getgid), syscall(SYS_getegid)};
  return c;
}

static int change(void) {
  if (setgid(kNobody) != 0) return -1;
  if (setuid(kNobody) != 0) return -2;
  return 0;
}

static int change_result = 1;

static void publish_change(int r) {
  pthread_mutex_lock(&lock);
  change_result = r;
  changed = 1;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  spin_release = 1;
}

// Thread 0 waits on a condition, 1 sleeps, 2 computes, 3 waits on the
// condition and, with "thread", makes the change itself.
static void* worker(void* arg) {
  long me = (long)arg;
  pthread_barrier_wait(&started);
  if (me == 3 && by_thread) {
    publish_change(change());
  } else if (me == 1) {
    for (;;) {
      pthread_mutex_lock(&lock);
      int c = changed;
      pthread_mutex_unlock(&lock);
      if (c) break;
      usleep(5000);
    }
  } else if (me == 2) {
    unsigned long spins = 0;
    while (!spin_release) spins++;
    (void)spins;
  } else {
    pthread_mutex_lock(&lock);
    while (!changed) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
  }
  seen[me] = raw_creds();
  return NULL;
}

// Every task's Uid and Gid lines (real, effective, saved, fs) are all nobody.
// io_uring's own kernel workers (iou-wrk-*, iou-sqp-*) are not the program's
// threads and are left out: they take each request's credentials from the
// thread that submitted it, not from their own.
static int tasks_agree(int* count) {
  DIR* d = opendir("/proc/self/task");
  if (!d) return 0;
  int ok = 1;
  *count = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], line[256], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE* f = fopen(path, "r");
    if (f) {
      if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
      fclose(f);
    }
    if (strncmp(comm, "iou-", 4) == 0) continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    f = fopen(path, "r");
    if (!f) continue;  // the task ended meanwhile
    int fields = 0;
    while (fgets(line, sizeof line, f)) {
      unsigned a, b, c, dd;
      if ((strncmp(line, "Uid:", 4) == 0 || strncmp(line, "Gid:", 4) == 0) &&
          sscanf(line + 4, "%u %u %u %u", &a, &b, &c, &dd) == 4) {
        fields++;
        if (a != kNobody || b != kNobody || c != kNobody || dd != kNobody) ok = 0;
      }
    }
    fclose(f);
    if (fields != 2) ok = 0;
    ++*count;
  }
  closedir(d);
  return ok;
}

static int run_case(void) {
  pthread_barrier_init(&started, NULL, kThreads + 1);
  pthread_t t[kThreads];
  for (long i = 0; i < kThreads; i++) pthread_create(&t[i], NULL, worker, (void*)i);
  pthread_barrier_wait(&started);
  usleep(20000);  // the threads very likely wait (or compute) by now
  if (!by_thread) publish_change(change());
  for (int i = 0; i < kThreads; i++) pthread_join(t[i], NULL);
  seen[kThreads] = raw_creds();
  printf("%s changed the credentials: %d\n", by_thread ? "a thread" : "main", change_result);
  for (int i = 0; i <= kThreads; i++) {
    printf("%s %d: uid %ld euid %ld gid %ld egid %ld\n", i == kThreads ? "main" : "thread", i, seen[i].uid,
           seen[i].euid, seen[i].gid, seen[i].egid);
  }
  int tasks;
  int agree = tasks_agree(&tasks);
  printf("every task in /proc/self/task is nobody: %s\n", agree && tasks >= 1 ? "yes" : "no");
  return 0;
}

static void* nothing(void* arg) { return arg; }

int main(int argc, char** argv) {
  const char* who = argc > 1 ? argv[1] : "main";
  by_thread = strcmp(who, "thread") == 0;
  if (argc > 2 && strcmp(argv[2], "child") == 0) return run_case();
  if (geteuid() != 0) {
    printf("skipped: not root\n");
    return 0;
  }
  pthread_t t;
  pthread_create(&t, NULL, nothing, NULL);
  pthread_join(t, NULL);
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    execl("/proc/self/exe", argv[0], who, "child", (char*)NULL);
    _exit(127);
  }
  int status;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 1;
  return WEXITSTATUS(status);
}
