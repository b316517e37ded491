// The parking lot on plain OS threads: queueing, FIFO wakes, timeouts that
// remove their node, the unpark/timeout race, requeue, tags, and the
// deferral of wakes requested from inside an operation (signal handlers).
// Waits for "N waiters are queued" use parking_lot::queued(), never sleeps.
#include "runtime/parking_lot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

using unblock::Deadline;
using unblock::WaitReason;
namespace lot = unblock::parking_lot;
using lot::ParkOutcome;
using lot::ParkStatus;

namespace {

constexpr int64_t kMs = 1000 * 1000;

void wait_queued(const void* key, size_t n) {
  while (lot::queued(key) < n) std::this_thread::yield();
}

ParkOutcome park_plain(const void* key, const Deadline& d = Deadline::never(), const uintptr_t* tag = nullptr) {
  return lot::park(
      key, [] { return true; }, [] { return true; }, [](bool) {}, d, WaitReason::kOther, false, tag);
}

}  // namespace

TEST(ParkingLot, ValidateFalseDoesNotQueue) {
  int key;
  ParkOutcome r = lot::park(
      &key, [] { return false; }, Deadline::never(), WaitReason::kOther, false);
  EXPECT_EQ(r.status, ParkStatus::kInvalid);
  EXPECT_EQ(lot::queued(&key), 0u);
  EXPECT_FALSE(lot::unpark_one(&key));
}

TEST(ParkingLot, UnparkOneWakesInArrivalOrderAndReportsWhetherMoreRemain) {
  int key;
  constexpr int kWaiters = 4;
  std::vector<int> order;
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  std::atomic<int> tokens[kWaiters] = {};
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      ParkOutcome r = park_plain(&key);
      EXPECT_EQ(r.status, ParkStatus::kUnparked);
      tokens[i].store(static_cast<int>(r.token));
      woken.fetch_add(1);
    });
    wait_queued(&key, i + 1);  // queue them in a known order
  }
  for (int i = 0; i < kWaiters; ++i) {
    bool more = true;
    EXPECT_TRUE(lot::unpark_one(&key, [&](lot::UnparkInfo info) -> uintptr_t {
      EXPECT_TRUE(info.unparked);
      more = info.have_more;
      return 100 + i;
    }));
    EXPECT_EQ(more, i + 1 < kWaiters);
    while (woken.load() < i + 1) std::this_thread::yield();
    EXPECT_EQ(tokens[i].load(), 100 + i) << "waiter " << i << " was not woken in FIFO order";
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(lot::unpark_one(&key));
}

TEST(ParkingLot, TimeoutRemovesTheNodeAndTellsWhetherItWasTheLast) {
  int key;
  std::atomic<int> lasts{0};
  std::thread other([&] {
    // Parks forever until unparked below.
    EXPECT_EQ(park_plain(&key).status, ParkStatus::kUnparked);
  });
  wait_queued(&key, 1);
  ParkOutcome r = lot::park(
      &key, [] { return true; }, [] { return true; }, [&](bool last) { lasts.fetch_add(last ? 10 : 1); },
      Deadline::after_ns(5 * kMs), WaitReason::kOther, false);
  EXPECT_EQ(r.status, ParkStatus::kTimedOut);
  EXPECT_EQ(lasts.load(), 1);  // the other waiter remains
  EXPECT_EQ(lot::queued(&key), 1u);
  EXPECT_TRUE(lot::unpark_one(&key));
  other.join();
  r = lot::park(
      &key, [] { return true; }, [] { return true; }, [&](bool last) { lasts.fetch_add(last ? 10 : 1); },
      Deadline::after_ns(1 * kMs), WaitReason::kOther, false);
  EXPECT_EQ(r.status, ParkStatus::kTimedOut);
  EXPECT_EQ(lasts.load(), 11);
  EXPECT_EQ(lot::queued(&key), 0u);
}

TEST(ParkingLot, DeadlinesOnBothClocks) {
  int key;
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_nsec += 2 * kMs;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_nsec -= 1000000000;
      ++ts.tv_sec;
    }
    Deadline d = Deadline::at(clock, ts);
    EXPECT_EQ(park_plain(&key, d).status, ParkStatus::kTimedOut);
    EXPECT_TRUE(d.passed());
  }
}

