// unblock::sync::Mutex on plain OS threads: every type, static
// initialisers, glibc's error codes and when it checks timeouts, timeouts on
// both clocks, glibc-initialised objects, forwarding of robust mutexes, and
// a counting stress test.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "runtime/sync.h"
#include "sync_test_util.h"

using unblock::sync::Mutex;
using namespace sync_test;

namespace {

int in_thread(const std::function<int()>& fn) {
  int r = -1;
  std::thread t([&] { r = fn(); });
  t.join();
  return r;
}

}  // namespace

TEST(Mutex, StaticInitialisersGiveEveryType) {
  pthread_mutex_t normal = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_t rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  pthread_mutex_t err = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
  for (pthread_mutex_t* m : {&normal, &rec, &err, &adaptive}) {
    EXPECT_TRUE(Mutex::ours(m));
    EXPECT_EQ(Mutex::lock(m), 0);
    EXPECT_EQ(in_thread([&] { return Mutex::trylock(m); }), EBUSY);
    EXPECT_EQ(Mutex::unlock(m), 0);
    EXPECT_EQ(in_thread([&] {
                int r = Mutex::trylock(m);
                if (r == 0) Mutex::unlock(m);
                return r;
              }),
              0);
  }
  EXPECT_EQ(Mutex::lock(&rec), 0);
  EXPECT_EQ(Mutex::lock(&rec), 0);
  EXPECT_EQ(Mutex::unlock(&rec), 0);
  EXPECT_EQ(Mutex::unlock(&rec), 0);
  EXPECT_EQ(Mutex::lock(&err), 0);
  EXPECT_EQ(Mutex::lock(&err), EDEADLK);
  EXPECT_EQ(Mutex::unlock(&err), 0);
}

TEST(Mutex, ErrorcheckReportsDeadlockAndForeignOrDoubleUnlock) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t m;
  ASSERT_EQ(Mutex::init(&m, &a), 0);
  EXPECT_EQ(Mutex::unlock(&m), EPERM);  // not locked
  EXPECT_EQ(Mutex::lock(&m), 0);
  EXPECT_EQ(Mutex::lock(&m), EDEADLK);
  EXPECT_EQ(Mutex::trylock(&m), EBUSY);  // glibc: trylock does not report EDEADLK
  timespec ts = in_ms(CLOCK_REALTIME, 1000);
  EXPECT_EQ(Mutex::timedlock(&m, CLOCK_REALTIME, &ts, false), EDEADLK);
  EXPECT_EQ(in_thread([&] { return Mutex::unlock(&m); }), EPERM);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  EXPECT_EQ(Mutex::unlock(&m), EPERM);
  EXPECT_EQ(Mutex::destroy(&m), 0);
}

TEST(Mutex, RecursiveCountsDepthAndOnlyTheOwnerUnlocks) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_t m;
  ASSERT_EQ(Mutex::init(&m, &a), 0);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(i % 2 ? Mutex::trylock(&m) : Mutex::lock(&m), 0);
  EXPECT_EQ(m.__data.__count, 5u);
  EXPECT_EQ(in_thread([&] { return Mutex::unlock(&m); }), EPERM);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(Mutex::unlock(&m), 0);
    EXPECT_EQ(in_thread([&] { return Mutex::trylock(&m); }), EBUSY);
  }
  ASSERT_EQ(Mutex::unlock(&m), 0);
  EXPECT_EQ(Mutex::unlock(&m), EPERM);
  EXPECT_EQ(in_thread([&] {
              int r = Mutex::trylock(&m);
              Mutex::unlock(&m);
              return r;
            }),
            0);
}

TEST(Mutex, TimedlockTimesOutOnBothClocks) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  ASSERT_EQ(Mutex::lock(&m), 0);
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    int r = in_thread([&] {
      timespec ts = in_ms(clock, 20);
      int e = Mutex::timedlock(&m, clock, &ts, true);
      EXPECT_TRUE(reached(clock, ts));
      return e;
    });
    EXPECT_EQ(r, ETIMEDOUT);
  }
  int r = in_thread([&] {
    timespec ts = in_ms(CLOCK_REALTIME, 20);
    return Mutex::timedlock(&m, CLOCK_REALTIME, &ts, false);
  });
  EXPECT_EQ(r, ETIMEDOUT);
  // A waiter whose timeout is long enough gets the lock when it is released.
  std::thread t([&] {
    timespec ts = in_ms(CLOCK_MONOTONIC, 10000);
    EXPECT_EQ(Mutex::timedlock(&m, CLOCK_MONOTONIC, &ts, true), 0);
    EXPECT_EQ(Mutex::unlock(&m), 0);
  });
  wait_queued(&m, 1);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  t.join();
}

