// unblock::sync::Barrier and Once on plain OS threads: one serial thread per
// round (also with more threads than the count), glibc's init checks,
// concurrent pthread_once callers while the routine blocks, and a routine
// that throws.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/sync.h"
#include "sync_test_util.h"

using unblock::sync::Barrier;
using unblock::sync::Once;
using namespace sync_test;

TEST(Barrier, InitChecksTheCount) {
  pthread_barrier_t b;
  EXPECT_EQ(Barrier::init(&b, nullptr, 0), EINVAL);
  EXPECT_EQ(Barrier::init(&b, nullptr, UINT_MAX / 2), EINVAL);
  EXPECT_EQ(Barrier::init(&b, nullptr, 1), 0);
  EXPECT_EQ(Barrier::wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
  EXPECT_EQ(Barrier::wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
  EXPECT_EQ(Barrier::destroy(&b), 0);
}

TEST(Barrier, ExactlyOneSerialThreadPerRound) {
  constexpr int kThreads = 6, kRounds = 300;
  pthread_barrier_t b;
  ASSERT_EQ(Barrier::init(&b, nullptr, kThreads), 0);
  std::atomic<int> serial{0};
  std::atomic<int> arrived[kRounds] = {};
  std::atomic<bool> early{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < kRounds; ++r) {
        arrived[r].fetch_add(1);
        int rc = Barrier::wait(&b);
        if (arrived[r].load() != kThreads) early = true;  // left before everyone arrived
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD) {
          serial.fetch_add(1);
        } else {
          EXPECT_EQ(rc, 0);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(serial.load(), kRounds);
  EXPECT_FALSE(early.load());
  EXPECT_EQ(Barrier::destroy(&b), 0);
}

TEST(Barrier, MoreThreadsThanTheCountFormExactRounds) {
  // Nine threads share 360 arrivals (tickets) on a barrier of three, so
  // rounds form from whichever threads arrive; the total is a multiple of
  // three, so every round completes.
  constexpr int kCount = 3, kThreads = 9, kTotal = 360;
  pthread_barrier_t b;
  ASSERT_EQ(Barrier::init(&b, nullptr, kCount), 0);
  std::atomic<int> serial{0}, passes{0}, tickets{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (tickets.fetch_add(1) < kTotal) {
        if (Barrier::wait(&b) == PTHREAD_BARRIER_SERIAL_THREAD) serial.fetch_add(1);
        passes.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(passes.load(), kTotal);
  EXPECT_EQ(serial.load(), kTotal / kCount);
}

TEST(Barrier, ProcessSharedBarriersAreGlibcs) {
  pthread_barrierattr_t a;
  pthread_barrierattr_init(&a);
  pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_barrier_t b;
  ASSERT_EQ(Barrier::init(&b, &a, 2), 0);
  std::atomic<int> serial{0};
  std::thread t([&] { serial += Barrier::wait(&b) == PTHREAD_BARRIER_SERIAL_THREAD; });
  serial += Barrier::wait(&b) == PTHREAD_BARRIER_SERIAL_THREAD;
  t.join();
  EXPECT_EQ(serial.load(), 1);
  EXPECT_EQ(Barrier::destroy(&b), 0);
}

namespace {
std::atomic<int> g_once_runs{0};
std::atomic<bool> g_once_release{false};
void slow_init() {
  g_once_runs.fetch_add(1);
  while (!g_once_release.load()) std::this_thread::yield();
}
int g_throw_calls = 0;
void throwing_init() {
  if (++g_throw_calls == 1) throw std::runtime_error("first call fails");
}
void nothing() {}
}  // namespace

TEST(Once, ConcurrentCallersWaitForTheOneRun) {
  g_once_runs = 0;
  g_once_release = false;
  pthread_once_t once = PTHREAD_ONCE_INIT;
  constexpr int kThreads = 6;
  std::atomic<int> returned{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      EXPECT_EQ(Once::run(&once, slow_init), 0);
      EXPECT_EQ(g_once_runs.load(), 1);
      returned.fetch_add(1);
    });
  }
  wait_queued(&once, kThreads - 1);  // everyone else parked behind the runner
  EXPECT_EQ(returned.load(), 0);
  g_once_release = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(returned.load(), kThreads);
  EXPECT_EQ(once, 2);  // glibc's "done"
  EXPECT_EQ(Once::run(&once, slow_init), 0);
  EXPECT_EQ(g_once_runs.load(), 1);
}

TEST(Once, AThrowingRoutineLetsTheNextCallerRunIt) {
  g_throw_calls = 0;
  pthread_once_t once = PTHREAD_ONCE_INIT;
  EXPECT_THROW(Once::run(&once, throwing_init), std::runtime_error);
  EXPECT_EQ(once, 0);
  EXPECT_EQ(Once::run(&once, throwing_init), 0);
  EXPECT_EQ(g_throw_calls, 2);
  EXPECT_EQ(Once::run(&once, throwing_init), 0);
  EXPECT_EQ(g_throw_calls, 2);
}

TEST(Once, AnObjectCompletedByGlibcIsDone) {
  pthread_once_t once = PTHREAD_ONCE_INIT;
  ASSERT_EQ(pthread_once(&once, nothing), 0);  // glibc's
  g_throw_calls = 100;
  EXPECT_EQ(Once::run(&once, throwing_init), 0);
  EXPECT_EQ(g_throw_calls, 100);
}