// The race the header documents: a waiter whose deadline passes while an
// unparker picks it. Every successful unpark_one must be seen by exactly one
// waiter as kUnparked - a chosen waiter that reported a timeout would lose
// the wake.
TEST(ParkingLot, AWakeThatRacesATimeoutIsNeverLost) {
  int key;
  constexpr int kRounds = 3000;
  std::atomic<int> reported_unparked{0};
  std::atomic<int> round{0};
  std::atomic<bool> stop{false};
  int successful_unparks = 0;
  std::thread waiter([&] {
    for (int i = 0; i < kRounds; ++i) {
      // Deadlines of 0-20 us so that timeouts and wakes collide often.
      ParkOutcome r = park_plain(&key, Deadline::after_ns((i % 21) * 1000));
      if (r.status == ParkStatus::kUnparked) reported_unparked.fetch_add(1);
      round.store(i + 1, std::memory_order_release);
    }
    stop.store(true);
  });
  while (!stop.load()) {
    if (lot::unpark_one(&key)) {
      ++successful_unparks;
    } else {
      std::this_thread::yield();  // let the waiter run on a single CPU
    }
    for (int spin = 0; spin < (successful_unparks % 7) * 50; ++spin) __builtin_ia32_pause();
  }
  waiter.join();
  EXPECT_EQ(successful_unparks, reported_unparked.load());
}

TEST(ParkingLot, UnparkAllWakesEveryWaiterWithItsToken) {
  int key;
  constexpr int kWaiters = 6;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      ParkOutcome r = park_plain(&key);
      if (r.status == ParkStatus::kUnparked && r.token == 7) ok.fetch_add(1);
    });
  }
  wait_queued(&key, kWaiters);
  size_t seen = 0;
  EXPECT_EQ(lot::unpark_all(&key, 7, [&](size_t n) { seen = n; }), static_cast<size_t>(kWaiters));
  EXPECT_EQ(seen, static_cast<size_t>(kWaiters));
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kWaiters);
}

TEST(ParkingLot, UnparkAllTaggedWakesOnlyThatTag) {
  int key;
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (uintptr_t tag : {1u, 2u, 1u, 2u}) {
    threads.emplace_back([&, tag] {
      EXPECT_EQ(park_plain(&key, Deadline::never(), &tag).status, ParkStatus::kUnparked);
      woken.fetch_add(static_cast<int>(tag));
    });
  }
  wait_queued(&key, 4);
  EXPECT_EQ(lot::unpark_all_tagged(&key, 2), 2u);
  while (woken.load() < 4) std::this_thread::yield();
  EXPECT_EQ(lot::queued(&key), 2u);
  EXPECT_EQ(lot::unpark_all_tagged(&key, 1), 2u);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), 6);
}

TEST(ParkingLot, RequeueWakesTheFirstAndMovesTheMatchingOthers) {
  int from, to;
  const uintptr_t same = reinterpret_cast<uintptr_t>(&to), other = 1;
  std::atomic<int> woken_directly{0}, woken_after_requeue{0};
  std::vector<std::thread> threads;
  // Order: same, same, other, same.
  const uintptr_t tags[] = {same, same, other, same};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      ParkOutcome r = park_plain(&from, Deadline::never(), &tags[i]);
      EXPECT_EQ(r.status, ParkStatus::kUnparked);
      (r.requeued ? woken_after_requeue : woken_directly).fetch_add(1);
    });
    wait_queued(&from, i + 1);
  }
  lot::RequeueInfo seen{};
  lot::RequeueInfo info = lot::unpark_requeue(&from, &to, [&](const lot::RequeueInfo& i) { seen = i; });
  EXPECT_EQ(info.woken, 2u);     // the first, and the one with another tag
  EXPECT_EQ(info.requeued, 2u);  // the later ones with tag == to
  EXPECT_EQ(seen.requeued, 2u);
  EXPECT_EQ(lot::queued(&from), 0u);
  EXPECT_EQ(lot::queued(&to), 2u);
  while (woken_directly.load() < 2) std::this_thread::yield();
  EXPECT_TRUE(lot::unpark_one(&to));
  EXPECT_TRUE(lot::unpark_one(&to));
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken_after_requeue.load(), 2);
}

