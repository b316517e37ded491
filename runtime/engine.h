// The engine interface: what the blocking-call API (runtime/api.h) and the
// scheduler need from the thing that waits for the kernel, one per worker.
//
// An engine queues operations and timers, reports each one's end to a
// Completion on the worker's carrier (in the scheduler context), cancels,
// and sleeps the worker until something completes or notify() is called.
// It knows nothing of fibers, signals, timeouts' meaning or errno policy:
// that protocol is runtime/api.cpp's, written once for every engine.
//
// Engines: io_uring (runtime/engine_uring.{h,cpp}, the only file including
// liburing.h) and a readiness engine (epoll, runtime/engine_epoll.{h,cpp},
// issue 13) for where io_uring is refused: it tries an operation at once, parks it on readiness when it
// would block, runs calls without readiness (regular files, fsync, open) on
// helper threads, and reports through the same Completions. engine::create()
// is the one place an engine is chosen.
//
// Batching: submit() only queues; the scheduler calls flush() once per
// scheduling round and wait() when it has nothing to run, so a round costs
// one io_uring_enter however many fibers submitted. No completion is ever
// lost or turned into an error the program sees.
//
// An urgent operation (IoOp::urgent: accept) is submitted at once and looked
// for after every fiber run (urgent_ready), not once a round: a listener
// otherwise accepts one connection per scheduling round, ~1,000 a second on
// a busy server, and new connections wait seconds.
//
// Owner only (the carrier driving the worker), except notify(), enters(),
// inflight() and occupancy(), which any thread may call.
#pragma once

#include <linux/time_types.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace unblock {

struct Completion {
  // More completions follow for the same operation (a multishot poll still
  // armed): a bit of on_complete's `flags`, whatever the engine.
  static constexpr uint32_t kMore = 1;
  // Runs on the worker's carrier, in the scheduler context.
  void (*on_complete)(Completion* self, int res, uint32_t flags) = nullptr;
  bool urgent = false;  // set by submit from IoOp::urgent (see above)
};

// A timed park: fires with -ETIME unless cancelled first.
struct TimerOp : Completion {
  enum : int { kArmed, kFired, kCancelled };
  std::atomic<int> state{kArmed};
  class Fiber* fiber = nullptr;
  __kernel_timespec ts{};  // the engine's copy of the deadline while armed
  TimerOp* next_free = nullptr;
};

// One I/O operation, described without any engine's types.
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
  // Run it where it may block like the real call (io_uring: IOSQE_ASYNC,
  // its worker pool). The inline attempt of some operations is not the
  // real call: openat adds O_NONBLOCK there, so a FIFO would not wait.
  bool blocking_async = false;
  // Wake the fiber first and see the completion early (accept; see above).
  bool urgent = false;
  // kPollAdd: stay armed after each completion (io_uring:
  // IORING_POLL_ADD_MULTI, Linux 5.13); every completion but the last
  // carries Completion::kMore.
  static constexpr uint32_t kPollMultishot = 1;
};

// An operation in flight: what to do, where it reports, its timeout, and
// room for the engine's own state. It lives (with the memory `io` points to)
// until its last completion has run: on the waiting fiber's stack, which
// cannot unwind before then (api.cpp waits for the completion of a
// cancelled operation).
struct Op : Completion {
  IoOp io{};
  // > 0: the operation ends with -ECANCELED if nothing happened in time
  // (io_uring: a linked IORING_OP_LINK_TIMEOUT).
  int64_t timeout_ns = 0;
  // The engine's, while in flight (io_uring: the linked timeout's
  // timespec; a readiness engine: wait-list links, retry state).
  alignas(8) unsigned char engine_data[48] = {};
};

namespace engine {

// What every engine implements. See the file comment for who may call what.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual void shutdown() = 0;

  // Queues op (reports to op itself); submitted at the next flush(), or at
  // once if op->io.urgent.
  virtual void submit(Op* op) = 0;
  // Asks for op to end early; its completion still arrives (with its own
  // result if it had finished, else -ECANCELED).
  virtual void cancel(Op* op) = 0;
  // Arms a timer completing `t` at the absolute deadline; cancel_timer asks
  // for it to be dropped (its completion still arrives).
  virtual void arm_timer(TimerOp* t, clockid_t clock, const timespec& abs) = 0;
  virtual void cancel_timer(TimerOp* t) = 0;
  // Polls fd for input on behalf of the runtime itself (the control socket,
  // runtime/control.cpp): not counted in inflight(), so it never makes the
  // worker look busy to the monitor. `c` must live until its completion.
  virtual void arm_background_poll(int fd, Completion* c) = 0;

  // Submits what is queued without waiting.
  virtual void flush() = 0;
  // Submits and sleeps until at least one completion or a notify().
  virtual void wait() = 0;
  // Runs every available completion. Returns how many.
  virtual int reap() = 0;
  // True when an urgent completion is waiting (cheap when none is in flight).
  virtual bool urgent_ready() = 0;
  // True when what reap() would deliver costs nothing left where it is, so
  // the scheduler may reap later while it has enough to run: the epoll
  // engine's readiness stays in the kernel's ready list and its reads are
  // made at reap time. io_uring's completions are finished operations
  // filling a bounded completion queue: reaped every round.
  virtual bool keeps_backlog() const { return false; }
  // Whether a send to a unix datagram or seqpacket socket may wait here
  // for its receiver's queue to have room (the kernel's unix_wait_for_peer).
  // io_uring's may not: on Linux 6.18 such a send, handed to io_uring's
  // worker threads, completes with 0 once the receiver takes a datagram,
  // sends nothing, and the socket's next non-blocking sends fail with
  // EAGAIN although the queue has room (tests/preload/io/unix_dgram_full.c).
  // The blocking-call API then makes the kernel's own blocking call.
  virtual bool waits_for_unix_peer() const { return true; }
  // Any thread: wakes wait().
  virtual void notify() = 0;

