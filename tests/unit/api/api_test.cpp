// The blocking-call API (runtime/api.h) on a real runtime, without the
// preload: the test's main thread is adopted as a fiber (sched::ensure_started)
// and the calls under test run on fibers spawned with sched::spawn. Signals
// go through the runtime's emulation (signals::action, send_to_fiber), as the
// sigaction and pthread_kill hooks would send them.
//
// Each test asserts what the kernel does for the same call on an OS thread:
// EINTR without SA_RESTART, a restart with it (but not for a socket call with
// a timeout, nor for poll and sleeps), SO_RCVTIMEO/SO_SNDTIMEO as EAGAIN and
// partial counts, SIGPIPE unless MSG_NOSIGNAL, cancellation of a blocked
// read, and the real call for plain threads and non-blocking fds.
#include "runtime/api.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/scheduler.h"
#include "runtime/signals.h"

using namespace unblock;

namespace {

int64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

// Sleeps the calling fiber (the runtime's own sleep).
void nap_ms(long ms) {
  timespec req{ms / 1000, (ms % 1000) * 1000000};
  rt::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, nullptr);
}

class Runtime : public ::testing::Environment {
 public:
  void SetUp() override { ASSERT_TRUE(sched::ensure_started()) << "the runtime did not start (io_uring?)"; }
};
[[maybe_unused]] ::testing::Environment* const g_env = ::testing::AddGlobalTestEnvironment(new Runtime);

// A fiber running fn; join() waits for it.
class FiberThread {
 public:
  template <class Fn>
  explicit FiberThread(Fn fn) : fn_(std::move(fn)) {
    EXPECT_EQ(sched::spawn(&FiberThread::entry, this, sched::SpawnAttrs{}, &thread_), 0);
    fiber_ = Fiber::from_thread(thread_);
  }
  ~FiberThread() { join(); }
  Fiber* fiber() const { return fiber_; }
  // Waits (as the calling fiber) until the fiber is parked in an I/O or
  // sleep wait of the runtime.
  void wait_parked() {
    for (int i = 0; i < 2000; ++i) {
      if (fiber_->run_state.load() == static_cast<int>(RunState::kParked) &&
          (fiber_->reason == WaitReason::kIo || fiber_->reason == WaitReason::kSleep)) {
        return;
      }
      nap_ms(1);
    }
    ADD_FAILURE() << "the fiber never parked";
  }
  void* join() {
    if (joined_) return result_;
    joined_ = true;
    EXPECT_EQ(sched::join(fiber_, &result_, Deadline::never(), false), 0);
    return result_;
  }

 private:
  static void* entry(void* self) {
    static_cast<FiberThread*>(self)->fn_();
    return nullptr;
  }
  std::function<void()> fn_;
  pthread_t thread_{};
  Fiber* fiber_ = nullptr;
  bool joined_ = false;
  void* result_ = nullptr;
};

std::atomic<int> g_handled{0};
void on_signal(int) { g_handled.fetch_add(1); }

// Installs on_signal for sig in the runtime's emulation, with or without
// SA_RESTART; the old action comes back at the end of the scope.
struct Handler {
  int sig;
  struct sigaction old {};
  Handler(int s, bool restart) : sig(s) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigemptyset(&sa.sa_mask);
    EXPECT_EQ(signals::action(sig, &sa, &old), 0);
    g_handled = 0;
  }
  ~Handler() { signals::action(sig, &old, nullptr); }
};

void send(Fiber* f, int sig) {
  siginfo_t si{};
  si.si_signo = sig;
  si.si_code = SI_TKILL;
  si.si_pid = getpid();
  EXPECT_EQ(signals::send_to_fiber(f, si), 0);
}

struct Pipe {
  int fd[2] = {-1, -1};
  explicit Pipe(int flags = 0) {
    EXPECT_EQ(pipe2(fd, flags | O_CLOEXEC), 0);
    rt::fd_created(fd[0], flags & O_NONBLOCK, rt::FdKind::kPipe);
    rt::fd_created(fd[1], flags & O_NONBLOCK, rt::FdKind::kPipe);
  }
  ~Pipe() {
    for (int d : fd) {
      if (d >= 0) rt::close(d);
    }
  }
};

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0);
    rt::fd_created(fd[0], false, rt::FdKind::kSocket);
    rt::fd_created(fd[1], false, rt::FdKind::kSocket);
  }
  ~SocketPair() {
    for (int d : fd) {
      if (d >= 0) rt::close(d);
    }
  }
  // SO_RCVTIMEO/SO_SNDTIMEO on fd[i], told to the runtime as the hook does.
  void timeout(int i, bool rcv, long ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    EXPECT_EQ(setsockopt(fd[i], SOL_SOCKET, rcv ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, sizeof tv), 0);
    rt::fd_set_timeout(fd[i], rcv, tv);
  }
};

}  // namespace