TEST(Mutex, TimeoutIsCheckedOnlyWhenBlockingButTheClockAlways) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  timespec bad{0, 1000000000};
  timespec past{-1, 0};
  // Uncontended: glibc takes the lock without looking at the timeout.
  EXPECT_EQ(Mutex::timedlock(&m, CLOCK_REALTIME, &bad, false), 0);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  // ...but clocklock rejects an unsupported clock first.
  EXPECT_EQ(Mutex::timedlock(&m, CLOCK_PROCESS_CPUTIME_ID, &bad, true), EINVAL);
  ASSERT_EQ(Mutex::lock(&m), 0);
  EXPECT_EQ(in_thread([&] { return Mutex::timedlock(&m, CLOCK_REALTIME, &bad, false); }), EINVAL);
  EXPECT_EQ(in_thread([&] { return Mutex::timedlock(&m, CLOCK_MONOTONIC, &past, true); }), ETIMEDOUT);
  // Both at once: glibc looks at tv_sec < 0 first.
  timespec both{-1, -1};
  EXPECT_EQ(in_thread([&] { return Mutex::timedlock(&m, CLOCK_REALTIME, &both, false); }), ETIMEDOUT);
  EXPECT_EQ(Mutex::unlock(&m), 0);
}

TEST(Mutex, DestroyIsBusyWhileLockedAndTheDestroyedMutexIsInvalid) {
  pthread_mutex_t m;
  ASSERT_EQ(Mutex::init(&m, nullptr), 0);
  ASSERT_EQ(Mutex::lock(&m), 0);
  EXPECT_EQ(Mutex::destroy(&m), EBUSY);
  ASSERT_EQ(Mutex::unlock(&m), 0);
  EXPECT_EQ(Mutex::destroy(&m), 0);
  EXPECT_EQ(m.__data.__kind, -1);
  EXPECT_FALSE(Mutex::ours(&m));
  EXPECT_EQ(Mutex::lock(&m), EINVAL);  // glibc's answer for a destroyed mutex
  ASSERT_EQ(Mutex::init(&m, nullptr), 0);
  EXPECT_EQ(Mutex::lock(&m), 0);
  EXPECT_EQ(Mutex::unlock(&m), 0);
}

TEST(Mutex, ObjectsInitialisedOrUsedByGlibcStayCorrect) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_t m;
  ASSERT_EQ(pthread_mutex_init(&m, &a), 0);  // glibc's own init
  ASSERT_TRUE(Mutex::ours(&m));
  // Locked (twice) by glibc, unlocked by us.
  ASSERT_EQ(pthread_mutex_lock(&m), 0);
  ASSERT_EQ(pthread_mutex_lock(&m), 0);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  EXPECT_EQ(in_thread([&] { return Mutex::trylock(&m); }), EBUSY);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  // Locked by us, unlocked by glibc, destroyed by glibc: our fields are its.
  EXPECT_EQ(Mutex::lock(&m), 0);
  EXPECT_EQ(pthread_mutex_destroy(&m), EBUSY);
  EXPECT_EQ(pthread_mutex_unlock(&m), 0);
  EXPECT_EQ(pthread_mutex_destroy(&m), 0);
}

TEST(Mutex, RobustMutexesAreGlibcsAndReportADeadOwner) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_t m;
  ASSERT_EQ(Mutex::init(&m, &a), 0);
  EXPECT_FALSE(Mutex::ours(&m));
  std::thread([&] { EXPECT_EQ(Mutex::lock(&m), 0); }).join();  // dies holding it
  EXPECT_EQ(Mutex::lock(&m), EOWNERDEAD);
  EXPECT_EQ(Mutex::consistent(&m), 0);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  EXPECT_EQ(Mutex::destroy(&m), 0);
}

TEST(Mutex, ProcessSharedAndPriorityProtectMutexesAreGlibcs) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutex_t m;
  ASSERT_EQ(Mutex::init(&m, &a), 0);
  EXPECT_FALSE(Mutex::ours(&m));
  EXPECT_EQ(Mutex::lock(&m), 0);
  EXPECT_EQ(Mutex::unlock(&m), 0);
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_PROTECT);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t twin;
  ASSERT_EQ(pthread_mutex_init(&twin, &a), 0);
  ASSERT_EQ(Mutex::init(&m, &a), 0);
  EXPECT_EQ(m.__data.__kind, twin.__data.__kind);
  EXPECT_FALSE(Mutex::ours(&m));
  // glibc's answer depends on this thread's scheduling state; whatever it
  // is, a successful lock unlocks.
  if (Mutex::lock(&m) == 0) {
    EXPECT_EQ(Mutex::unlock(&m), 0);
  }
}

TEST(Mutex, ContendedIncrementsAreExact) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  constexpr int kThreads = 8, kIters = 20000;
  long counter = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kIters; ++k) {
        if ((k + i) % 16 == 0) {
          timespec ts = in_ms(CLOCK_MONOTONIC, 60000);
          ASSERT_EQ(Mutex::timedlock(&m, CLOCK_MONOTONIC, &ts, true), 0);
        } else if ((k + i) % 16 == 1) {
          while (Mutex::trylock(&m) == EBUSY) std::this_thread::yield();
        } else {
          ASSERT_EQ(Mutex::lock(&m), 0);
        }
        ++counter;
        ASSERT_EQ(Mutex::unlock(&m), 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, long{kThreads} * kIters);
  EXPECT_EQ(m.__data.__nusers, 0u);
  EXPECT_EQ(m.__data.__owner, 0);
}

