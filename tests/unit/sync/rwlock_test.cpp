// unblock::sync::RwLock on plain OS threads: sharing and exclusion, try
// variants, EDEADLK, parameter checks, timeouts on both clocks, the
// writer-preferring kinds, glibc-used objects, and a stress test.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "runtime/sync.h"
#include "sync_test_util.h"

using unblock::sync::RwLock;
using namespace sync_test;

namespace {

const void* writer_key(pthread_rwlock_t* l) { return &l->__data.__writers; }
const void* reader_key(pthread_rwlock_t* l) { return &l->__data.__readers; }

pthread_rwlock_t make(int kind) {
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, kind);
  pthread_rwlock_t l;
  RwLock::init(&l, &a);
  return l;
}

}  // namespace

TEST(RwLock, ReadersShareAndWritersExclude) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  std::thread([&] {
    EXPECT_EQ(RwLock::tryrdlock(&l), 0);
    EXPECT_EQ(RwLock::unlock(&l), 0);
    EXPECT_EQ(RwLock::trywrlock(&l), EBUSY);
  }).join();
  ASSERT_EQ(RwLock::unlock(&l), 0);
  ASSERT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  std::thread([&] {
    EXPECT_EQ(RwLock::tryrdlock(&l), EBUSY);
    EXPECT_EQ(RwLock::trywrlock(&l), EBUSY);
  }).join();
  EXPECT_EQ(RwLock::trywrlock(&l), EBUSY);  // glibc: no EDEADLK from the try variant
  EXPECT_EQ(RwLock::tryrdlock(&l), EBUSY);
  ASSERT_EQ(RwLock::unlock(&l), 0);
  EXPECT_EQ(l.__data.__readers, 0u);
}

TEST(RwLock, TheWriterRelockingIsEdeadlk) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  EXPECT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), EDEADLK);
  EXPECT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), EDEADLK);
  timespec ts = in_ms(CLOCK_REALTIME, 10);
  EXPECT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, &ts, true), EDEADLK);
  ASSERT_EQ(RwLock::unlock(&l), 0);
}

TEST(RwLock, InvalidTimeoutsAreRejectedEvenWhenFree) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  timespec bad{0, 1000000000};
  timespec ok = in_ms(CLOCK_REALTIME, 10);
  EXPECT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, &bad, true), EINVAL);
  EXPECT_EQ(RwLock::wrlock(&l, CLOCK_MONOTONIC, &bad, true), EINVAL);
  EXPECT_EQ(RwLock::rdlock(&l, CLOCK_THREAD_CPUTIME_ID, &ok, true), EINVAL);
  EXPECT_EQ(RwLock::wrlock(&l, CLOCK_THREAD_CPUTIME_ID, &ok, true), EINVAL);
  EXPECT_EQ(l.__data.__readers, 0u);
}

TEST(RwLock, TimedLocksTimeOutOnBothClocks) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    std::thread([&] {
      timespec ts = in_ms(clock, 15);
      EXPECT_EQ(RwLock::rdlock(&l, clock, &ts, true), ETIMEDOUT);
      EXPECT_TRUE(reached(clock, ts));
      ts = in_ms(clock, 15);
      EXPECT_EQ(RwLock::wrlock(&l, clock, &ts, true), ETIMEDOUT);
      EXPECT_TRUE(reached(clock, ts));
      timespec past{-1, 0};
      EXPECT_EQ(RwLock::wrlock(&l, clock, &past, true), ETIMEDOUT);
    }).join();
  }
  ASSERT_EQ(RwLock::unlock(&l), 0);
  // The flags left by the timed-out waiters are gone.
  EXPECT_EQ(l.__data.__readers, 0u);
  ASSERT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  std::thread([&] {
    timespec ts = in_ms(CLOCK_MONOTONIC, 15);
    EXPECT_EQ(RwLock::wrlock(&l, CLOCK_MONOTONIC, &ts, true), ETIMEDOUT);
  }).join();
  ASSERT_EQ(RwLock::unlock(&l), 0);
  EXPECT_EQ(l.__data.__readers, 0u);
}

TEST(RwLock, DefaultKindLetsNewReadersPassAWaitingWriter) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  std::atomic<bool> wrote{false};
  std::thread w([&] {
    EXPECT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
    wrote = true;
    RwLock::unlock(&l);
  });
  wait_queued(writer_key(&l), 1);
  std::thread([&] {
    EXPECT_EQ(RwLock::tryrdlock(&l), 0);
    EXPECT_EQ(RwLock::unlock(&l), 0);
  }).join();
  EXPECT_FALSE(wrote.load());
  ASSERT_EQ(RwLock::unlock(&l), 0);
  w.join();
  EXPECT_TRUE(wrote.load());
}

