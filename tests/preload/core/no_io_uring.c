// io_uring unavailable (a seccomp filter makes io_uring_setup fail with the
// errno given as argv[1], as container runtimes do): the program still runs
// correctly, its threads as ordinary threads.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static void deny_io_uring(int err) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
    perror("seccomp");
    exit(2);
  }
}

static void* worker(void* arg) {
  usleep(1000);
  return (void*)((long)arg * 2);
}

int main(int argc, char** argv) {
  deny_io_uring(argc > 1 ? atoi(argv[1]) : EPERM);
  long sum = 0;
  pthread_t t[50];
  for (long i = 0; i < 50; i++) pthread_create(&t[i], NULL, worker, (void*)i);
  for (int i = 0; i < 50; i++) {
    void* r;
    pthread_join(t[i], &r);
    sum += (long)r;
  }
  printf("threads done, sum %ld\n", sum);
  return 0;
}
