// Helpers shared by the sync unit tests (plain OS threads, no preload: the
// test binary's own pthread_* calls are glibc's, so tests can mix glibc and
// unblock::sync on one object on purpose).
#pragma once

#include <time.h>

#include <thread>

#include "runtime/parking_lot.h"

namespace sync_test {

constexpr long kMs = 1000 * 1000;

// now(clock) + ms.
inline timespec in_ms(clockid_t clock, long ms) {
  timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * kMs;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_nsec -= 1000000000;
    ++ts.tv_sec;
  }
  return ts;
}

inline bool reached(clockid_t clock, const timespec& ts) {
  timespec now;
  clock_gettime(clock, &now);
  return now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec);
}

// Blocks until n waiters are queued on key (no sleeping, no timing).
inline void wait_queued(const void* key, size_t n) {
  while (unblock::parking_lot::queued(key) < n) std::this_thread::yield();
}

}  // namespace sync_test
