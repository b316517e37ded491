// The lock order of the runtime, written down once (Go's lockrank.go idea),
// and a checker for debug builds.
//
// Every runtime lock (runtime/spinlock.h) is constructed with its rank. A
// thread (or fiber: locks are never held across a switch) may take a lock
// only if its rank is greater than the rank of every lock it already holds;
// a rank marked "nests by address" may also be taken again while one of the
// same rank is held, in increasing address order (the parking lot's bucket
// pairs). Built with UNBLOCK_LOCKRANK (CMake -DUNBLOCK_LOCKRANK=ON, the
// default in Debug builds) each lock() checks this against the ranks held
// and aborts with both locks' names on a violation; otherwise the rank is
// not even stored and a SpinLock is the one atomic byte it always was.
//
// The table (lowest first: taken first, released last). DESIGN.md section
// 4a has the same table with the reasons for each edge.
//
//   rank              lock (file)                          protects
//   kSchedStart       g_start_lock (scheduler.cpp)         runtime start-up: one starter at a time
//   kFaultInit        g_init_lock (fault/control.cpp)      loading libfiu once
//   kFaultControl     g_control_lock (fault/control.cpp)   the rule table and armed masks; held across
//                                                          libfiu's rwlock (fiber-aware: parking lot)
//   kSchedRegistry    g_registry_lock (scheduler.cpp)      the list of live fibers (for_each_fiber:
//                                                          signal delivery wakes fibers under it)
//   kSchedSpare       g_spare_lock (scheduler.cpp)         the list of spare carriers
//   kParkingBucket    Bucket::lock (parking_lot.cpp)       one hash bucket's waiter queue; two at a
//                                                          time in address order (requeue)
//   kFaultHang        g_hang_lock (fault/control.cpp)      the list of fault-hung waiters
//   kSchedTimer       g_timer_lock (scheduler.cpp)         the free list of timer ops
//   kWorkerInbox      Worker::inbox_lock (scheduler.h)     a worker's remote run queue (wake)
//   kStackPool        g_pool_lock (stack.cpp)              the pool of free fiber stacks
//   kSignalAction     g_act_lock (signals.cpp)             sigaction() writers: kernel and table agree.
//                                                          A leaf: only loads, stores and the raw
//                                                          rt_sigaction under it, taken with nothing held
//   kInspectRequest   g_req_lock (inspect_stacks.cpp)      one running-stack capture request at a time
//                                                          (try_lock and sleep; no runtime lock under it)
//   kInspectUnwinder  g_unw_lock (inspect.cpp)             loading libunwind once (dlopen under it)
//   kInspectDwarf     g_dw_lock (inspect_stacks.cpp)       loading libdw once (dlopen under it)
//
// Locks that are not in runtime/ - libfiu's rwlock, the program's own
// mutexes - are fiber-aware waits (parking lot), not ranked spin locks.
#pragma once

#include <stdint.h>

namespace unblock {

enum class LockRank : uint8_t {
  kUnranked = 0,  // not checked (tests, locks outside the runtime)
  kSchedStart,
  kFaultInit,
  kFaultControl,
  kSchedRegistry,
  kSchedSpare,
  kParkingBucket,
  kFaultHang,
  kSchedTimer,
  kWorkerInbox,
  kStackPool,
  kSignalAction,
  kInspectRequest,
  kInspectUnwinder,
  kInspectDwarf,
  kCount
};

namespace lockrank {

struct RankInfo {
  const char* name;
  bool nests_by_address;  // may be taken again while held, at a higher address
};

constexpr RankInfo kRanks[static_cast<int>(LockRank::kCount)] = {
    {"unranked", false},
    {"sched start (g_start_lock)", false},
    {"fault init (g_init_lock)", false},
    {"fault control (g_control_lock)", false},
    {"sched registry (g_registry_lock)", false},
    {"sched spare carriers (g_spare_lock)", false},
    {"parking lot bucket (Bucket::lock)", true},
    {"fault hang waiters (g_hang_lock)", false},
    {"sched timer pool (g_timer_lock)", false},
    {"worker inbox (Worker::inbox_lock)", false},
    {"stack pool (g_pool_lock)", false},
    {"signal action (g_act_lock)", false},
    {"inspect stack request (g_req_lock)", false},
    {"inspect libunwind loader (g_unw_lock)", false},
    {"inspect libdw loader (g_dw_lock)", false},
};

inline const char* name(LockRank r) { return kRanks[static_cast<int>(r)].name; }

#if UNBLOCK_LOCKRANK
// The checker (runtime/lockrank.cpp). Any thread or fiber, any context the
// lock may be taken in; no allocation; aborts with a message written by a
// raw write(2) on a violation or when more than kMaxHeld locks are held.
constexpr int kMaxHeld = 16;
void acquire(LockRank r, const void* lock);
void release(LockRank r, const void* lock);
void acquired_by_try(LockRank r, const void* lock);  // held, order not checked
// The locks the caller holds, for tests.
int held_count();
#endif

}  // namespace lockrank
}  // namespace unblock
