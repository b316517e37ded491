// unblock::sync::CondVar on plain OS threads: signal vs broadcast,
// timeouts with the condattr clock and with clockwait, glibc's parameter
// checks, ownership errors, broadcast requeue onto the mutex, destroy right
// after wake-up, and a mutex+cond stress test with no lost wake-up.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "runtime/sync.h"
#include "sync_test_util.h"

using unblock::sync::CondVar;
using unblock::sync::Mutex;
using namespace sync_test;

TEST(CondVar, SignalWakesOneAndBroadcastWakesAll) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  constexpr int kWaiters = 5;
  int generation = 0;
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      Mutex::lock(&m);
      int seen = generation;
      while (generation == seen) EXPECT_EQ(CondVar::wait(&c, &m), 0);
      woken.fetch_add(1);
      EXPECT_EQ(Mutex::unlock(&m), 0);
    });
  }
  wait_queued(&c, kWaiters);
  Mutex::lock(&m);
  ++generation;
  EXPECT_EQ(CondVar::signal(&c), 0);
  Mutex::unlock(&m);
  while (woken.load() < 1) std::this_thread::yield();
  EXPECT_EQ(unblock::parking_lot::queued(&c), static_cast<size_t>(kWaiters - 1));
  // The others saw the generation change but were not woken: they still wait
  // for their own condition (a new generation each).
  Mutex::lock(&m);
  ++generation;
  EXPECT_EQ(CondVar::broadcast(&c), 0);
  Mutex::unlock(&m);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), kWaiters);
  EXPECT_EQ(CondVar::destroy(&c), 0);
}

TEST(CondVar, TimedwaitUsesTheClockChosenAtInit) {
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, clock);
    pthread_cond_t c;
    ASSERT_EQ(CondVar::init(&c, &a), 0);
    EXPECT_EQ((c.__data.__wrefs & 2) != 0, clock == CLOCK_MONOTONIC);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    Mutex::lock(&m);
    timespec ts = in_ms(clock, 20);
    EXPECT_EQ(CondVar::timedwait(&c, &m, &ts), ETIMEDOUT);
    EXPECT_TRUE(reached(clock, ts));
    EXPECT_EQ(Mutex::trylock(&m), EBUSY) << "the mutex is held again after the timeout";
    // clockwait on the other clock.
    clockid_t other = clock == CLOCK_REALTIME ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    ts = in_ms(other, 20);
    EXPECT_EQ(CondVar::clockwait(&c, &m, other, &ts), ETIMEDOUT);
    EXPECT_TRUE(reached(other, ts));
    Mutex::unlock(&m);
  }
}

TEST(CondVar, ParameterChecksHappenBeforeTheMutexIsReleased) {
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  Mutex::lock(&m);
  timespec bad{0, -1};
  EXPECT_EQ(CondVar::timedwait(&c, &m, &bad), EINVAL);
  timespec ok = in_ms(CLOCK_REALTIME, 1);
  EXPECT_EQ(CondVar::clockwait(&c, &m, CLOCK_PROCESS_CPUTIME_ID, &ok), EINVAL);
  EXPECT_EQ(CondVar::clockwait(&c, &m, CLOCK_MONOTONIC, &bad), EINVAL);
  // A past deadline (even tv_sec < 0) is a timeout after unlock/relock.
  timespec past{-5, 0};
  EXPECT_EQ(CondVar::timedwait(&c, &m, &past), ETIMEDOUT);
  EXPECT_EQ(Mutex::trylock(&m), EBUSY);
  Mutex::unlock(&m);
}

TEST(CondVar, WaitingWithoutOwningAnErrorcheckOrRecursiveMutexIsEperm) {
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  pthread_mutex_t err = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  pthread_mutex_t rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  EXPECT_EQ(CondVar::wait(&c, &err), EPERM);
  EXPECT_EQ(CondVar::wait(&c, &rec), EPERM);
  Mutex::lock(&err);
  std::thread([&] { EXPECT_EQ(CondVar::wait(&c, &err), EPERM); }).join();
  Mutex::unlock(&err);
  EXPECT_EQ(c.__data.__wrefs >> 3, 0u);
}

TEST(CondVar, RecursiveMutexIsFullyReleasedOnlyAtDepthOne) {
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  pthread_mutex_t rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  Mutex::lock(&rec);
  bool flag = false;
  std::thread t([&] {
    Mutex::lock(&rec);
    flag = true;
    CondVar::signal(&c);
    Mutex::unlock(&rec);
  });
  while (!flag) EXPECT_EQ(CondVar::wait(&c, &rec), 0);
  EXPECT_EQ(rec.__data.__count, 1u);
  Mutex::unlock(&rec);
  t.join();
}

