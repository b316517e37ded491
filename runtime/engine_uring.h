// The io_uring engine: one ring per worker, the only code that includes
// liburing.h (engine_uring.cpp).
//
// A full SQ is flushed and retried; the kernel keeps overflowed completions
// (IORING_FEAT_NODROP, required), so no completion is ever lost. Each
// completion's user_data is the Completion it reports to, with two low bits
// (Completions are 8-byte aligned): urgent, and background (not counted in
// inflight). Cancellation is IORING_OP_ASYNC_CANCEL by user_data; a timeout
// is a linked IORING_OP_LINK_TIMEOUT whose timespec lives in the Op's
// engine_data until the ring has consumed the SQE.
// Owner only, except the calls engine.h allows from any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "runtime/engine.h"

struct io_uring;
struct io_uring_sqe;

namespace unblock::engine {

class Uring final : public Backend {
 public:
  // False if io_uring cannot be used here (ENOSYS, EPERM from seccomp or
  // kernel.io_uring_disabled, no IORING_FEAT_NODROP); errno-free, the
  // reason is in *why.
  bool init(unsigned entries, int* why);

  const char* name() const override { return "io_uring"; }
  bool waits_for_unix_peer() const override { return false; }  // Backend: io_uring completes such a send with 0
  void shutdown() override;
  void submit(Op* op) override;
  void cancel(Op* op) override;
  void arm_timer(TimerOp* t, clockid_t clock, const timespec& abs) override;
  void cancel_timer(TimerOp* t) override;
  void arm_background_poll(int fd, Completion* c) override;
  void flush() override;
  void wait() override;
  int reap() override;
  bool urgent_ready() override;
  void notify() override;
  int inflight() const override { return inflight_.load(std::memory_order_relaxed); }
  uint64_t enters() const override { return enters_.load(std::memory_order_relaxed); }
  void occupancy(unsigned* sq, unsigned* cq) const override;

 private:
  // An SQE to fill, never null: flushes a full queue first. The caller must
  // fill it completely before the next scheduling point.
  io_uring_sqe* sqe();
  // Only the driving carrier enters: a plain load and store, no locked add.
  void count_enter() { enters_.store(enters_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  // Likewise: only the driving carrier queues and reaps (other threads only
  // read inflight()).
  void add_inflight(int d) { inflight_.store(inflight_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
  void arm_eventfd();
  static void on_eventfd(Completion* self, int res, uint32_t flags);

  io_uring* ring_ = nullptr;
  int event_fd_ = -1;
  uint64_t event_buf_ = 0;
  struct EventCompletion : Completion {
    Uring* engine = nullptr;
  };
  EventCompletion event_completion_;
  std::atomic<int> inflight_{0};
  unsigned queued_ = 0;
  unsigned urgent_inflight_ = 0;
  unsigned urgent_scanned_ = 0;  // completion queue index up to which urgent_ready looked
  std::atomic<uint64_t> enters_{0};
};

}  // namespace unblock::engine
