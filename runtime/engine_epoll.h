// EpollEngine: the completion contract of Engine (runtime/engine.h) emulated
// on epoll, for machines where io_uring is refused (a seccomp profile such as
// Docker's, kernel.io_uring_disabled). A proactor on a reactor.
//
// Responsible for: trying each operation at once without blocking the
// worker, waiting for readiness in the worker's epoll set when it cannot
// finish, retrying it, and delivering one completion per operation (several
// for a multishot poll) at the next reap(); timers and linked timeouts on
// timerfds; calls with no readiness (regular files, openat, fsync, close)
// on a bounded pool of runtime threads. docs/DESIGN.md, section 9 ("The epoll engine"), has the design:
// the protocol per fd kind and the reasons.
//
// Must not: change the program's fd flags (one exception, connect, is
// documented at connect_start), block the worker thread in a system call,
// call a completion inside submit_op/cancel (only reap() calls them), or
// call a hooked symbol (raw system calls only).
//
// An engine::Backend (runtime/engine.h): engine::create() picks it when
// io_uring cannot be set up or UNBLOCK_ENGINE=epoll asks for it.
// Owner only (the carrier driving the worker), except notify(), inflight(),
// enters(), occupancy(), kick_remote(), forget_remote() and
// forget_range_remote(), which any thread may call.
#pragma once

#include <linux/time_types.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>
#include <cstdint>

#include "runtime/engine.h"
#include "runtime/spinlock.h"

namespace unblock {

class EpollEngine final : public engine::Backend {
 public:
  // Flag of a completion after which more follow for the same operation
  // (a multishot poll still armed): the engine-neutral Completion::kMore.
  static constexpr uint32_t kMore = Completion::kMore;

  EpollEngine() = default;
  EpollEngine(const EpollEngine&) = delete;
  EpollEngine& operator=(const EpollEngine&) = delete;
  ~EpollEngine() override;
  const char* name() const override { return "epoll"; }

  // False if epoll or eventfd cannot be created; errno-free, the reason is
  // in *why. `entries` is accepted for the same signature as Engine::init
  // (epoll has no ring to size). pool_threads bounds the process-wide helper
  // pool (the largest value any engine asked for wins; 0: the default, 8).
  bool init(unsigned entries, int* why, unsigned pool_threads = 0);
  // Owner; every operation must have completed (nothing in flight).
  void shutdown() override;
  bool ready() const { return epfd_ >= 0; }

  // Nothing is batched: operations are tried when submitted.
  void flush() override {}
  bool has_pending_submissions() const { return false; }
  // Sleeps until at least one completion is ready or notify() is called;
  // returns at once if completions wait for reap().
  void wait() override;
  // Handles every completion that was ready when it started (completions
  // that callbacks produce wait for the next reap). Returns how many.
  int reap() override;
  // True when an urgent operation (accept) may have a completion waiting.
  bool urgent_ready() override;
  bool keeps_backlog() const override { return true; }
  // Any thread: wakes wait().
  void notify() override;

  // Operations submitted and not yet completed, plus one for the wake-up
  // eventfd (as Engine counts its armed eventfd read). Any thread (racy).
  int inflight() const override { return inflight_.load(std::memory_order_relaxed); }
  // epoll_wait calls so far. Any thread.
  uint64_t enters() const override { return enters_.load(std::memory_order_relaxed); }
  // Operations queued for the helper pool and not started / completions
  // not yet delivered. Any thread (racy: for stats).
  void occupancy(unsigned* sq, unsigned* cq) const override;

  // Polls fd for input for the runtime itself (not counted in inflight()).
  void arm_background_poll(int fd, Completion* c) override;
  // Completes `t` with -ETIME at the absolute deadline on `clock`
  // (CLOCK_REALTIME and CLOCK_BOOTTIME as such; any other clock is taken as
  // CLOCK_MONOTONIC, as in Engine). While armed, t->ts holds the engine's
  // record of it.
  void arm_timer(TimerOp* t, clockid_t clock, const timespec& abs) override;
  // Drops an armed timer: it completes with -ECANCELED unless it fired
  // first (then its -ETIME stays the one completion).
  void cancel_timer(TimerOp* t) override;