TEST(CondVar, BroadcastRequeuesOntoTheMutexAndEveryoneGetsIt) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  constexpr int kWaiters = 10;
  bool go = false;
  int inside = 0, max_inside = 0, done = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      Mutex::lock(&m);
      while (!go) CondVar::wait(&c, &m);
      max_inside = std::max(max_inside, ++inside);
      std::this_thread::yield();
      --inside;
      ++done;
      Mutex::unlock(&m);
    });
  }
  wait_queued(&c, kWaiters);
  Mutex::lock(&m);
  go = true;
  CondVar::broadcast(&c);
  // While we hold the mutex, all but one waiter were moved onto it.
  EXPECT_EQ(unblock::parking_lot::queued(&c), 0u);
  // (The woken one may have queued on the mutex too by now.)
  EXPECT_GE(unblock::parking_lot::queued(&m), static_cast<size_t>(kWaiters - 1));
  EXPECT_EQ(c.__data.__wrefs >> 3, 1u) << "requeued waiters dropped their reference";
  Mutex::unlock(&m);
  for (auto& t : threads) t.join();
  EXPECT_EQ(done, kWaiters);
  EXPECT_EQ(max_inside, 1);
  EXPECT_EQ(CondVar::destroy(&c), 0);
}

TEST(CondVar, DestroyRightAfterBroadcastIsSafe) {
  // POSIX's own example: destroy once the waiters are woken, while they may
  // still be on their way out.
  for (int round = 0; round < 200; ++round) {
    auto* c = new pthread_cond_t;
    ASSERT_EQ(CondVar::init(c, nullptr), 0);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    bool go = false;
    std::thread t([&] {
      Mutex::lock(&m);
      while (!go) CondVar::wait(c, &m);
      Mutex::unlock(&m);
    });
    wait_queued(c, 1);
    Mutex::lock(&m);
    go = true;
    CondVar::broadcast(c);
    EXPECT_EQ(CondVar::destroy(c), 0);
    delete c;
    Mutex::unlock(&m);
    t.join();
  }
}

TEST(CondVar, MutexAndCondStressLosesNoWakeUp) {
  // A bounded queue with producers and consumers, both sides using signal
  // and broadcast; any lost wake-up hangs the test (ctest timeout).
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
  pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
  constexpr int kProducers = 6, kConsumers = 6, kItems = 4000, kCap = 3;
  int queue = 0;
  long consumed = 0;
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&] {
      for (int i = 0; i < kItems; ++i) {
        Mutex::lock(&m);
        while (queue == kCap) {
          if (i % 5 == 0) {
            timespec ts = in_ms(CLOCK_REALTIME, 1);
            int r = CondVar::timedwait(&not_full, &m, &ts);
            ASSERT_TRUE(r == 0 || r == ETIMEDOUT);
          } else {
            CondVar::wait(&not_full, &m);
          }
        }
        ++queue;
        (i % 3 ? CondVar::signal : CondVar::broadcast)(&not_empty);
        Mutex::unlock(&m);
      }
    });
  }
  for (int k = 0; k < kConsumers; ++k) {
    threads.emplace_back([&] {
      for (;;) {
        Mutex::lock(&m);
        while (queue == 0 && consumed < long{kProducers} * kItems) CondVar::wait(&not_empty, &m);
        if (queue == 0) {
          Mutex::unlock(&m);
          return;
        }
        --queue;
        if (++consumed == long{kProducers} * kItems) CondVar::broadcast(&not_empty);  // release the others
        CondVar::signal(&not_full);
        Mutex::unlock(&m);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(consumed, long{kProducers} * kItems);
}

TEST(CondVar, ARequeuedTimedWaiterWasSignalledNotTimedOut) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  bool go = false;
  std::thread first([&] {
    Mutex::lock(&m);
    while (!go) CondVar::wait(&c, &m);
    Mutex::unlock(&m);
  });
  wait_queued(&c, 1);
  int timed_result = -1;
  std::thread timed([&] {
    Mutex::lock(&m);
    timespec ts = in_ms(CLOCK_MONOTONIC, 30);
    timed_result = CondVar::clockwait(&c, &m, CLOCK_MONOTONIC, &ts);
    Mutex::unlock(&m);
  });
  wait_queued(&c, 2);
  Mutex::lock(&m);
  go = true;
  CondVar::broadcast(&c);  // wakes `first`, moves `timed` onto the mutex
  timespec past_deadline = in_ms(CLOCK_MONOTONIC, 60);
  while (!reached(CLOCK_MONOTONIC, past_deadline)) std::this_thread::yield();
  Mutex::unlock(&m);
  first.join();
  timed.join();
  EXPECT_EQ(timed_result, 0);
}