TEST(ParkingLot, RequeueWakesEveryoneWhenTheFirstWaiterHasAnotherTag) {
  int from, to;
  const uintptr_t same = reinterpret_cast<uintptr_t>(&to), other = 3;
  const uintptr_t tags[] = {other, same, same};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { EXPECT_FALSE(park_plain(&from, Deadline::never(), &tags[i]).requeued); });
    wait_queued(&from, i + 1);
  }
  lot::RequeueInfo info = lot::unpark_requeue(&from, &to, [](const lot::RequeueInfo&) {});
  EXPECT_EQ(info.woken, 3u);
  EXPECT_EQ(info.requeued, 0u);
  for (auto& t : threads) t.join();
}

TEST(ParkingLot, ARequeuedWaiterTimesOutFromItsNewQueue) {
  int from, to;
  const uintptr_t tag = reinterpret_cast<uintptr_t>(&to);
  std::atomic<bool> first_done{false};
  std::thread first([&] {
    park_plain(&from, Deadline::never(), &tag);
    first_done = true;
  });
  wait_queued(&from, 1);
  std::atomic<int> lasts{0};
  std::thread second([&] {
    ParkOutcome r = lot::park(
        &from, [] { return true; }, [] { return true; }, [&](bool last) { lasts.fetch_add(last); },
        Deadline::after_ns(30 * kMs), WaitReason::kOther, false, &tag);
    EXPECT_EQ(r.status, ParkStatus::kTimedOut);
    EXPECT_TRUE(r.requeued);
  });
  wait_queued(&from, 2);
  lot::RequeueInfo info = lot::unpark_requeue(&from, &to, [](const lot::RequeueInfo&) {});
  EXPECT_EQ(info.requeued, 1u);
  first.join();
  second.join();
  EXPECT_EQ(lasts.load(), 1);
  EXPECT_EQ(lot::queued(&to), 0u);
}

TEST(ParkingLot, AFailedBeforeSleepRemovesTheNode) {
  int key;
  bool timed_out_called = false;
  ParkOutcome r = lot::park(
      &key, [] { return true; }, [] { return false; }, [&](bool last) { timed_out_called = last; }, Deadline::never(),
      WaitReason::kOther, false);
  EXPECT_EQ(r.status, ParkStatus::kAborted);
  EXPECT_TRUE(timed_out_called);
  EXPECT_EQ(lot::queued(&key), 0u);
}

TEST(ParkingLot, BeforeSleepRunsAfterTheNodeIsQueued) {
  int key;
  // A wake issued from before_sleep (as a condition variable's mutex unlock
  // would let another thread do) must not be missed.
  ParkOutcome r = lot::park(
      &key, [] { return true; },
      [&] {
        EXPECT_EQ(lot::queued(&key), 1u);
        EXPECT_TRUE(lot::unpark_one(&key));
        return true;
      },
      [](bool) {}, Deadline::never(), WaitReason::kOther, false);
  EXPECT_EQ(r.status, ParkStatus::kUnparked);
}

// A signal handler that runs while its thread is inside a parking-lot
// operation (here: simulated by calling from validate(), under the bucket
// lock) must not deadlock on the lock; its wake is performed when the
// operation ends - here it wakes the very waiter being queued.
TEST(ParkingLot, AWakeFromInsideAnOperationIsDeferredNotDeadlocked) {
  int key;
  ParkOutcome r = lot::park(
      &key,
      [&] {
        lot::unpark_one_signal_safe(&key);
        return true;
      },
      Deadline::after_ns(2000 * kMs), WaitReason::kOther, false);
  EXPECT_EQ(r.status, ParkStatus::kUnparked);
  EXPECT_EQ(lot::queued(&key), 0u);
}

TEST(ParkingLot, ManyKeysManyThreadsNoLostWake) {
  // Hand a token around a ring of threads, each parked on its own key (all
  // keys share a few buckets with the others' nodes).
  constexpr int kThreads = 8, kRounds = 1500;
  std::atomic<int> token{0};
  int keys[kThreads];
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < kRounds; ++r) {
        while (token.load(std::memory_order_acquire) % kThreads != i) {
          lot::park(
              &keys[i], [&] { return token.load(std::memory_order_acquire) % kThreads != i; }, Deadline::never(),
              WaitReason::kOther, false);
        }
        token.fetch_add(1, std::memory_order_acq_rel);
        lot::unpark_one(&keys[(i + 1) % kThreads]);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(token.load(), kThreads * kRounds);
}