  // Starts `op` reporting to `c`; timeout_ns > 0: if it has not finished
  // that long after submission it completes with -ECANCELED (or with the
  // bytes it moved). `ts` is unused (Engine keeps its linked timeout there).
  void submit_op(const IoOp& op, Completion* c, int64_t timeout_ns, __kernel_timespec* ts);
  // The Backend form: op->io, reporting to op, with op->timeout_ns.
  void submit(Op* op) override { submit_op(op->io, op, op->timeout_ns, nullptr); }
  // Cancels the operation reporting to `c`: it completes with -ECANCELED
  // (or the bytes it moved), or with its own result if it already finished.
  // A call a helper thread runs is interrupted with the runtime's marker
  // signal (helper_interrupt). No effect if there is none.
  void cancel(Completion* c);
  void cancel(Op* op) override { cancel(static_cast<Completion*>(op)); }
  // Any thread: retries the operations waiting on the open file `fd` names
  // (in this engine). For state changes epoll does not report: a unix
  // stream socket's own shutdown(SHUT_WR) wakes a blocked sender in the
  // kernel, but unix_poll has no bit for it, so epoll filters the wake-up
  // out. The shutdown hook is meant to call it on every worker's engine.
  void kick_remote(int fd) override;
  // Any thread, before the program's close(fd) (or after its dup2/dup3
  // over fd) returns: the engine's registration of what fd named is no
  // longer fd's. An idle cached one is taken off the epoll set and its
  // duplicate closed here, on the calling thread, so the file closes (a
  // socket sends its FIN) as the program's close expects; one an operation
  // waits in keeps the file until that operation ends (then it is
  // dropped), as a thread blocked in read(2) keeps it in the kernel.
  // Never suspends, never allocates, not async-signal-safe.
  // closing: fd still names the file (the Backend contract); only then may
  // a waited-on registration on the program's number be given a duplicate.
  void forget_remote(int fd, bool closing) override;
  void forget_remote(int fd) { forget_remote(fd, true); }
  // Any thread: forget_remote for every fd in [first, last] (close_range).
  void forget_range_remote(unsigned first, unsigned last) override;
  // Any thread: every idle cached registration is dropped as by
  // forget_remote (the program met EMFILE: the descriptors are its).
  // Returns how many duplicates were closed.
  int release_idle_remote() override;
  // Registrations cached idle with a duplicate of their own, those cached
  // idle on the program's number, duplicates held by every engine (tests).
  int cached_idle() const { return cached_idle_; }
  int idle_by_number() const { return idle_by_number_; }
  // Events dropped because their entry was stale (see FdState), and
  // registrations made on the program's number. Any thread (racy).
  uint64_t stale_events() const override { return stale_events_.load(std::memory_order_relaxed); }
  uint64_t number_registrations() const override { return number_regs_.load(std::memory_order_relaxed); }
  static int duplicates_held();
  // True if a completion's flags say more completions follow. Any thread.
  static bool more_follow(uint32_t flags) { return (flags & kMore) != 0; }

  struct Pending;
  struct FdState;
  struct Heap;

 private:
  friend struct PoolAccess;
  enum class Step : uint8_t;