TEST(Mutex, PrivatePriorityInheritanceMutexesAreOursWithGlibcsErrorCodes) {
  // Run one script against glibc's implementation and ours, on two PI
  // errorcheck mutexes, and compare every result.
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t glibc_m, our_m;
  ASSERT_EQ(pthread_mutex_init(&glibc_m, &a), 0);
  ASSERT_EQ(Mutex::init(&our_m, &a), 0);
  EXPECT_EQ(glibc_m.__data.__kind, our_m.__data.__kind);
  EXPECT_TRUE(Mutex::ours(&our_m));
  struct Ops {
    int (*lock)(pthread_mutex_t*);
    int (*trylock)(pthread_mutex_t*);
    int (*unlock)(pthread_mutex_t*);
    int (*clocklock)(pthread_mutex_t*, clockid_t, const timespec*);
  };
  Ops glibc_ops{pthread_mutex_lock, pthread_mutex_trylock, pthread_mutex_unlock, pthread_mutex_clocklock};
  Ops our_ops{Mutex::lock, Mutex::trylock, Mutex::unlock,
              [](pthread_mutex_t* m, clockid_t c, const timespec* t) { return Mutex::timedlock(m, c, t, true); }};
  auto script = [](const Ops& o, pthread_mutex_t* m) {
    std::vector<int> r;
    timespec ts = in_ms(CLOCK_MONOTONIC, 10);
    r.push_back(o.unlock(m));  // not locked
    r.push_back(o.clocklock(m, CLOCK_MONOTONIC, &ts));
    r.push_back(o.lock(m));
    r.push_back(o.lock(m));
    r.push_back(o.trylock(m));
    r.push_back(in_thread([&] { return o.unlock(m); }));
    r.push_back(in_thread([&] { return o.trylock(m); }));
    r.push_back(o.unlock(m));
    r.push_back(o.unlock(m));
    return r;
  };
  EXPECT_EQ(script(glibc_ops, &glibc_m), script(our_ops, &our_m));
  // A normal PI mutex also checks the owner on unlock (unlike a plain one).
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_NORMAL);
  ASSERT_EQ(Mutex::init(&our_m, &a), 0);
  EXPECT_EQ(Mutex::lock(&our_m), 0);
  EXPECT_EQ(in_thread([&] { return Mutex::unlock(&our_m); }), EPERM);
  EXPECT_EQ(Mutex::unlock(&our_m), 0);
  // Contended: the waiter gets it when the owner unlocks.
  EXPECT_EQ(Mutex::lock(&our_m), 0);
  std::thread t([&] {
    EXPECT_EQ(Mutex::lock(&our_m), 0);
    EXPECT_EQ(Mutex::unlock(&our_m), 0);
  });
  wait_queued(&our_m, 1);
  EXPECT_EQ(Mutex::unlock(&our_m), 0);
  t.join();
}

namespace {
// A robust list as glibc keeps it in a TCB (struct robust_list_head).
struct FakeRobustHead {
  void* next;
  long futex_offset;
  void* pending;
};
}  // namespace

TEST(Mutex, OwnerExitedMarksRobustMutexesLikeTheKernel) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_t held, other;
  ASSERT_EQ(pthread_mutex_init(&held, &a), 0);
  ASSERT_EQ(pthread_mutex_init(&other, &a), 0);
  constexpr int kDeadTid = 0x01234567;  // a fiber's kind of id
  FakeRobustHead head{nullptr, 0, nullptr};
  // held: owned by the dead thread, on its list. other: on the list but
  // owned by someone else (must be left alone).
  held.__data.__lock = kDeadTid;
  held.__data.__owner = kDeadTid;
  other.__data.__lock = 77;
  head.next = &held.__data.__list.__next;
  held.__data.__list.__next = reinterpret_cast<__pthread_list_t*>(&other.__data.__list.__next);
  other.__data.__list.__next = reinterpret_cast<__pthread_list_t*>(&head);
  // A glibc waiter blocked on the dead owner's mutex.
  int waiter_result = -1;
  std::thread waiter([&] {
    waiter_result = pthread_mutex_lock(&held);
    if (waiter_result == EOWNERDEAD) pthread_mutex_consistent(&held);
    pthread_mutex_unlock(&held);
  });
  while (!(static_cast<unsigned>(held.__data.__lock) & 0x80000000u)) std::this_thread::yield();  // FUTEX_WAITERS
  Mutex::owner_exited(&head, kDeadTid);
  waiter.join();
  EXPECT_EQ(waiter_result, EOWNERDEAD);
  EXPECT_EQ(other.__data.__lock, 77);
  EXPECT_EQ(head.next, &head) << "the list is emptied";
  EXPECT_EQ(pthread_mutex_lock(&held), 0);
  EXPECT_EQ(pthread_mutex_unlock(&held), 0);
}
