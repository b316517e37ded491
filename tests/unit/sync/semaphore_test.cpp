// unblock::sync::Semaphore on plain OS threads: counting, try/timed/clock
// variants with glibc's checks, overflow, EINTR from a signal handler,
// process-shared semaphores, and a post/wait stress test.
#include <gtest/gtest.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "runtime/sync.h"
#include "sync_test_util.h"

using unblock::sync::Semaphore;
using namespace sync_test;

TEST(Semaphore, CountsPostsAndWaits) {
  sem_t s;
  ASSERT_EQ(Semaphore::init(&s, 0, 2), 0);
  int v = -1;
  EXPECT_EQ(Semaphore::getvalue(&s, &v), 0);
  EXPECT_EQ(v, 2);
  EXPECT_EQ(Semaphore::wait(&s), 0);
  EXPECT_EQ(Semaphore::trywait(&s), 0);
  EXPECT_EQ(Semaphore::trywait(&s), EAGAIN);
  EXPECT_EQ(Semaphore::post(&s), 0);
  EXPECT_EQ(Semaphore::getvalue(&s, &v), 0);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(Semaphore::destroy(&s), 0);
}

TEST(Semaphore, InitRejectsTooLargeAValueAndPostOverflows) {
  sem_t s;
  EXPECT_EQ(Semaphore::init(&s, 0, static_cast<unsigned>(SEM_VALUE_MAX) + 1), EINVAL);
  ASSERT_EQ(Semaphore::init(&s, 0, SEM_VALUE_MAX), 0);
  EXPECT_EQ(Semaphore::post(&s), EOVERFLOW);  // glibc's errno for a full semaphore
}

TEST(Semaphore, AGlibcInitialisedSemaphoreIsOurs) {
  sem_t s;
  ASSERT_EQ(sem_init(&s, 0, 1), 0);  // glibc's
  EXPECT_EQ(Semaphore::trywait(&s), 0);
  std::thread t([&] { EXPECT_EQ(Semaphore::wait(&s), 0); });
  wait_queued(&s, 1);
  EXPECT_EQ(Semaphore::post(&s), 0);
  t.join();
  int v;
  EXPECT_EQ(sem_getvalue(&s, &v), 0);
  EXPECT_EQ(v, 0);
}

TEST(Semaphore, TimedWaitsCheckLikeGlibcAndTimeOutOnBothClocks) {
  sem_t s;
  ASSERT_EQ(Semaphore::init(&s, 0, 1), 0);
  timespec bad{0, 1000000000};
  // glibc checks tv_nsec (and sem_clockwait the clock) before taking a token.
  EXPECT_EQ(Semaphore::timedwait(&s, CLOCK_REALTIME, &bad, false), EINVAL);
  timespec ok = in_ms(CLOCK_MONOTONIC, 10);
  EXPECT_EQ(Semaphore::timedwait(&s, CLOCK_PROCESS_CPUTIME_ID, &ok, true), EINVAL);
  timespec past{-1, 0};
  EXPECT_EQ(Semaphore::timedwait(&s, CLOCK_REALTIME, &past, false), 0);  // a token is there
  EXPECT_EQ(Semaphore::timedwait(&s, CLOCK_REALTIME, &past, false), ETIMEDOUT);
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    timespec ts = in_ms(clock, 15);
    EXPECT_EQ(Semaphore::timedwait(&s, clock, &ts, clock != CLOCK_REALTIME), ETIMEDOUT);
    EXPECT_TRUE(reached(clock, ts));
  }
  EXPECT_EQ(reinterpret_cast<uint64_t*>(&s)[0], 0u) << "timed-out waiters deregistered";
  std::thread t([&] {
    timespec ts = in_ms(CLOCK_MONOTONIC, 30000);
    EXPECT_EQ(Semaphore::timedwait(&s, CLOCK_MONOTONIC, &ts, true), 0);
  });
  wait_queued(&s, 1);
  EXPECT_EQ(Semaphore::post(&s), 0);
  t.join();
}

namespace {
std::atomic<int> g_handled{0};
void on_usr1(int) { g_handled.fetch_add(1); }
}  // namespace