  void count_enter() { enters_.store(enters_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  Pending* alloc_pending();
  void free_pending(Pending* p);
  void start(Pending* p);
  Step attempt(Pending* p, int fd);
  void finish_step(Pending* p, Step s, int fd);
  void enqueue(Pending* p);
  void wait_or_pool(Pending* p, int fd, uint32_t events, uint8_t mode);
  int wait_on(Pending* p, int fd, uint32_t events, uint8_t mode);
  FdState* fd_state(int fd, bool edge, int* err);
  int update(FdState* fs);
  static int waiters_want(const FdState* fs, uint32_t* want);
  long arm(FdState* fs, int op, uint32_t events);
  int update_persistent(FdState* fs);
  void release(FdState* fs);
  void go_idle(FdState* fs);
  bool evict_idle();
  void reclaim(FdState* fs);
  void drain_dead();
  void lru_unlink(FdState* fs);
  FdState* alloc_fdstate();
  FdState* tagged(uint64_t tag) const;
  void free_fdstate(FdState* fs);
  std::atomic<FdState*>* slot(int fd, bool create);
  FdState* table_get(int fd) const;
  bool forget_slot(int fd, FdState* fs, bool idle_only, bool closing);
  static bool number_gone(const FdState* fs);
  bool adopt_rescue(FdState* fs);
  static void close_taken(FdState* fs);
  static void drop_duplicate(FdState* fs);
  int forget_slots(unsigned first, unsigned last, bool idle_only);
  static void after_fork_child();
  void unlink_waiter(Pending* p);
  void on_ready(FdState* fs, uint32_t revents, bool kick = false);
  void take_kicks();
  void to_pool(Pending* p, int fd);
  void connect_start(Pending* p);
  static long open_cached(const IoOp& op);
  void interrupt_helper(Pending* p);
  void complete(Pending* p, int res);
  void stop(Pending* p);
  void poll_events(int timeout_ms);
  void drain_pool();
  void expire_timers();
  void heap_add(int which, Pending* p);
  void heap_remove(Pending* p);
  void sync_timerfd(int which);

  int epfd_ = -1;
  int event_fd_ = -1;
  int pid_ = 0;
  int dup_base_ = 0;
  bool just_polled_ = false;
  Heap* heaps_ = nullptr;  // [3]: monotonic, realtime, boottime
  // By the program's fd number: the registration operations on that fd
  // share (waited in, or cached idle). Chunks of kSlots, allocated by the
  // owner on first use and never moved or freed before shutdown(), so any
  // thread may read them (forget_remote).
  static constexpr int kSlotBits = 10;
  static constexpr int kSlots = 1 << kSlotBits;
  static constexpr int kSlotChunks = 1 << 12;  // fds up to 4M
  std::atomic<std::atomic<FdState*>*> slots_[kSlotChunks] = {};
  std::atomic<int> slot_chunks_hi_{0};  // one past the highest chunk index allocated
  FdState** fs_chunks_ = nullptr;  // FdState blocks, never freed before shutdown()
  int nfs_chunks_ = 0;
  FdState* fs_free_ = nullptr;
  FdState* lru_head_ = nullptr;  // idle cached registrations, oldest first
  FdState* lru_tail_ = nullptr;
  int cached_idle_ = 0;      // in the LRU: with a duplicate
  int idle_by_number_ = 0;  // on the program's number: no duplicate, never evicted
  std::atomic<uint64_t> stale_events_{0};  // owner-written (load + store), read by stats
  std::atomic<uint64_t> number_regs_{0};
  std::atomic<FdState*> dead_{nullptr};  // taken and closed by forget_remote, to reclaim
  Pending* free_ = nullptr;
  Pending** chunks_ = nullptr;  // record blocks, freed by shutdown
  int nchunks_ = 0;
  Pending* all_ = nullptr;  // every live record, for cancel(Completion*)
  Pending* ready_head_ = nullptr;
  Pending* ready_tail_ = nullptr;
  int fd_waiters_ = 0;  // records in kFdWait: reap() asks epoll only when some wait
  unsigned urgent_inflight_ = 0;
  unsigned urgent_waiting_ = 0;  // urgent records in kFdWait
  int64_t last_urgent_poll_ = 0;
  unsigned urgent_ready_ = 0;
  std::atomic<unsigned> ready_count_{0};
  std::atomic<unsigned> pool_queued_{0};
  std::atomic<Pending*> done_{nullptr};  // pushed by helper threads
  std::atomic<int> inflight_{0};
  SpinLock kick_lock_;
  int kicks_[16] = {};
  int nkicks_ = 0;        // under kick_lock_
  bool kick_all_ = false;  // under kick_lock_: more than kicks_ holds
  std::atomic<bool> kick_pending_{false};
  std::atomic<uint64_t> enters_{0};
};

// Signal-handler context (signals.cpp's marker handler). on_helper_thread:
// the thread is one of the epoll engine's helpers (the one runtime thread
// kind that leaves SIGURG unblocked). helper_interrupt, on a helper, for the
// runtime's marker: a call the owner stopped, caught between the flag check
// and its `syscall` instruction, is made to return -EINTR.
bool on_helper_thread();
void helper_interrupt(ucontext_t* uc);

}  // namespace unblock
