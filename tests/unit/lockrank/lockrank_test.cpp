// The lock-order checker (runtime/lockrank.h): locks taken in rank order
// pass, a lock taken while one of equal or higher rank is held aborts with
// both names, parking-lot buckets nest in address order only.
#include <gtest/gtest.h>

#include "runtime/lockrank.h"
#include "runtime/spinlock.h"

using unblock::LockRank;
using unblock::SpinGuard;
using unblock::SpinLock;
namespace lockrank = unblock::lockrank;

static_assert(UNBLOCK_LOCKRANK, "this test is built with the checker");

TEST(LockRank, TakingLocksInRankOrderIsAllowed) {
  SpinLock registry{LockRank::kSchedRegistry}, bucket{LockRank::kParkingBucket}, inbox{LockRank::kWorkerInbox};
  {
    SpinGuard a(registry);
    SpinGuard b(bucket);
    SpinGuard c(inbox);
    EXPECT_EQ(lockrank::held_count(), 3);
  }
  EXPECT_EQ(lockrank::held_count(), 0);
  // Released out of order, taken again: the set is what is held, not a stack.
  registry.lock();
  inbox.lock();
  registry.unlock();
  EXPECT_EQ(lockrank::held_count(), 1);
  inbox.unlock();
  EXPECT_EQ(lockrank::held_count(), 0);
}

void registry_under_inbox() {
  SpinLock registry{LockRank::kSchedRegistry};
  SpinLock inbox{LockRank::kWorkerInbox};
  SpinGuard a(inbox);
  SpinGuard b(registry);
}

void two_timer_locks() {
  SpinLock first{LockRank::kSchedTimer};
  SpinLock second{LockRank::kSchedTimer};
  SpinGuard a(first);
  SpinGuard b(second);
}

TEST(LockRankDeathTest, TakingALowerRankWhileHoldingAHigherOneAborts) {
  EXPECT_DEATH(registry_under_inbox(),
      "lock order violation: taking sched registry \\(g_registry_lock\\) while holding worker inbox "
      "\\(Worker::inbox_lock\\)");
}

TEST(LockRankDeathTest, TwoLocksOfOneRankAbortUnlessTheRankNestsByAddress) {
  EXPECT_DEATH(two_timer_locks(),
      "taking sched timer pool \\(g_timer_lock\\) while holding sched timer pool");
}

TEST(LockRankDeathTest, TakingAHeldLockAgainAbortsInsteadOfSpinningForever) {
  EXPECT_DEATH(
      {
        SpinLock pool{LockRank::kStackPool};
        pool.lock();
        pool.lock();
      },
      "taking again stack pool");
}

TEST(LockRank, BucketsNestInAddressOrderOnly) {
  SpinLock buckets[2] = {SpinLock{LockRank::kParkingBucket}, SpinLock{LockRank::kParkingBucket}};
  {
    SpinGuard low(buckets[0]);
    SpinGuard high(buckets[1]);
    EXPECT_EQ(lockrank::held_count(), 2);
  }
  EXPECT_DEATH(
      {
        SpinGuard high(buckets[1]);
        SpinGuard low(buckets[0]);
      },
      "taking parking lot bucket \\(Bucket::lock\\) while holding parking lot bucket");
}

TEST(LockRank, ATryLockIsHeldButNeverAborts) {
  SpinLock registry{LockRank::kSchedRegistry}, inbox{LockRank::kWorkerInbox};
  SpinGuard a(inbox);
  ASSERT_TRUE(registry.try_lock());
  EXPECT_EQ(lockrank::held_count(), 2);
  registry.unlock();
  EXPECT_EQ(lockrank::held_count(), 1);
}

TEST(LockRank, UnrankedLocksAreNotTracked) {
  SpinLock plain;
  SpinGuard a(plain);
  EXPECT_EQ(lockrank::held_count(), 0);
}