TEST(Api, BlockingReadWaitsForTheWriterOnAnotherFiber) {
  Pipe p;
  long got = 0;
  char buf[8] = {};
  FiberThread reader([&] { got = rt::read(p.fd[0], buf, sizeof buf); });
  reader.wait_parked();
  EXPECT_EQ(rt::write(p.fd[1], "hello", 5), 5);
  reader.join();
  EXPECT_EQ(got, 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
}

TEST(Api, ReadInterruptedByAHandlerWithoutSaRestartReturnsEintr) {
  Handler h(SIGUSR1, false);
  Pipe p;
  long got = 0;
  char buf[8];
  FiberThread reader([&] { got = rt::read(p.fd[0], buf, sizeof buf); });
  reader.wait_parked();
  send(reader.fiber(), SIGUSR1);
  reader.join();
  EXPECT_EQ(got, -EINTR);
  EXPECT_EQ(g_handled.load(), 1);
}

TEST(Api, ReadInterruptedByASaRestartHandlerRestartsAndGetsTheData) {
  Handler h(SIGUSR1, true);
  Pipe p;
  long got = 0;
  char buf[8] = {};
  FiberThread reader([&] { got = rt::read(p.fd[0], buf, sizeof buf); });
  reader.wait_parked();
  send(reader.fiber(), SIGUSR1);
  while (g_handled.load() == 0) nap_ms(1);
  reader.wait_parked();  // waiting again: restarted
  EXPECT_EQ(rt::write(p.fd[1], "ab", 2), 2);
  reader.join();
  EXPECT_EQ(got, 2);
  EXPECT_EQ(g_handled.load(), 1);
}

TEST(Api, RecvWithSoRcvtimeoEndsWithEagainAfterTheTimeout) {
  SocketPair s;
  s.timeout(0, true, 60);
  long got = 0;
  int64_t took = 0;
  FiberThread reader([&] {
    char c;
    int64_t t0 = now_ns();
    got = rt::recv(s.fd[0], &c, 1, 0);
    took = now_ns() - t0;
  });
  reader.join();
  EXPECT_EQ(got, -EAGAIN);
  EXPECT_GE(took, 60 * 1000000LL);
}

TEST(Api, SaRestartDoesNotRestartASocketCallWithATimeout) {
  Handler h(SIGUSR1, true);
  SocketPair s;
  s.timeout(0, true, 10000);
  long got = 0;
  FiberThread reader([&] {
    char c;
    got = rt::recv(s.fd[0], &c, 1, 0);
  });
  reader.wait_parked();
  send(reader.fiber(), SIGUSR1);
  reader.join();
  EXPECT_EQ(got, -EINTR);
  EXPECT_EQ(g_handled.load(), 1);
}

TEST(Api, BlockingSendWithSoSndtimeoReturnsThePartialCount) {
  SocketPair s;
  s.timeout(0, false, 100);
  std::vector<char> big(8 << 20, 'x');
  long sent = 0;
  FiberThread writer([&] { sent = rt::send(s.fd[0], big.data(), big.size(), 0); });
  writer.join();
  // Nobody reads: the socket buffer takes part of it, then SO_SNDTIMEO ends
  // the call with what went out.
  EXPECT_GT(sent, 0);
  EXPECT_LT(sent, static_cast<long>(big.size()));
}

TEST(Api, BlockingSendSendsEverythingInPieces) {
  SocketPair s;
  std::vector<char> big(4 << 20, 'y');
  long sent = 0, received = 0;
  FiberThread writer([&] { sent = rt::send(s.fd[0], big.data(), big.size(), 0); });
  FiberThread reader([&] {
    std::vector<char> buf(64 << 10);
    while (received < static_cast<long>(big.size())) {
      long r = rt::recv(s.fd[1], buf.data(), buf.size(), 0);
      if (r <= 0) break;
      received += r;
    }
  });
  writer.join();
  reader.join();
  EXPECT_EQ(sent, static_cast<long>(big.size()));
  EXPECT_EQ(received, static_cast<long>(big.size()));
}

TEST(Api, SendToAClosedPeerRaisesSigpipeUnlessMsgNosignal) {
  Handler h(SIGPIPE, false);
  SocketPair s;
  rt::close(s.fd[1]);
  s.fd[1] = -1;
  long first = 0, second = 0;
  int after_first = 0;
  FiberThread writer([&] {
    first = rt::send(s.fd[0], "x", 1, 0);
    after_first = g_handled.load();
    second = rt::send(s.fd[0], "x", 1, MSG_NOSIGNAL);
  });
  writer.join();
  EXPECT_EQ(first, -EPIPE);
  EXPECT_EQ(after_first, 1);
  EXPECT_EQ(second, -EPIPE);
  EXPECT_EQ(g_handled.load(), 1);
}

TEST(Api, PollTimesOutWithZero) {
  Pipe p;
  long got = -1;
  int64_t took = 0;
  FiberThread waiter([&] {
    pollfd pfd{p.fd[0], POLLIN, 0};
    int64_t t0 = now_ns();
    got = rt::poll(&pfd, 1, 40);
    took = now_ns() - t0;
  });
  waiter.join();
  EXPECT_EQ(got, 0);
  EXPECT_GE(took, 40 * 1000000LL);
}

TEST(Api, PollReportsTheKernelsReventsWhenAnotherFiberWrites) {
  Pipe p;
  long got = -1;
  pollfd pfd{p.fd[0], POLLIN, 0};
  FiberThread waiter([&] { got = rt::poll(&pfd, 1, -1); });
  waiter.wait_parked();
  EXPECT_EQ(rt::write(p.fd[1], "z", 1), 1);
  waiter.join();
  EXPECT_EQ(got, 1);
  EXPECT_EQ(pfd.revents, POLLIN);
}

TEST(Api, PollIsInterruptedByAHandlerEvenWithSaRestart) {
  Handler h(SIGUSR1, true);
  Pipe p;
  long got = 0;
  FiberThread waiter([&] {
    pollfd pfd{p.fd[0], POLLIN, 0};
    got = rt::poll(&pfd, 1, -1);
  });
  waiter.wait_parked();
  send(waiter.fiber(), SIGUSR1);
  waiter.join();
  EXPECT_EQ(got, -EINTR);
  EXPECT_EQ(g_handled.load(), 1);
}

TEST(Api, SelectIsInterruptedAndLeavesTheSetsAsPassed) {
  Handler h(SIGUSR1, false);
  Pipe p;
  long got = 0;
  bool still_set = false;
  FiberThread waiter([&] {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p.fd[0], &r);
    got = rt::select(p.fd[0] + 1, &r, nullptr, nullptr, nullptr);
    still_set = FD_ISSET(p.fd[0], &r);
  });
  waiter.wait_parked();
  send(waiter.fiber(), SIGUSR1);
  waiter.join();
  EXPECT_EQ(got, -EINTR);
  EXPECT_TRUE(still_set);
}

