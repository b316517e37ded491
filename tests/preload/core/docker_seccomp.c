// docker_seccomp PROG [ARGS...]: runs PROG the way Docker 25+ (moby PR
// 46762) and containerd 2's RuntimeDefault profile let it run: a seccomp
// filter makes io_uring_setup, io_uring_enter and io_uring_register fail
// with EPERM. UNBLOCK_ENGINE is removed from the environment, so the
// preloaded library chooses its engine itself (auto): it must pick the
// epoll engine and still run the threads as fibers (tests/preload/compare.sh
// with COMPARE_EXPECT_ENGINE=epoll).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: docker_seccomp PROG [ARGS...]\n");
    return 2;
  }
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
    perror("seccomp");
    return 2;
  }
  unsetenv("UNBLOCK_ENGINE");
  execvp(argv[1], argv + 1);
  perror("execvp");
  return 127;
}