  // Operations submitted and not yet completed (any thread, relaxed).
  virtual int inflight() const = 0;
  // Kernel entries made so far (UNBLOCK_STATS; any thread).
  virtual uint64_t enters() const = 0;
  // The epoll engine's registrations made on the program's fd number (past
  // its duplicate budget) and events it dropped as stale. Any thread
  // (racy: for stats). Others: 0.
  virtual uint64_t number_registrations() const { return 0; }
  virtual uint64_t stale_events() const { return 0; }
  // Submission and completion queue entries not yet consumed (any thread,
  // racy: for stats).
  virtual void occupancy(unsigned* sq, unsigned* cq) const = 0;
  // Any thread: the state of the open file `fd` names changed in a way the
  // engine may not see (a unix stream socket's own shutdown(SHUT_WR) wakes
  // a blocked sender in the kernel, but epoll has no bit for it): retry the
  // operations waiting on it. io_uring's own wait sees the wake-up: nothing.
  virtual void kick_remote(int fd) { (void)fd; }
  // Any thread, from the hooks that end or replace the program's fd (close,
  // dup2/dup3 over it, close_range, fclose): the engine drops what it keeps
  // about the file fd named (the epoll engine's cached registration and
  // duplicate) before the call returns. io_uring keeps nothing: no-op.
  // closing: the caller runs before the close (or dup2 over fd), while fd
  // still names the file; false when fd may already name another file (a
  // new fd being reported, after a dup2).
  virtual void forget_remote(int fd, bool closing) {
    (void)fd;
    (void)closing;
  }
  virtual void forget_range_remote(unsigned first, unsigned last) {
    (void)first;
    (void)last;
  }
  // Any thread: closes the descriptors the engine keeps only as a cache
  // (the program met EMFILE). Returns how many.
  virtual int release_idle_remote() { return 0; }
};

// Creates the engine for one worker: the single place an engine is chosen
// (UNBLOCK_ENGINE, runtime/engine.cpp): auto = io_uring if it can be set up
// and passes its probe, else epoll; uring or epoll = that one only; off =
// none. nullptr if none can run here (then *why is an errno value, e.g.
// ENOSYS or EPERM from a seccomp filter, and the runtime passes every call
// through). Runtime start, plain thread; allocates (alloc_objects, freed by
// Engine::shutdown).
Backend* create(unsigned entries, int* why);

// The engine every worker got and why ("io_uring", "epoll (io_uring:
// Operation not permitted)", "none (UNBLOCK_ENGINE=off)"): set by the first
// create(), for the log, UNBLOCK_STATS and unblock-ctl stats.
const char* chosen();
const char* chosen_reason();

}  // namespace engine

// A worker's engine: the Backend engine::create() chose, under the names
// the scheduler, monitor and dumps use. Calls forward (one indirect call).
class Engine {
 public:
  // False if no engine can run here (errno-free, the reason is in *why).
  bool init(unsigned entries, int* why) {
    impl_ = engine::create(entries, why);
    return impl_ != nullptr;
  }
  void shutdown() {
    if (!impl_) return;
    impl_->shutdown();
    impl_->~Backend();
    free(impl_);  // made with alloc_objects (runtime/alloc.h)
    impl_ = nullptr;
  }
  bool ready() const { return impl_ != nullptr; }
  const char* name() const { return impl_ ? impl_->name() : "none"; }

  void submit(Op* op) { impl_->submit(op); }
  void cancel(Op* op) { impl_->cancel(op); }
  void arm_timer(TimerOp* t, clockid_t clock, const timespec& abs) { impl_->arm_timer(t, clock, abs); }
  void cancel_timer(TimerOp* t) { impl_->cancel_timer(t); }
  void arm_background_poll(int fd, Completion* c) { impl_->arm_background_poll(fd, c); }

  void flush() { impl_->flush(); }
  void wait() { impl_->wait(); }
  int reap() { return impl_->reap(); }
  bool urgent_ready() { return impl_->urgent_ready(); }
  bool keeps_backlog() const { return impl_->keeps_backlog(); }
  bool waits_for_unix_peer() const { return impl_->waits_for_unix_peer(); }
  void notify() { impl_->notify(); }

  int inflight() const { return impl_ ? impl_->inflight() : 0; }
  uint64_t enters() const { return impl_ ? impl_->enters() : 0; }
  uint64_t number_registrations() const { return impl_ ? impl_->number_registrations() : 0; }
  uint64_t stale_events() const { return impl_ ? impl_->stale_events() : 0; }
  void kick_remote(int fd) {
    if (impl_) impl_->kick_remote(fd);
  }
  void forget_remote(int fd, bool closing = false) {
    if (impl_) impl_->forget_remote(fd, closing);
  }
  void forget_range_remote(unsigned first, unsigned last) {
    if (impl_) impl_->forget_range_remote(first, last);
  }
  int release_idle_remote() { return impl_ ? impl_->release_idle_remote() : 0; }
  void occupancy(unsigned* sq, unsigned* cq) const {
    if (!impl_) {
      *sq = *cq = 0;
      return;
    }
    impl_->occupancy(sq, cq);
  }
  static bool more_follow(uint32_t flags) { return (flags & Completion::kMore) != 0; }

 private:
  engine::Backend* impl_ = nullptr;
};

}  // namespace unblock
