// Pending signals and per-fiber signal state: the data Fiber embeds
// (Fiber::sig), apart from the signal API (runtime/signals.h) so that
// runtime/fiber.h does not depend on it. The operations are defined in
// runtime/signal_delivery.cpp.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>

namespace unblock::signals {

constexpr int kMaxSig = 64;
inline constexpr uint64_t bit(int sig) { return uint64_t{1} << (sig - 1); }

// A queued signal: the leading 48 bytes of its siginfo_t, which hold every
// field a non-fault signal carries (pid/uid/value, timer, SIGCHLD status and
// times, SIGPOLL band/fd).
struct QueuedInfo {
  unsigned char bytes[48];
};

struct SigSlot {
  // kFree -> kWriting (a sender claimed it) -> kFull -> kTaking (a receiver
  // claimed it) -> kFree.
  enum : uint32_t { kFree, kWriting, kFull, kTaking };
  std::atomic<uint32_t> state{kFree};
  bool directed = false;  // sent to this thread (else process-directed)
  uint64_t seq = 0;       // arrival order, for queued (real-time) signals
  QueuedInfo info{};
};

// Pending signals: a fixed number of slots claimed with CAS, so any thread,
// fiber or signal handler may add or remove one without locks or
// allocation. A standard signal already pending is merged, as the kernel
// does; real-time signals queue, up to the capacity.
template <int N>
class SigQueue {
 public:
  // False: no free slot (the caller decides: EAGAIN, or keep it elsewhere).
  bool push(const siginfo_t& si, bool directed);
  // Removes the oldest instance of the lowest-numbered signal in `set`.
  // only_undirected: leave signals that were sent to this thread.
  bool take(uint64_t set, siginfo_t* out, bool* directed = nullptr, bool only_undirected = false);
  // Signals with an entry (exact; scans the slots).
  uint64_t pending() const;
  // A superset of pending() (one load).
  uint64_t hint() const { return bits_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> bits_{0};
  SigSlot slots_[N];
};

constexpr int kFiberSlots = 8;
constexpr int kHandlerNest = 8;

// Per-fiber signal state (Fiber::sig). The mask itself is Fiber::sigmask.
struct FiberSignals {
  SigQueue<kFiberSlots> queue;           // pending for this thread
  std::atomic<uint64_t> waiting{0};      // the set of a sigwait* in progress
  void* borrow_resume = nullptr;         // parked context a borrowed delivery returns to
  int handler_depth = 0;                 // handlers running on this fiber
  uint64_t handler_old_mask[kHandlerNest] = {};
  uintptr_t handler_sp[kHandlerNest] = {};
  stack_t altstack{nullptr, SS_DISABLE, 0};  // the program's sigaltstack for this thread
};

}  // namespace unblock::signals