TEST(RwLock, NonRecursiveWriterPreferenceStopsNewReaders) {
  pthread_rwlock_t l = make(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  ASSERT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  std::vector<int> order;
  pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
  std::thread w([&] {
    EXPECT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
    pthread_mutex_lock(&order_lock);
    order.push_back(1);
    pthread_mutex_unlock(&order_lock);
    RwLock::unlock(&l);
  });
  wait_queued(writer_key(&l), 1);
  std::thread r([&] {
    EXPECT_EQ(RwLock::tryrdlock(&l), EBUSY);
    EXPECT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
    pthread_mutex_lock(&order_lock);
    order.push_back(2);
    pthread_mutex_unlock(&order_lock);
    RwLock::unlock(&l);
  });
  wait_queued(reader_key(&l), 1);
  ASSERT_EQ(RwLock::unlock(&l), 0);
  w.join();
  r.join();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], 1) << "the waiting writer went before the later reader";
}

TEST(RwLock, WriterPreferringKindsHandTheLockToTheNextWriter) {
  for (int kind : {PTHREAD_RWLOCK_PREFER_WRITER_NP, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP}) {
    pthread_rwlock_t l = make(kind);
    ASSERT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
    std::atomic<int> writers_done{0};
    std::atomic<bool> reader_saw_writers_done{false};
    std::thread w1([&] {
      RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false);
      writers_done.fetch_add(1);
      RwLock::unlock(&l);
    });
    wait_queued(writer_key(&l), 1);
    std::thread r([&] {
      RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false);
      reader_saw_writers_done = writers_done.load() == 2;
      RwLock::unlock(&l);
    });
    wait_queued(reader_key(&l), 1);
    std::thread w2([&] {
      RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false);
      writers_done.fetch_add(1);
      RwLock::unlock(&l);
    });
    wait_queued(writer_key(&l), 2);
    ASSERT_EQ(RwLock::unlock(&l), 0);
    w1.join();
    w2.join();
    r.join();
    EXPECT_TRUE(reader_saw_writers_done.load()) << "kind " << kind;
    EXPECT_EQ(l.__data.__readers, 0u);
  }
}

TEST(RwLock, ObjectsUsedByGlibcStayCorrect) {
  pthread_rwlock_t l;
  ASSERT_EQ(pthread_rwlock_init(&l, nullptr), 0);
  // glibc leaves an idle lock in a "write phase" after a writer.
  ASSERT_EQ(pthread_rwlock_wrlock(&l), 0);
  ASSERT_EQ(pthread_rwlock_unlock(&l), 0);
  EXPECT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  EXPECT_EQ(RwLock::unlock(&l), 0);
  EXPECT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  EXPECT_EQ(RwLock::unlock(&l), 0);
  // Read-locked by glibc, released by us.
  ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
  EXPECT_EQ(RwLock::trywrlock(&l), EBUSY);
  EXPECT_EQ(RwLock::unlock(&l), 0);
  EXPECT_EQ(RwLock::trywrlock(&l), 0);
  EXPECT_EQ(RwLock::unlock(&l), 0);
}

TEST(RwLock, ProcessSharedLocksAreGlibcs) {
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_rwlock_t l;
  ASSERT_EQ(RwLock::init(&l, &a), 0);
  EXPECT_NE(l.__data.__shared, 0);
  EXPECT_EQ(RwLock::wrlock(&l, CLOCK_REALTIME, nullptr, false), 0);
  EXPECT_EQ(RwLock::rdlock(&l, CLOCK_REALTIME, nullptr, false), EDEADLK);
  timespec ts = in_ms(CLOCK_MONOTONIC, 5);
  std::thread([&] { EXPECT_EQ(RwLock::rdlock(&l, CLOCK_MONOTONIC, &ts, true), ETIMEDOUT); }).join();
  EXPECT_EQ(RwLock::unlock(&l), 0);
}

TEST(RwLock, StressKeepsReadersAndWritersApart) {
  for (int kind : {PTHREAD_RWLOCK_PREFER_READER_NP, PTHREAD_RWLOCK_PREFER_WRITER_NP,
                   PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP}) {
    pthread_rwlock_t l = make(kind);
    std::atomic<int> readers{0}, writers{0};
    std::atomic<bool> bad{false};
    long value = 0;
    constexpr int kThreads = 8, kIters = 3000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kIters; ++i) {
          bool write = (i + t) % 4 == 0;
          bool timed = (i + t) % 7 == 0;
          timespec ts = in_ms(CLOCK_MONOTONIC, 1);
          int r = write ? RwLock::wrlock(&l, CLOCK_MONOTONIC, timed ? &ts : nullptr, timed)
                        : RwLock::rdlock(&l, CLOCK_MONOTONIC, timed ? &ts : nullptr, timed);
          if (r == ETIMEDOUT) continue;
          ASSERT_EQ(r, 0);
          if (write) {
            if (writers.fetch_add(1) != 0 || readers.load() != 0) bad = true;
            ++value;
            writers.fetch_sub(1);
          } else {
            readers.fetch_add(1);
            if (writers.load() != 0) bad = true;
            readers.fetch_sub(1);
          }
          ASSERT_EQ(RwLock::unlock(&l), 0);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_FALSE(bad.load()) << "kind " << kind;
    EXPECT_EQ(l.__data.__readers, 0u) << "kind " << kind;
  }
}
