// runtime/own_fds: the library's descriptors moved out of the program's
// numbers, refused to its closes, and skipped by close_range sweeps. Each
// test runs in a forked child: the module's state is process-wide.
#include "runtime/own_fds.h"
#include "tests/unit/runtime/run_limited.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace own_fds = unblock::own_fds;

namespace {

bool is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

}  // namespace

TEST(OwnFds, AdoptMovesAboveTheProgramsNumbersAndFreesTheOldOne) {
  run_limited(1024, [] {  // the library's range: 7/8 x 1024 - 32 = 864 up
    int low = eventfd(0, EFD_CLOEXEC);
    int own = own_fds::adopt(low);
    if (own < 864 || own >= 1024) return 1;
    if (is_open(low)) return 2;  // the program's next open gets it back
    if (!(fcntl(own, F_GETFD) & FD_CLOEXEC)) return 3;
    if (!own_fds::is_own(own) || own_fds::is_own(low)) return 4;
    own_fds::release(own);
    if (own_fds::is_own(own)) return 5;
    close(own);
    return 0;
  });
}

TEST(OwnFds, AnFdClosedBeforeItCouldBeMovedIsNotClaimed) {
  run_limited(1024, [] {
    int fd = eventfd(0, EFD_CLOEXEC);
    close(fd);  // a program's sweep got there first
    if (own_fds::adopt(fd) != -1) return 1;
    return own_fds::is_own(fd) ? 2 : 0;
  });
}

// Program descriptors right below, between and above the library's, and
// among its duplicates: close_range in pieces that start and end on them
// closes every program descriptor and none of the library's.
TEST(OwnFds, CloseRangeClosesEveryStretchBetweenTheLibrarysDescriptors) {
  run_limited(1024, [] {
    int a = own_fds::adopt(eventfd(0, EFD_CLOEXEC));
    int b = own_fds::adopt(eventfd(0, EFD_CLOEXEC));
    if (a < 0 || b != a + 1) return 1;
    own_fds::set_dup_base(900);
    int d = static_cast<int>(syscall(SYS_fcntl, a, F_DUPFD_CLOEXEC, 950));
    own_fds::mark_dup(d);
    int ref = eventfd(0, 0);
    int prog[] = {3, 4, a - 1, b + 1, b + 2, d - 1, d + 1, 1023};
    for (int p : prog) {
      if (p != ref && dup2(ref, p) != p) return 2;
    }
    close(ref);
    for (auto [first, last] : {std::pair<unsigned, unsigned>{3, static_cast<unsigned>(a)},
                               {static_cast<unsigned>(a), static_cast<unsigned>(b)},
                               {static_cast<unsigned>(b), static_cast<unsigned>(d)},
                               {static_cast<unsigned>(d), ~0U}}) {
      if (own_fds::close_range_except_own(first, last, 0) != 0) return 3;
    }
    for (size_t i = 0; i < sizeof prog / sizeof prog[0]; ++i) {
      if (is_open(prog[i])) return 10 + static_cast<int>(i);
    }
    if (!is_open(a) || !is_open(b) || !is_open(d)) return 4;
    if (!own_fds::is_own(a) || !own_fds::is_own(b) || !own_fds::is_own(d)) return 5;
    // A forked child whose runtime is off gives them all back.
    own_fds::close_all();
    if (is_open(a) || is_open(b) || is_open(d)) return 7;
    return own_fds::is_own(a) || own_fds::is_own(d) ? 8 : 0;
  });
}
