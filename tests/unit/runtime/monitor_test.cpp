// The monitor's verdict on a worker from successive samples (runtime/monitor.h).
#include "runtime/monitor.h"

#include <gtest/gtest.h>

#include "runtime/scheduler.h"

using namespace unblock;
using monitor::Sample;
using monitor::Verdict;

namespace {

constexpr uint64_t kInProgram = (1 << 1) | Worker::kUserBit;  // carrier 0, in the program's code
constexpr uint64_t kInRuntime = 1 << 1;

Sample sample(uint64_t state, uint64_t progress, uint64_t switches, bool waiting) {
  Sample s;
  s.state = state;
  s.progress = progress;
  s.switches = switches;
  s.waiting = waiting;
  return s;
}

}  // namespace

TEST(Monitor, FiberSwitchesMeanNoHandOff) {
  Worker w;
  for (uint64_t i = 1; i < 10; ++i) EXPECT_EQ(monitor::judge(&w, sample(kInProgram, i, i, true), 2), Verdict::kWait);
}

TEST(Monitor, BlockedCallWithOthersWaitingIsHandedOff) {
  Worker w;
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 5, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 5, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 5, 7, true), 2), Verdict::kHandOff);
}

TEST(Monitor, LoopEnteringTheRuntimeWithoutSwitchingIsHandedOffAsBusy) {
  // Runtime entries (progress) go on, but the same fiber keeps the worker.
  Worker w;
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 100, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 900, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 1700, 7, true), 2), Verdict::kHandOffBusy);
}

TEST(Monitor, HeldWorkerInsideTheRuntimeWaitsForTheNextSample) {
  Worker w;
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 1, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInRuntime, 2, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInRuntime, 3, 7, true), 2), Verdict::kWait);
  EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 4, 7, true), 2), Verdict::kHandOffBusy);
}

TEST(Monitor, NothingWaitingMeansNoHandOff) {
  Worker w;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(monitor::judge(&w, sample(kInProgram, 5, 7, false), 2), Verdict::kWait);
}
