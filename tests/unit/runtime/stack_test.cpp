#include "runtime/stack.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/tls.h"
#include "shim/config.h"

using unblock::StackRegion;

class Stacks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    unblock::config::load();
    unblock::config::resolve_defaults();
    ASSERT_TRUE(unblock::tls::init()) << unblock::tls::failure();
  }
};

TEST_F(Stacks, RegionHasGuardBelowAndRoomForTheTcb) {
  StackRegion r;
  ASSERT_TRUE(unblock::stacks::allocate(64 * 1024, &r));
  EXPECT_GE(r.guard, 4096u);
  EXPECT_GE(static_cast<size_t>(r.top() - r.stack_low()), 64 * 1024 + unblock::tls::reserve());
  r.stack_low()[0] = 1;  // usable
  r.top()[-1] = 1;
  unblock::stacks::release(r);
}

TEST_F(Stacks, ReleasedRegionsAreReused) {
  StackRegion a, b;
  ASSERT_TRUE(unblock::stacks::allocate(128 * 1024, &a));
  unblock::stacks::release(a);
  ASSERT_TRUE(unblock::stacks::allocate(128 * 1024, &b));
  EXPECT_EQ(a.base, b.base);
  unblock::stacks::release(b);
}

TEST_F(Stacks, TouchingTheGuardFaults) {
  StackRegion r;
  ASSERT_TRUE(unblock::stacks::allocate(64 * 1024, &r));
  pid_t pid = fork();
  if (pid == 0) {
    volatile char* p = r.base + r.guard / 2;
    *p = 1;
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  unblock::stacks::release(r);
}
