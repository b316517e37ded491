#include "runtime/parker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

using unblock::Deadline;
using unblock::ParkResult;
using unblock::Parker;
using unblock::WaitReason;

TEST(Parker, PermitGivenBeforeParkIsConsumed) {
  Parker* p = Parker::current();
  p->unpark();
  EXPECT_EQ(p->park(Deadline::after_ns(10 * 1000 * 1000), WaitReason::kOther), ParkResult::kWoken);
  EXPECT_EQ(p->park(Deadline::after_ns(1000 * 1000), WaitReason::kOther), ParkResult::kTimedOut);
}

TEST(Parker, DeadlinesOnBothClocks) {
  Parker* p = Parker::current();
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  now.tv_nsec += 2000000;
  if (now.tv_nsec >= 1000000000) {
    now.tv_nsec -= 1000000000;
    ++now.tv_sec;
  }
  Deadline d = Deadline::at(CLOCK_REALTIME, now);
  EXPECT_EQ(p->park(d, WaitReason::kOther), ParkResult::kTimedOut);
  EXPECT_TRUE(d.passed());
}

TEST(Parker, EveryUnparkWakesUnderContention) {
  // Many rounds of hand-over between threads: a lost wake-up hangs the test
  // (ctest's timeout catches it).
  constexpr int kThreads = 8, kRounds = 2000;
  std::vector<Parker*> parkers(kThreads);
  std::atomic<int> ready{0};
  std::atomic<int> token{0};
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      parkers[i] = Parker::current();
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      for (int r = 0; r < kRounds; ++r) {
        while (token.load(std::memory_order_acquire) % kThreads != i) parkers[i]->park(WaitReason::kOther);
        token.fetch_add(1, std::memory_order_acq_rel);
        parkers[(i + 1) % kThreads]->unpark();
      }
      // A parker lives in its thread's TLS: stay until nobody can unpark it.
      finished.fetch_add(1);
      while (finished.load() < kThreads) std::this_thread::yield();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(token.load(), kThreads * kRounds);
}