// Signals the thread until its wait has ended: a signal that arrives just
// before the thread sleeps runs its handler without interrupting anything
// (as with glibc), so one signal is not enough for a deterministic test.
void kick_until(std::thread& t, std::atomic<int>& result) {
  while (result.load() == -1) {
    pthread_kill(t.native_handle(), SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(Semaphore, WaitIsInterruptedByAHandlerWithoutSaRestart) {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  g_handled = 0;
  sem_t s;
  ASSERT_EQ(Semaphore::init(&s, 0, 0), 0);
  std::atomic<int> result{-1};
  std::thread t([&] { result = Semaphore::wait(&s); });
  wait_queued(&s, 1);
  kick_until(t, result);
  t.join();
  EXPECT_EQ(result.load(), EINTR);
  EXPECT_GE(g_handled.load(), 1);
  EXPECT_EQ(reinterpret_cast<uint64_t*>(&s)[0], 0u);
  // A timed wait is interrupted even with SA_RESTART (as the kernel does).
  sa.sa_flags = SA_RESTART;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, nullptr), 0);
  result = -1;
  std::thread t2([&] {
    timespec ts = in_ms(CLOCK_REALTIME, 30000);
    result = Semaphore::timedwait(&s, CLOCK_REALTIME, &ts, false);
  });
  wait_queued(&s, 1);
  kick_until(t2, result);
  t2.join();
  EXPECT_EQ(result.load(), EINTR);
  // The untimed wait with SA_RESTART keeps waiting through handlers.
  result = -1;
  std::thread t3([&] { result = Semaphore::wait(&s); });
  wait_queued(&s, 1);
  // Five handler runs, one at a time: a standard signal sent while another
  // copy is still pending merges with it, so count runs, not sends.
  for (int i = 0; i < 5; ++i) {
    int before = g_handled.load();
    pthread_kill(t3.native_handle(), SIGUSR1);
    while (g_handled.load() == before) std::this_thread::yield();
  }
  EXPECT_EQ(result.load(), -1);
  wait_queued(&s, 1);
  EXPECT_EQ(Semaphore::post(&s), 0);
  t3.join();
  EXPECT_EQ(result.load(), 0);
  sigaction(SIGUSR1, &old, nullptr);
}

TEST(Semaphore, ProcessSharedSemaphoresAreGlibcs) {
  sem_t s;
  ASSERT_EQ(Semaphore::init(&s, 1, 0), 0);
  EXPECT_EQ(reinterpret_cast<int*>(&s)[2], 128);  // FUTEX_SHARED, as glibc writes it
  std::thread t([&] { EXPECT_EQ(Semaphore::wait(&s), 0); });
  EXPECT_EQ(Semaphore::post(&s), 0);
  t.join();
  EXPECT_EQ(Semaphore::trywait(&s), EAGAIN);
  timespec ts = in_ms(CLOCK_MONOTONIC, 5);
  EXPECT_EQ(Semaphore::timedwait(&s, CLOCK_MONOTONIC, &ts, true), ETIMEDOUT);
}

TEST(Semaphore, PostWaitStressLosesNoToken) {
  sem_t s;
  ASSERT_EQ(Semaphore::init(&s, 0, 0), 0);
  constexpr int kPosters = 4, kWaiters = 6, kPerPoster = 6000;
  constexpr int kTotal = kPosters * kPerPoster;
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      for (;;) {
        int r;
        if (i % 2) {
          timespec ts = in_ms(CLOCK_MONOTONIC, 2);
          r = Semaphore::timedwait(&s, CLOCK_MONOTONIC, &ts, true);
          if (r == ETIMEDOUT) {
            if (taken.load() >= kTotal) return;
            continue;
          }
        } else {
          r = Semaphore::wait(&s);
        }
        ASSERT_EQ(r, 0);
        if (taken.fetch_add(1) + 1 > kTotal) return;  // one of the final wake-up tokens
      }
    });
  }
  for (int i = 0; i < kPosters; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < kPerPoster; ++k) ASSERT_EQ(Semaphore::post(&s), 0);
    });
  }
  for (int i = kWaiters; i < kWaiters + kPosters; ++i) threads[i].join();
  while (taken.load() < kTotal) std::this_thread::yield();
  for (int i = 0; i < kWaiters; ++i) Semaphore::post(&s);  // release the untimed waiters
  for (int i = 0; i < kWaiters; ++i) threads[i].join();
  EXPECT_GE(taken.load(), kTotal);
}