TEST(Api, SleepIsInterruptedWithTheTimeLeftAndNotRestarted) {
  Handler h(SIGUSR1, true);
  long got = 0;
  timespec rem{};
  FiberThread sleeper([&] {
    timespec req{10, 0};
    got = rt::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
  });
  sleeper.wait_parked();
  send(sleeper.fiber(), SIGUSR1);
  sleeper.join();
  EXPECT_EQ(got, -EINTR);
  EXPECT_GE(rem.tv_sec, 8);
  EXPECT_LE(rem.tv_sec, 10);
}

TEST(Api, InvalidSleepIsEinvalWithoutWaiting) {
  long got = 0;
  FiberThread sleeper([&] {
    timespec req{0, 1000000000};
    got = rt::clock_nanosleep(CLOCK_MONOTONIC, 0, &req, nullptr);
  });
  sleeper.join();
  EXPECT_EQ(got, -EINVAL);
}

TEST(Api, NonBlockingFdGetsEagainAtOnce) {
  Pipe p(O_NONBLOCK);
  long got = 0;
  FiberThread reader([&] {
    char c;
    got = rt::read(p.fd[0], &c, 1);
  });
  reader.join();
  EXPECT_EQ(got, -EAGAIN);
}

TEST(Api, MsgDontwaitRecvGetsEagainAtOnce) {
  SocketPair s;
  long got = 0;
  FiberThread reader([&] {
    char c;
    got = rt::recv(s.fd[0], &c, 1, MSG_DONTWAIT);
  });
  reader.join();
  EXPECT_EQ(got, -EAGAIN);
}

TEST(Api, PlainThreadGetsTheRealCallAndItsErrno) {
  Pipe p(O_NONBLOCK);
  long empty = 0, bad = 0, ok = 0;
  std::thread plain([&] {
    char c;
    empty = rt::read(p.fd[0], &c, 1);
    bad = rt::read(-1, &c, 1);
    ok = rt::write(p.fd[1], "q", 1);
  });
  plain.join();
  EXPECT_EQ(empty, -EAGAIN);
  EXPECT_EQ(bad, -EBADF);
  EXPECT_EQ(ok, 1);
}

TEST(Api, ErrnoIsLeftAloneOnSuccess) {
  Pipe p;
  int seen = 0;
  FiberThread f([&] {
    errno = 1234;
    EXPECT_EQ(rt::write(p.fd[1], "a", 1), 1);
    char c;
    EXPECT_EQ(rt::read(p.fd[0], &c, 1), 1);
    seen = errno;
  });
  f.join();
  EXPECT_EQ(seen, 1234);
}

TEST(Api, CancellationEndsABlockedReadAndUnwindsTheFiber) {
  ASSERT_TRUE(cancel::prepare_unwinder());
  Pipe p;
  bool returned = false;
  FiberThread reader([&] {
    char c;
    rt::read(p.fd[0], &c, 1);
    returned = true;
  });
  reader.wait_parked();
  EXPECT_EQ(cancel::request(reader.fiber()), 0);
  EXPECT_EQ(reader.join(), PTHREAD_CANCELED);
  EXPECT_FALSE(returned);
  // The cancelled read's completion was drained: the pipe is usable.
  EXPECT_EQ(rt::write(p.fd[1], "k", 1), 1);
  char c = 0;
  EXPECT_EQ(rt::read(p.fd[0], &c, 1), 1);
  EXPECT_EQ(c, 'k');
}
