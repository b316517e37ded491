// Engine: one io_uring per worker - the only file that includes liburing.h.
//
// Submissions are batched: sqe() only fills an entry; the scheduler calls
// flush() once per scheduling round and wait() when it has nothing to run,
// so a round costs one io_uring_enter however many fibers submitted.
// A full SQ is flushed and retried; the kernel keeps overflowed completions
// (IORING_FEAT_NODROP), so no completion is ever lost and the program never
// sees an error for it.
//
// Completions carry a pointer to a Completion that lives until its CQE is
// handled (on the waiting fiber's stack, or in the timer pool).
//
// An urgent operation (IoOp::urgent: accept) is submitted at once
// and looked for after every fiber run (urgent_ready), not once a round: a
// listener otherwise accepts one connection per scheduling round, ~1,000 a
// second on a busy server, and new connections wait seconds.
// Owner only (the carrier driving the worker), except notify(), which any
// thread may call to wake a worker sleeping in wait().
#pragma once

#include <linux/time_types.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>
#include <cstdint>

struct io_uring;
struct io_uring_sqe;

namespace unblock {

struct Completion {
  // Runs on the worker's carrier, in the scheduler context.
  void (*on_complete)(Completion* self, int res, uint32_t flags) = nullptr;
  bool urgent = false;  // set by submit_op from IoOp::urgent (see above)
};

// A timed park: fires with -ETIME unless cancelled first.
struct TimerOp : Completion {
  enum : int { kArmed, kFired, kCancelled };
  std::atomic<int> state{kArmed};
  class Fiber* fiber = nullptr;
  __kernel_timespec ts{};
  TimerOp* next_free = nullptr;
};

// One I/O operation, described without liburing types (hooks build these;
// only engine.cpp turns them into SQEs).
struct IoOp {
  enum Kind : uint8_t {
    kRead, kWrite, kReadv, kWritev, kRecv, kSend, kRecvmsg, kSendmsg, kAccept, kConnect,
    kPollAdd, kOpenat, kFsync, kClose, kSplice,
  };
  Kind kind;
  int fd = -1;
  void* addr = nullptr;      // buffer, iovec array, msghdr, sockaddr, path
  uint64_t len = 0;          // bytes, iovec count, or socklen / poll mask / mode
  uint64_t off = 0;          // file offset (-1: current position), or accept's socklen_t*
  uint32_t flags = 0;        // MSG_*, accept4 flags, open flags, fsync flags, SPLICE_F_*, kPollMultishot
  int fd_in = -1;            // splice: source fd and offset (-1: current position / pipe)
  int64_t off_in = -1;
  // Run it in io_uring's worker pool at once (IOSQE_ASYNC), where it may
  // block like the real call. The inline attempt of some operations is not
  // the real call: openat adds O_NONBLOCK there, so a FIFO would not wait.
  bool blocking_async = false;
  // Wake the fiber first and see the completion early (accept; Engine).
  bool urgent = false;
  // kPollAdd: stay armed after each completion (IORING_POLL_ADD_MULTI,
  // Linux 5.13); every CQE but the last carries IORING_CQE_F_MORE.
  static constexpr uint32_t kPollMultishot = 1;
};

class Engine {
 public:
  // False if io_uring cannot be used here (ENOSYS, EPERM from seccomp or
  // kernel.io_uring_disabled); errno-free, the reason is in *why.
  bool init(unsigned entries, int* why);
  void shutdown();
  bool ready() const { return ring_ != nullptr; }

  // An SQE to fill, never null: flushes a full queue first. The caller must
  // fill it completely (prep helpers below) before the next scheduling point.
  io_uring_sqe* sqe();

  // Submits what is queued without waiting.
  void flush();
  // Submits and sleeps until at least one completion or a notify().
  void wait();
  // Handles every available completion. Returns how many.
  int reap();
  // True when an urgent completion is waiting in the completion queue
  // (cheap when none is in flight: one load).
  bool urgent_ready();

  // Any thread: wakes wait().
  void notify();

  // Number of operations submitted and not yet completed.
  int inflight() const { return inflight_.load(std::memory_order_relaxed); }
  bool has_pending_submissions() const;
  // io_uring_enter calls made so far (UNBLOCK_STATS). Read from any thread.
  uint64_t enters() const { return enters_.load(std::memory_order_relaxed); }

  // Polls fd for input on behalf of the runtime itself (the control socket,
  // runtime/control.cpp): not counted in inflight(), so it never makes the
  // worker look busy to the monitor. `c` must live until its completion.
  void arm_background_poll(int fd, Completion* c);
  // Submission and completion queue entries not yet consumed. Any thread
  // (racy: for stats).
  void occupancy(unsigned* sq, unsigned* cq) const;

  // Arms a timer completing `t` at the absolute deadline.
  void arm_timer(TimerOp* t, clockid_t clock, const timespec& abs);
  // Asks the kernel to drop an armed timer (its CQE still arrives, cancelled).
  void cancel_timer(TimerOp* t);

  // Prepares a completion that the op will report to (sets user_data).
  static void set_data(io_uring_sqe* sqe, Completion* c);

  // Queues `op` reporting to `c`; with timeout_ns > 0 a linked timeout
  // (IORING_OP_LINK_TIMEOUT, relative, kept in *ts until submission) cancels
  // it with -ECANCELED when it expires.
  void submit_op(const IoOp& op, Completion* c, int64_t timeout_ns, __kernel_timespec* ts);
  // Asks the kernel to cancel the operation reporting to `c`.
  void cancel(Completion* c);
  // True if a completion's flags say more completions follow for the same
  // operation (a multishot poll still armed). Any thread.
  static bool more_follow(uint32_t flags);

 private:
  // Only the driving carrier enters: a plain load and store, no locked add.
  void count_enter() { enters_.store(enters_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void arm_eventfd();
  static void on_eventfd(Completion* self, int res, uint32_t flags);

  io_uring* ring_ = nullptr;
  int event_fd_ = -1;
  uint64_t event_buf_ = 0;
  Completion event_completion_;
  std::atomic<int> inflight_{0};
  unsigned queued_ = 0;
  unsigned urgent_inflight_ = 0;
  unsigned urgent_scanned_ = 0;  // completion queue index up to which urgent_ready looked
  std::atomic<uint64_t> enters_{0};
};

}  // namespace unblock
