// Unit-test helper: runs a body in a forked child under a descriptor
// limit of its own (the runtime's fd-related state is process-wide and
// sized from RLIMIT_NOFILE), bounded by alarm(20).
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

// body's return value is the child's exit status (0: passed; 100: the
// limit could not be set).
inline void run_limited(rlim_t nofile, const std::function<int()>& body) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);
    rlimit rl{nofile, nofile};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(100);
    _exit(body());
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}