// The futex shapes (runtime/futex.cpp): wake a bounded number by tag,
// requeue a bounded number after a validation under both locks, and the
// two-key wake-op.
TEST(ParkingLot, UnparkSomeWakesAtMostMaxOfTheMatchingTagsOldestFirst) {
  int key;
  std::vector<std::thread> threads;
  std::atomic<int> woken_mask{0};
  const uintptr_t tags[4] = {1, 2, 3, 4};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      EXPECT_EQ(park_plain(&key, Deadline::never(), &tags[i]).status, ParkStatus::kUnparked);
      woken_mask.fetch_or(1 << i);
    });
    wait_queued(&key, i + 1);
  }
  // Tags sharing bit 0 with 1: waiters 0 and 2; at most one, the oldest.
  EXPECT_EQ(lot::unpark_some(&key, 1, [](uintptr_t t) { return (t & 1) != 0; }), 1u);
  while (woken_mask.load() != 1) std::this_thread::yield();
  EXPECT_EQ(lot::unpark_some(&key, 10, [](uintptr_t t) { return (t & 1) != 0; }), 1u);
  EXPECT_EQ(lot::unpark_some(&key, 10, [](uintptr_t t) { return t == 8; }), 0u);
  EXPECT_EQ(lot::unpark_some(&key, 10, [](uintptr_t) { return true; }), 2u);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken_mask.load(), 15);
}

TEST(ParkingLot, UnparkRequeueSomeValidatesThenWakesAndMovesBoundedCounts) {
  int from, to;
  std::vector<std::thread> threads;
  std::atomic<int> requeued{0};
  for (int i = 0; i < 5; ++i) {
    threads.emplace_back([&] {
      ParkOutcome r = park_plain(&from);
      EXPECT_EQ(r.status, ParkStatus::kUnparked);
      requeued.fetch_add(r.requeued);
    });
    wait_queued(&from, i + 1);
  }
  lot::RequeueInfo info{9, 9};
  EXPECT_FALSE(lot::unpark_requeue_some(&from, &to, 1, 2, [] { return false; }, &info));
  EXPECT_EQ(lot::queued(&from), 5u);
  EXPECT_TRUE(lot::unpark_requeue_some(&from, &to, 1, 2, [] { return true; }, &info));
  EXPECT_EQ(info.woken, 1u);
  EXPECT_EQ(info.requeued, 2u);
  EXPECT_EQ(lot::queued(&from), 2u);
  EXPECT_EQ(lot::queued(&to), 2u);
  EXPECT_TRUE(lot::unpark_requeue_some(&from, &from, 0, 5, [] { return true; }, &info));
  EXPECT_EQ(info.requeued, 2u);  // to its own queue: counted, left in place
  EXPECT_EQ(lot::queued(&from), 2u);
  EXPECT_EQ(lot::unpark_some(&to, 10, [](uintptr_t) { return true; }), 2u);
  EXPECT_EQ(lot::unpark_some(&from, 10, [](uintptr_t) { return true; }), 2u);
  for (auto& t : threads) t.join();
  EXPECT_EQ(requeued.load(), 2);
}

TEST(ParkingLot, UnparkPairWakesWhatTheDecisionAllowsOrNothing) {
  int k1, k2;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] { EXPECT_EQ(park_plain(&k1).status, ParkStatus::kUnparked); });
    wait_queued(&k1, i + 1);
    threads.emplace_back([&] { EXPECT_EQ(park_plain(&k2).status, ParkStatus::kUnparked); });
    wait_queued(&k2, i + 1);
  }
  size_t w1 = 9, w2 = 9;
  EXPECT_EQ(lot::unpark_pair(&k1, &k2, [](size_t*, size_t*) -> long { return -38; }, &w1, &w2), -38);
  EXPECT_EQ(lot::queued(&k1) + lot::queued(&k2), 4u);
  auto one_and_none = [](size_t* n1, size_t* n2) -> long {
    *n1 = 1;
    *n2 = 0;
    return 0;
  };
  EXPECT_EQ(lot::unpark_pair(&k1, &k2, one_and_none, &w1, &w2), 0);
  EXPECT_EQ(w1, 1u);
  EXPECT_EQ(w2, 0u);
  auto all = [](size_t* n1, size_t* n2) -> long {
    *n1 = 10;
    *n2 = 10;
    return 0;
  };
  EXPECT_EQ(lot::unpark_pair(&k1, &k2, all, &w1, &w2), 0);
  EXPECT_EQ(w1, 1u);
  EXPECT_EQ(w2, 2u);
  for (auto& t : threads) t.join();
}
