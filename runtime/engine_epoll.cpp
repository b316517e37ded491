#include "runtime/engine_epoll.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <linux/futex.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runtime/alloc.h"
#include "runtime/iov.h"
#include "runtime/own_fds.h"
#include "runtime/signals.h"
#include "runtime/spinlock.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"
#include "shim/real.h"

namespace unblock {

namespace {

// How a registered operation continues when its fd becomes ready.
enum : uint8_t {
  kModeRetry,    // try the call again, without blocking (the fd has a per-call non-blocking form)
  kModePool,     // hand it to a helper thread (no non-blocking form: accept, splice, ttys)
  kModeConnect,  // read SO_ERROR: the non-blocking connect finished
  kModePoll,     // report the readiness bits (poll-add)
};

// epoll tags of the engine's own descriptors. A registration's tag is its
// record's generation << 32 | (its index + kTagFsBase): see FdState.
constexpr uint64_t kTagEvent = 1;
constexpr uint64_t kTagHeap = 2;  // + 0..2
constexpr uint32_t kTagFsBase = 16;

constexpr uint32_t kFsyncDatasync = 1;  // IORING_FSYNC_DATASYNC
constexpr uint64_t kCurrentPos = ~0ULL;
constexpr int kChunk = 64;
constexpr int kMaxIov = 1024;   // UIO_MAXIOV
constexpr int kProgressRounds = 64;  // bound of the try-again loop of one attempt
constexpr unsigned kDefaultPool = 8;
// How often urgent_ready() may ask epoll while an accept waits: each ask is
// an epoll_pwait that also takes whatever else is ready, in small batches.
// At 50 us the echo server at 10,000 connections made one per 4 messages;
// at 1 ms it ran 7-9% faster (1,000 connections: 3-5%), and a busy
// worker's round (64 runs) ends about as often anyway.
constexpr int64_t kUrgentPollNs = 1000 * 1000;

int64_t now_ns(clockid_t clock) {
  timespec ts;
  real::clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

bool is_regular(int fd) {
  struct stat st;
  if (raw_syscall(SYS_fstat, fd, reinterpret_cast<long>(&st)) < 0) return false;
  return S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
}

}  // namespace

// One operation (or one armed timer). States:
//   kTimer       armed timer, in a heap
//   kFdWait      waiting for readiness, in its FdState's list (maybe also in a heap: linked timeout)
//   kPoolQueued  in the helper pool's queue (cancel removes it)
//   kPoolRunning a helper thread runs it (cancel cannot stop it; its result comes)
//   kReady       finished, in the ready queue until reap() delivers it
// A multishot poll stays kFdWait while its events queue (`queued`); it
// becomes kReady only for its last completion.
struct EpollEngine::Pending {
  enum State : uint8_t { kFree, kStarting, kTimer, kFdWait, kPoolQueued, kPoolRunning, kReady };
  IoOp op{};
  Completion* c = nullptr;
  EpollEngine* engine = nullptr;
  State state = kFree;
  uint8_t mode = kModeRetry;
  bool timer = false;
  bool background = false;
  bool multishot = false;
  bool queued = false;
  bool urgent = false;
  bool not_socket = false;  // a write continued with pwritev2 (sendmsg said ENOTSOCK)
  bool unsure = false;  // its last attempt stopped at the progress bound, not at EAGAIN
  uint8_t false_ready = 0;  // writability reported, its send still met EAGAIN (on_ready)
  // Helper-thread interruption (interrupt_helper): set by the owner to stop
  // the call a helper runs; the helper's OS thread id while it runs it.
  // __atomic builtins (the record is reset by assignment).
  int interrupt = 0;
  int helper_tid = 0;
  uint32_t want = 0;     // epoll events awaited
  uint32_t events = 0;   // multishot: readiness not yet delivered
  int res = 0;
  uint64_t done = 0;     // bytes moved so far (writes, MSG_WAITALL, a regular file's rest)
  uint64_t total = 0;    // bytes asked for (data operations)
  int pool_fd = -1;
  int heap = -1;
  int heap_idx = -1;
  int64_t deadline = 0;  // ns on the heap's clock; 0: no linked timeout
  FdState* fs = nullptr;    // the registration it waits in
  FdState* hold = nullptr;  // the registration whose dup a helper thread uses
  Pending* fnext = nullptr;
  Pending* fprev = nullptr;
  Pending* anext = nullptr;
  Pending* aprev = nullptr;
  Pending* rnext = nullptr;  // ready queue, pool queue, or the done stack
};

// The engine's registration of one open file: its own duplicate of the
// program's fd (so the file stays open, and the registration valid, while
// an operation waits on it even if the program closes or dup2's the
// number), the events armed and the waiters.
//
// A registration in the table is persistent: armed edge-triggered for
// everything (kPersistEvents | EPOLLET) and kept, epoll entry and
// duplicate, when its last waiter leaves (cached idle), so the next wait on
// the same fd costs no system call. It ends when the program closes or
// replaces the fd (forget_remote, from the hooks), when the duplicate
// budget needs its duplicate back (evict_idle), or at shutdown. Past the
// budget a registration is made on the program's number itself (own_dup
// false): kept the same way, it holds no descriptor, so it is never
// evicted, and forgetting it only takes the entry off the epoll set
// (before the program's close, while the number still names the file).
// A multishot poll's own registration (`edge`, not in the table) is armed
// EPOLLET and dropped when the poll ends.
//
// Stale entries: an entry made on the program's number outlives the
// registration if the number is closed or replaced behind the hooks' back
// (an inline system call) or while an operation waits, and another
// descriptor keeps the file open (a dup, a fork's child): the kernel keys
// entries by (file, number), so it can no longer be deleted, and it goes
// on reporting. Its tag names the record by index and generation
// (alloc_fdstate bumps it); poll_events drops an event whose generation is
// not the record's, so a reused record never takes another file's events.
//
// `word` is the one field another thread touches: (fd << 8) | state, where
// state is, for a registration in the table:
//   kStBusy      owner's: waiters or helper jobs use it
//   kStIdle      cached, unused; a closer may take it (-> kStClosing)
//   kStForgotten the program closed/replaced fd while in use: dropped when
//                the last user leaves, never joined again
//   kStClosing   taken by forget_remote: it takes it off the epoll set,
//                closes the duplicate and pushes it on the engine's dead_
//                stack; the owner reclaims it from there
// and 0 (kStFree) for anything not in the table or on the free list.
// Transitions: the owner Busy <-> Idle (CAS); a closer Idle -> Closing and
// Busy -> Forgotten (CAS). fd in the word guards against a record reused
// for another number between a closer's table read and its CAS.
struct EpollEngine::FdState {
  std::atomic<uint64_t> word{0};
  EpollEngine* engine = nullptr;
  int fd = -1;   // the program's number while the table points here, else -1
  int dup = -1;
  bool own_dup = false;
  bool added = false;
  bool live = false;  // armed and able to report (a one-shot that fired is not)
  bool edge = false;
  bool persistent = false;
  bool recheck = false;  // persistent: a waiter needs the level checked again (EPOLL_CTL_MOD)
  bool in_lru = false;
  bool idle_by_number = false;  // cached idle on the program's number (counted in idle_by_number_)
  bool used = false;  // allocated (not on the free list)
  bool detached = false;  // taken out of the table while in use: the program closed or replaced fd
  // It reported EPOLLRDHUP: the receive side is shut for good (on_ready).
  bool rdhup = false;
  uint32_t armed = 0;
  int busy = 0;  // helper-thread jobs started from its readiness, still running
  Pending* head = nullptr;
  Pending* tail = nullptr;
  FdState* next_free = nullptr;
  FdState* lru_prev = nullptr;
  FdState* lru_next = nullptr;
  FdState* dnext = nullptr;  // the dead_ stack
  int64_t idle_since = 0;    // CLOCK_MONOTONIC_COARSE ns when it was last cached idle
  std::atomic<int> rescue{-1};  // a closer's duplicate for the owner to adopt (forget_slot)
  uint32_t id = 0;           // index in the engine's record chunks (fixed)
  uint32_t gen = 0;          // bumped at each allocation: the epoll tag's check
};

namespace {
enum : uint64_t { kStFree = 0, kStBusy = 1, kStIdle = 2, kStForgotten = 3, kStClosing = 4 };
constexpr uint64_t kStMask = 0xff;
uint64_t st_word(int fd, uint64_t st) { return static_cast<uint64_t>(static_cast<uint32_t>(fd)) << 8 | st; }
// What a persistent registration is armed for, once, edge-triggered.
constexpr uint32_t kPersistEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
constexpr int kFsChunk = 64;
// An idle registration is given up for another fd's only after this long
// unused: one whose fiber is between two waits (the usual idle) is about to
// be used again, and taking it would only move the miss to that fiber.
constexpr int64_t kEvictIdleNs = 100 * 1000 * 1000;
constexpr int kMaxDupBase = 32768;

uint64_t fs_tag(const EpollEngine::FdState* fs) {
  return static_cast<uint64_t>(fs->gen) << 32 | (fs->id + kTagFsBase);
}
}  // namespace

struct EpollEngine::Heap {
  clockid_t clock = CLOCK_MONOTONIC;
  int tfd = -1;
  Pending** v = nullptr;
  int n = 0;
  int cap = 0;
  int64_t armed = -1;  // deadline in the timerfd, -1: disarmed
  bool fired = false;  // the timerfd reported: re-arm even if the deadline is unchanged
};

// ---- helper pool ------------------------------------------------------------------------
// Process-wide, shared by every engine: bounded OS threads, started lazily
// with the runtime threads' signal mask (every asynchronous signal blocked),
// running raw system calls that may block. A finished job is pushed on its
// engine's done stack and the engine is notified.


// ---- interrupting a helper's call ---------------------------------------------------------
// A helper runs an interruptible call through unblock_cp_syscall(flag, nr,
// a1..a6): it checks *flag and makes the system call. To stop it, the owner
// sets the flag and sends the runtime's marker signal (SIGURG, unblocked in
// helpers only among runtime threads) to the helper. Its handler
// (signals.cpp's marker_handler calls helper_interrupt first) moves a
// helper found between the check and the `syscall` instruction - also where
// the kernel leaves it to restart an SA_RESTART-interrupted call - to
// unblock_cp_cancel, which returns -EINTR; a call that already returned
// keeps its result. A stale signal (the flag clear) changes nothing: the
// kernel restarts the call or the helper retries an EINTR itself.
extern "C" long unblock_cp_syscall(const int* flag, long nr, long a1, long a2, long a3, long a4, long a5, long a6);
extern "C" char unblock_cp_begin[], unblock_cp_insn[], unblock_cp_cancel[];
asm(R"(
  .text
  .globl unblock_cp_syscall
  .hidden unblock_cp_syscall
  .type unblock_cp_syscall, @function
unblock_cp_syscall:
  mov %rdi, %r11
  mov %rsi, %rax
  mov %rdx, %rdi
  mov %rcx, %rsi
  mov %r8, %rdx
  mov %r9, %r10
  mov 8(%rsp), %r8
  mov 16(%rsp), %r9
  .globl unblock_cp_begin
  .hidden unblock_cp_begin
unblock_cp_begin:
  cmpl $0, (%r11)
  jne unblock_cp_cancel
  .globl unblock_cp_insn
  .hidden unblock_cp_insn
unblock_cp_insn:
  syscall
  ret
  .globl unblock_cp_cancel
  .hidden unblock_cp_cancel
unblock_cp_cancel:
  mov $-4, %rax
  ret
  .size unblock_cp_syscall, .-unblock_cp_syscall
)");

namespace {
thread_local const int* tl_cp_flag __attribute__((tls_model("initial-exec"))) = nullptr;
// True on the pool's helper threads (false in every fiber's TLS block too).
thread_local bool tl_helper __attribute__((tls_model("initial-exec"))) = false;

// Helper thread: the call, retried when a stale signal interrupted it;
// -ECANCELED when the owner stopped it.
long cp_call(EpollEngine::Pending* p, const int* flag, long nr, long a1 = 0, long a2 = 0, long a3 = 0, long a4 = 0,
             long a5 = 0, long a6 = 0) {
  (void)p;
  for (;;) {
    __atomic_store_n(&tl_cp_flag, flag, __ATOMIC_SEQ_CST);
    long r = unblock_cp_syscall(flag, nr, a1, a2, a3, a4, a5, a6);
    __atomic_store_n(&tl_cp_flag, nullptr, __ATOMIC_SEQ_CST);
    if (r != -EINTR) return r;
    if (__atomic_load_n(flag, __ATOMIC_SEQ_CST)) return -ECANCELED;
  }
}
}  // namespace

bool on_helper_thread() { return tl_helper; }

void helper_interrupt(ucontext_t* uc) {
  auto ip = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  if (ip < reinterpret_cast<uintptr_t>(unblock_cp_begin) || ip > reinterpret_cast<uintptr_t>(unblock_cp_insn)) return;
  const int* flag = __atomic_load_n(&tl_cp_flag, __ATOMIC_SEQ_CST);
  if (flag && __atomic_load_n(flag, __ATOMIC_SEQ_CST)) uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(unblock_cp_cancel);
}

struct PoolAccess {
  static void run(EpollEngine::Pending* p);
  static void push_done(EpollEngine::Pending* p) {
    EpollEngine* e = p->engine;
    EpollEngine::Pending* head = e->done_.load(std::memory_order_relaxed);
    do {
      p->rnext = head;
      // Release pairs with the owner's acquire exchange in drain_pool: it
      // then sees the result.
    } while (!e->done_.compare_exchange_weak(head, p, std::memory_order_release, std::memory_order_relaxed));
    e->notify();
  }
  static void dequeued(EpollEngine::Pending* p) { p->engine->pool_queued_.fetch_sub(1, std::memory_order_relaxed); }
  static void after_fork_child() { EpollEngine::after_fork_child(); }
};

namespace {

struct Pool {
  SpinLock lock;
  EpollEngine::Pending* head = nullptr;
  EpollEngine::Pending* tail = nullptr;
  int threads = 0;
  int idle = 0;
  int queued = 0;  // jobs in the queue
  unsigned max = kDefaultPool;
  int pid = 0;
  std::atomic<uint32_t> seq{0};  // futex word the idle threads sleep on
};
Pool g_pool;

// Duplicates held by every engine, and how many the descriptor limit allows.
std::atomic<int> g_dups{0};

// The engine's duplicates are made and closed only here: marked as the
// library's own (runtime/own_fds.h), so the program's closing sweeps leave
// them alone. make_dup's caller counts it in g_dups (fd_state reserves the
// count before the call); close_dup gives the count back.
long make_dup(int fd, int base) {
  long d = raw_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, base);
  if (d >= 0) own_fds::mark_dup(static_cast<int>(d));
  return d;
}
void close_dup(int d) {
  own_fds::unmark_dup(d);
  raw_syscall(SYS_close, d);
  g_dups.fetch_sub(1, std::memory_order_relaxed);
}
std::atomic<int> g_dup_budget{0};
// Set for good when the program's descriptors reach g_high_water or it met
// EMFILE (release_idle_remote): from then on a registration is dropped when
// its last waiter leaves, as before registrations were kept, so the cache
// does not take descriptors the program needs (a server holding a socket
// and a file per connection near its limit: integration_http_10k got 404s
// for opens that failed with EMFILE while 2,500 idle duplicates were kept).
std::atomic<bool> g_cache_off{false};
// Three quarters of the descriptor limit: a program whose descriptors reach
// it (forget_remote sees every number a hooked call makes or closes) turns
// the cache off before it meets EMFILE. INT_MAX: no limit known.
std::atomic<int> g_high_water{0x7fffffff};

void* pool_main(void*) {
  // The marker signal interrupts this thread's call (interrupt_helper).
  tl_helper = true;
  uint64_t urg = uint64_t{1} << (SIGURG - 1);
  raw_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, reinterpret_cast<long>(&urg), 0, 8);
  for (;;) {
    g_pool.lock.lock();
    EpollEngine::Pending* p = g_pool.head;
    if (p) {
      g_pool.head = p->rnext;
      if (!g_pool.head) g_pool.tail = nullptr;
      --g_pool.queued;
      p->state = EpollEngine::Pending::kPoolRunning;
      g_pool.lock.unlock();
      PoolAccess::dequeued(p);
      PoolAccess::run(p);
      continue;
    }
    ++g_pool.idle;
    uint32_t s = g_pool.seq.load(std::memory_order_relaxed);
    g_pool.lock.unlock();
    raw_syscall(SYS_futex, reinterpret_cast<long>(&g_pool.seq), FUTEX_WAIT_PRIVATE, s, 0);
    g_pool.lock.lock();
    --g_pool.idle;
    g_pool.lock.unlock();
  }
  return nullptr;
}

// Owner of p's engine. Queues p for a helper thread, starting one if none
// is idle and the bound allows.
void pool_submit(EpollEngine::Pending* p) {
  int pid = static_cast<int>(raw_syscall(SYS_getpid));
  g_pool.lock.lock();
  if (g_pool.pid != pid) {  // a forked child has none of the parent's threads
    g_pool.pid = pid;
    g_pool.threads = g_pool.idle = g_pool.queued = 0;
    g_pool.head = g_pool.tail = nullptr;
  }
  p->rnext = nullptr;
  if (g_pool.tail) g_pool.tail->rnext = p;
  else g_pool.head = p;
  g_pool.tail = p;
  ++g_pool.queued;
  // An idle count is stale until the woken thread takes the lock again:
  // start a thread whenever more jobs wait than threads are idle, or
  // blocking jobs submitted in a burst would all wait for the few threads
  // woken first (found by the pool-cancel test, 1 run in 3).
  bool wake = g_pool.idle > 0;
  bool spawn = g_pool.queued > g_pool.idle && static_cast<unsigned>(g_pool.threads) < g_pool.max;
  if (spawn) ++g_pool.threads;
  if (wake) g_pool.seq.fetch_add(1, std::memory_order_relaxed);  // under the lock: the sleeper compares it
  g_pool.lock.unlock();
  if (wake) raw_syscall(SYS_futex, reinterpret_cast<long>(&g_pool.seq), FUTEX_WAKE_PRIVATE, 1);
  if (!spawn) return;
  if (signals::start_runtime_thread(pool_main, nullptr, 128 * 1024) == 0) return;
  // No thread: with none at all, run what is queued here (blocking this
  // thread: degraded, never lost).
  g_pool.lock.lock();
  --g_pool.threads;
  bool none = g_pool.threads == 0;
  g_pool.lock.unlock();
  LOG_WARN("epoll engine: cannot start a helper thread%s", none ? "; running file I/O inline" : "");
  while (none) {
    g_pool.lock.lock();
    EpollEngine::Pending* q = g_pool.head;
    if (q) {
      g_pool.head = q->rnext;
      if (!g_pool.head) g_pool.tail = nullptr;
      --g_pool.queued;
      q->state = EpollEngine::Pending::kPoolRunning;
    }
    g_pool.lock.unlock();
    if (!q) break;
    PoolAccess::dequeued(q);
    PoolAccess::run(q);
  }
}

// Owner: takes p out of the queue if no thread has started it.
bool pool_remove(EpollEngine::Pending* p) {
  SpinGuard g(g_pool.lock);
  if (p->state != EpollEngine::Pending::kPoolQueued) return false;
  EpollEngine::Pending* prev = nullptr;
  for (EpollEngine::Pending* q = g_pool.head; q; prev = q, q = q->rnext) {
    if (q != p) continue;
    if (prev) prev->rnext = q->rnext;
    else g_pool.head = q->rnext;
    if (g_pool.tail == q) g_pool.tail = prev;
    --g_pool.queued;
    return true;
  }
  return false;
}

}  // namespace

// Helper thread: the blocking form of the call, on the registration's dup
// (pool_fd) when it came from readiness, else on the program's fd.
void PoolAccess::run(EpollEngine::Pending* p) {
  const IoOp& op = p->op;
  int fd = p->pool_fd;
  long r = 0;
  const int* flag = &p->interrupt;
  __atomic_store_n(&p->helper_tid, static_cast<int>(raw_syscall(SYS_gettid)), __ATOMIC_SEQ_CST);
  switch (op.kind) {
    case IoOp::kRead:
    case IoOp::kReadv:
    case IoOp::kWrite:
    case IoOp::kWritev: {
      bool vec = op.kind == IoOp::kReadv || op.kind == IoOp::kWritev;
      bool rd = op.kind == IoOp::kRead || op.kind == IoOp::kReadv;
      iovec one{op.addr, static_cast<size_t>(op.len)};
      const iovec* base = vec ? static_cast<const iovec*>(op.addr) : &one;
      int n = vec ? static_cast<int>(op.len) : 1;
      iovec rest[kMaxIov];
      // A blocking write moves everything (or fails); a read returns what
      // the one call gives, as the kernel's.
      for (;;) {
        int k = advance_iov(base, n, p->done, rest, kMaxIov);
        long pos = op.off == kCurrentPos ? -1 : static_cast<long>(op.off + p->done);
        r = cp_call(p, flag, rd ? SYS_preadv2 : SYS_pwritev2, fd, reinterpret_cast<long>(rest), k, pos, 0, 0);
        if (r > 0) p->done += static_cast<uint64_t>(r);
        if (rd || r <= 0 || p->done >= p->total) break;
      }
      if (r >= 0 || p->done) r = static_cast<long>(p->done);
      break;
    }
    case IoOp::kRecv:
    case IoOp::kSend:
      r = cp_call(p, flag, op.kind == IoOp::kRecv ? SYS_recvfrom : SYS_sendto, fd,
                  reinterpret_cast<long>(static_cast<char*>(op.addr) + p->done),
                  static_cast<long>(op.len - p->done), op.flags, 0, 0);
      if (r >= 0) r += static_cast<long>(p->done);
      else if (p->done) r = static_cast<long>(p->done);
      break;
    case IoOp::kRecvmsg:
      r = cp_call(p, flag, SYS_recvmsg, fd, reinterpret_cast<long>(op.addr), op.flags);
      break;
    case IoOp::kSendmsg:
      r = cp_call(p, flag, SYS_sendmsg, fd, reinterpret_cast<long>(op.addr), op.flags);
      break;
    case IoOp::kAccept:
      r = cp_call(p, flag, SYS_accept4, fd, reinterpret_cast<long>(op.addr), static_cast<long>(op.off), op.flags);
      break;
    case IoOp::kConnect:
      r = cp_call(p, flag, SYS_connect, fd, reinterpret_cast<long>(op.addr), static_cast<long>(op.len));
      break;
    case IoOp::kOpenat:
      r = cp_call(p, flag, SYS_openat, op.fd, reinterpret_cast<long>(op.addr), op.flags, static_cast<long>(op.len));
      break;
    case IoOp::kFsync:
      r = raw_syscall((op.flags & kFsyncDatasync) ? SYS_fdatasync : SYS_fsync, op.fd);
      break;
    case IoOp::kClose:
      r = raw_syscall(SYS_close, op.fd);
      break;
    case IoOp::kSplice: {
      loff_t in = op.off_in, out = static_cast<loff_t>(op.off);
      r = cp_call(p, flag, SYS_splice, fd, op.off_in == -1 ? 0 : reinterpret_cast<long>(&in), op.fd,
                  op.off == kCurrentPos ? 0 : reinterpret_cast<long>(&out), static_cast<long>(op.len), op.flags);
      break;
    }
    case IoOp::kPollAdd:
      r = -EINVAL;  // never queued
      break;
  }
  __atomic_store_n(&p->helper_tid, 0, __ATOMIC_SEQ_CST);
  p->res = static_cast<int>(r);
  push_done(p);
}

// ---- fork ---------------------------------------------------------------------------------
// Every engine, for the forked child: the runtime does not survive fork (the
// child passes every call through), but the child inherits every engine's
// duplicates, which would keep the parent's sockets open (no FIN when the
// parent closes one) for as long as the child lives. The child closes them
// at once (pthread_atfork; exec would close them too: CLOEXEC).

namespace {
constexpr int kMaxEngines = 1024;
SpinLock g_engines_lock;
EpollEngine* g_engines[kMaxEngines];
int g_nengines = 0;
std::atomic<bool> g_atfork{false};
}  // namespace

void EpollEngine::after_fork_child() {
  // One thread, its locks as the fork left them: no lock taken, nothing
  // freed (the records stay as they are; nothing uses them again).
  for (int k = 0; k < g_nengines && k < kMaxEngines; ++k) {
    EpollEngine* e = g_engines[k];
    if (!e) continue;
    for (int c = 0; c < e->nfs_chunks_; ++c) {
      for (int i = 0; i < kFsChunk; ++i) {
        FdState& fs = e->fs_chunks_[c][i];
        int rescue = fs.rescue.exchange(-1, std::memory_order_relaxed);
        if (fs.used && rescue >= 0) close_dup(rescue);
        if (fs.used && fs.own_dup && fs.dup >= 0 && (fs.word.load(std::memory_order_relaxed) & kStMask) != kStClosing) {
          close_dup(fs.dup);
          fs.own_dup = false;
          fs.dup = -1;
        }
      }
    }
  }
  g_nengines = 0;
  g_dups.store(0, std::memory_order_relaxed);
}

namespace {
void epoll_after_fork_child() { PoolAccess::after_fork_child(); }
}  // namespace

static void register_engine(EpollEngine* e) {
  if (!g_atfork.exchange(true, std::memory_order_acq_rel)) pthread_atfork(nullptr, nullptr, epoll_after_fork_child);
  SpinGuard g(g_engines_lock);
  for (int k = 0; k < g_nengines; ++k) {
    if (!g_engines[k]) {
      g_engines[k] = e;
      return;
    }
  }
  if (g_nengines < kMaxEngines) g_engines[g_nengines++] = e;
}

static void unregister_engine(EpollEngine* e) {
  SpinGuard g(g_engines_lock);
  for (int k = 0; k < g_nengines; ++k) {
    if (g_engines[k] == e) g_engines[k] = nullptr;
  }
}

// ---- life cycle ---------------------------------------------------------------------------

EpollEngine::~EpollEngine() { shutdown(); }

bool EpollEngine::init(unsigned, int* why, unsigned pool_threads) {
  // Both moved out of the program's numbers (runtime/own_fds.h) before the
  // eventfd's entry is made: epoll keys it by number.
  long ep = raw_syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
  if (ep >= 0) ep = own_fds::adopt(static_cast<int>(ep));
  if (ep < 0) {
    *why = ep == -1 ? EBADF : static_cast<int>(-ep);
    return false;
  }
  long ev = raw_syscall(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (ev >= 0) ev = own_fds::adopt(static_cast<int>(ev));
  if (ev < 0) {
    own_fds::release(static_cast<int>(ep));
    raw_syscall(SYS_close, ep);
    *why = ev == -1 ? EBADF : static_cast<int>(-ev);
    return false;
  }
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.u64 = kTagEvent;
  raw_syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, ev, reinterpret_cast<long>(&e));
  heaps_ = alloc_objects<Heap>(3);
  if (!heaps_) {
    own_fds::release(static_cast<int>(ep));
    own_fds::release(static_cast<int>(ev));
    raw_syscall(SYS_close, ep);
    raw_syscall(SYS_close, ev);
    *why = ENOMEM;
    return false;
  }
  heaps_[1].clock = CLOCK_REALTIME;
  heaps_[2].clock = CLOCK_BOOTTIME;
  epfd_ = static_cast<int>(ep);
  event_fd_ = static_cast<int>(ev);
  pid_ = static_cast<int>(raw_syscall(SYS_getpid));
  // Duplicates count against the program's RLIMIT_NOFILE: at most an
  // eighth of it is used for them, process-wide (one per waited-on file),
  // numbered from the top eighth up, out of the way of the numbers the
  // program's own open/socket calls get (lowest free first). Past the
  // budget, fds are registered by number. With a duplicate per waiting
  // socket and no budget, 10,000 held connections under a 20,000 limit ran
  // out of descriptors (the echo server's accept got EMFILE and paused).
  rlimit rl{};
  if (raw_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, reinterpret_cast<long>(&rl)) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur >= 64) {
    // At most 32,768: with the base capped below, the duplicates then stay
    // inside own_fds' bitmap of 65,536 numbers (protected from sweeps).
    int budget = static_cast<int>(std::min<rlim_t>(rl.rlim_cur / 8, 32768));
    // Never above 32,768: the kernel sizes a process's fd table by its
    // highest descriptor, and one duplicate at 917,504 (Docker's default
    // limit is 1,048,576) would cost the process 8 MiB of it.
    dup_base_ = std::min(static_cast<int>(rl.rlim_cur) - budget, kMaxDupBase);
    g_dup_budget.store(budget, std::memory_order_relaxed);
    g_high_water.store(static_cast<int>(rl.rlim_cur) - 2 * budget, std::memory_order_relaxed);
    own_fds::set_dup_base(std::min(dup_base_, static_cast<int>(rl.rlim_cur) - 2 * budget));
  }
  unsigned want = pool_threads ? pool_threads : kDefaultPool;
  {
    SpinGuard g(g_pool.lock);
    if (want > g_pool.max) g_pool.max = want;
  }
  inflight_.store(1, std::memory_order_relaxed);  // the wake-up eventfd, as Engine counts it
  register_engine(this);
  return true;
}

void EpollEngine::shutdown() {
  if (epfd_ < 0) return;
  bool helpers_hold_records = false;
  for (Pending* p = all_; p; p = p->anext) {
    if (p->state == Pending::kPoolQueued || p->state == Pending::kPoolRunning) helpers_hold_records = true;
    if (FdState* fs = p->fs) {
      unlink_waiter(p);
      if (!fs->head && !fs->busy) release(fs);
    }
  }
  unregister_engine(this);
  drain_dead();
  for (int ci = 0; ci < kSlotChunks; ++ci) {
    std::atomic<FdState*>* chunk = slots_[ci].load(std::memory_order_relaxed);
    if (!chunk) continue;
    for (int i = 0; i < kSlots; ++i) {
      FdState* fs = chunk[i].load(std::memory_order_relaxed);
      if (fs && (fs->word.load(std::memory_order_acquire) & kStMask) != kStClosing) release(fs);
    }
    free(chunk);
    slots_[ci].store(nullptr, std::memory_order_relaxed);
  }
  slot_chunks_hi_.store(0, std::memory_order_relaxed);
  for (int i = 0; i < 3; ++i) {
    if (heaps_[i].tfd >= 0) {
      own_fds::release(heaps_[i].tfd);
      raw_syscall(SYS_close, heaps_[i].tfd);
    }
    free(heaps_[i].v);
  }
  free(heaps_);
  heaps_ = nullptr;
  own_fds::release(epfd_);
  own_fds::release(event_fd_);
  raw_syscall(SYS_close, epfd_);
  raw_syscall(SYS_close, event_fd_);
  epfd_ = event_fd_ = -1;
  // If the owner broke the "nothing in flight" rule and a helper still
  // holds a record, the records are kept: freeing them would corrupt its
  // memory.
  if (!helpers_hold_records) {
    for (int i = 0; i < nchunks_; ++i) free(chunks_[i]);
    free(chunks_);
    for (int i = 0; i < nfs_chunks_; ++i) free(fs_chunks_[i]);
    free(fs_chunks_);
    fs_chunks_ = nullptr;
    nfs_chunks_ = 0;
    fs_free_ = lru_head_ = lru_tail_ = nullptr;
    cached_idle_ = 0;
    chunks_ = nullptr;
    nchunks_ = 0;
    free_ = all_ = ready_head_ = ready_tail_ = nullptr;
  }
}

EpollEngine::Pending* EpollEngine::alloc_pending() {
  if (!free_) {
    Pending* chunk = alloc_objects<Pending>(kChunk);
    auto* list = static_cast<Pending**>(realloc(chunks_, sizeof(Pending*) * static_cast<size_t>(nchunks_ + 1)));
    if (list) chunks_ = list;
    if (!chunk || !list) {
      LOG_ERROR("epoll engine: out of memory for an operation record");
      abort();
    }
    chunks_[nchunks_++] = chunk;
    for (int i = 0; i < kChunk; ++i) {
      chunk[i].rnext = free_;
      free_ = &chunk[i];
    }
  }
  Pending* p = free_;
  free_ = p->rnext;
  *p = Pending{};
  p->engine = this;
  p->state = Pending::kStarting;
  p->anext = all_;
  if (all_) all_->aprev = p;
  all_ = p;
  return p;
}

void EpollEngine::free_pending(Pending* p) {
  if (p->aprev) p->aprev->anext = p->anext;
  else all_ = p->anext;
  if (p->anext) p->anext->aprev = p->aprev;
  if (!p->background) inflight_.store(inflight_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  if (p->urgent) --urgent_inflight_;
  p->state = Pending::kFree;
  p->rnext = free_;
  free_ = p;
}

enum class EpollEngine::Step : uint8_t {
  kDone,       // p->res holds the result
  kWait,       // wait for p->want, then try again
  kPool,       // a regular file: the rest on a helper thread
  kReadyPool,  // no non-blocking form for this file (RWF_NOWAIT refused): wait for p->want, then a helper thread
};

// ---- submission ---------------------------------------------------------------------------

void EpollEngine::submit_op(const IoOp& op, Completion* c, int64_t timeout_ns, __kernel_timespec*) {
  Pending* p = alloc_pending();
  p->op = op;
  p->c = c;
  c->urgent = op.urgent;
  p->urgent = op.urgent;
  if (p->urgent) ++urgent_inflight_;
  inflight_.store(inflight_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (timeout_ns > 0) {
    int64_t now = now_ns(CLOCK_MONOTONIC);
    p->deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
  }
  start(p);
}

void EpollEngine::arm_background_poll(int fd, Completion* c) {
  Pending* p = alloc_pending();
  p->op.kind = IoOp::kPollAdd;
  p->op.fd = fd;
  p->op.len = POLLIN;
  p->c = c;
  p->background = true;
  start(p);
}

void EpollEngine::start(Pending* p) {
  const IoOp& op = p->op;
  switch (op.kind) {
    case IoOp::kRead:
    case IoOp::kWrite:
    case IoOp::kRecv:
    case IoOp::kSend:
      p->total = op.len;
      [[fallthrough]];
    case IoOp::kRecvmsg:
    case IoOp::kSendmsg:
    case IoOp::kReadv:
    case IoOp::kWritev: {
      if (op.kind == IoOp::kReadv || op.kind == IoOp::kWritev) {
        if (op.len > static_cast<uint64_t>(kMaxIov)) return complete(p, -EINVAL);
        p->total = iov_total(static_cast<const iovec*>(op.addr), op.len);
      } else if (op.kind == IoOp::kSendmsg) {
        auto* m = static_cast<const msghdr*>(op.addr);
        if (m->msg_iovlen > static_cast<size_t>(kMaxIov)) return complete(p, -EMSGSIZE);
        p->total = iov_total(m->msg_iov, m->msg_iovlen);
      }
      Step s = attempt(p, op.fd);
      return finish_step(p, s, op.fd);
    }
    case IoOp::kAccept:
      return wait_or_pool(p, op.fd, EPOLLIN, kModePool);
    case IoOp::kConnect:
      return connect_start(p);
    case IoOp::kPollAdd:
      p->multishot = (op.flags & IoOp::kPollMultishot) != 0;
      return wait_or_pool(p, op.fd, static_cast<uint32_t>(op.len), kModePoll);
    case IoOp::kSplice:
      return wait_or_pool(p, op.fd_in, EPOLLIN, kModePool);
    case IoOp::kOpenat:
      if (!op.blocking_async) {
        long r = open_cached(op);
        if (r != -EAGAIN) return complete(p, static_cast<int>(r));
      }
      return to_pool(p, op.fd);
    case IoOp::kFsync:
    case IoOp::kClose:
      return to_pool(p, op.fd);
  }
}

namespace {
std::atomic<bool> g_no_openat2{false};
}

// Owner. The open io_uring tries inline before its worker pool: a path
// lookup that the dentry cache answers (openat2 RESOLVE_CACHED, Linux 5.12)
// and O_NONBLOCK added, so a FIFO or a device cannot wait here, then
// cleared again unless the program asked for it (the file is new: no one
// else sees its flags). O_CREAT, O_TRUNC and O_TMPFILE may write to the
// disk: a helper thread, as io_uring punts them. -EAGAIN: use a helper.
// The runtime's open protocol (runtime/api.cpp, open_in_engine) then reopens
// a FIFO with blocking_async, as on io_uring. Without this every open would
// cost a thread hop, and fibers opening files would finish in the helpers'
// order instead of their own (fault_seed's reproducibility).
long EpollEngine::open_cached(const IoOp& op) {
  if (op.flags & (O_CREAT | O_TRUNC | __O_TMPFILE)) return -EAGAIN;
  if (g_no_openat2.load(std::memory_order_relaxed)) return -EAGAIN;
  open_how how{};
  how.flags = (op.flags & O_PATH) ? op.flags : op.flags | O_NONBLOCK;  // O_PATH takes no O_NONBLOCK
  how.resolve = RESOLVE_CACHED;
  long r = raw_syscall(SYS_openat2, op.fd, reinterpret_cast<long>(op.addr), reinterpret_cast<long>(&how), sizeof how);
  if (r == -ENOSYS || r == -EPERM || (r == -EINVAL && !(op.flags & ~(O_ACCMODE | O_CLOEXEC | O_NOFOLLOW | O_DIRECTORY)))) {
    // No openat2 (before 5.6, or a filter refuses it), or no RESOLVE_CACHED
    // (before 5.12: EINVAL for flags this simple): every open on a helper.
    g_no_openat2.store(true, std::memory_order_relaxed);
    return -EAGAIN;
  }
  if (r == -EINVAL) return -EAGAIN;  // let the real call give the program its own error
  if (r >= 0 && !(op.flags & (O_NONBLOCK | O_PATH))) {
    // F_SETFL sets exactly O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME and
    // O_NONBLOCK. O_APPEND, O_DIRECT and O_NOATIME as the program asked
    // (open honours them as F_SETFL does), no O_ASYNC (open ignores it), no
    // O_NONBLOCK: the flags its own open would have left, without an
    // F_GETFL first.
    raw_syscall(SYS_fcntl, r, F_SETFL, op.flags & (O_APPEND | O_DIRECT | O_NOATIME));
  }
  return r;
}


// Owner. One non-blocking attempt of a data operation on `fd` (the program's
// fd at submission, the registration's dup on retries), looping while it
// makes progress a blocking call would continue (writes, MSG_WAITALL).
EpollEngine::Step EpollEngine::attempt(Pending* p, int fd) {
  const IoOp& op = p->op;
  bool caller_nowait = (op.kind == IoOp::kRecv || op.kind == IoOp::kSend || op.kind == IoOp::kRecvmsg ||
                        op.kind == IoOp::kSendmsg) &&
                       (op.flags & MSG_DONTWAIT);
  bool input = op.kind == IoOp::kRecv || op.kind == IoOp::kRecvmsg || op.kind == IoOp::kRead || op.kind == IoOp::kReadv;
  long r = 0;
  p->unsure = false;
  for (int round = 0; round < kProgressRounds; ++round) {
    switch (op.kind) {
      case IoOp::kRecv:
        r = raw_syscall(SYS_recvfrom, fd, reinterpret_cast<long>(static_cast<char*>(op.addr) + p->done),
                        static_cast<long>(op.len - p->done), op.flags | MSG_DONTWAIT, 0, 0);
        if (r > 0) {
          p->done += static_cast<uint64_t>(r);
          if ((op.flags & MSG_WAITALL) && !caller_nowait && p->done < p->total) continue;
        }
        if (r >= 0) {
          p->res = static_cast<int>(p->done);
          return Step::kDone;
        }
        break;
      case IoOp::kRecvmsg:
        r = raw_syscall(SYS_recvmsg, fd, reinterpret_cast<long>(op.addr), op.flags | MSG_DONTWAIT);
        if (r >= 0) {
          p->res = static_cast<int>(r);
          return Step::kDone;
        }
        break;
      case IoOp::kSend:
        // After some bytes went out, an EPIPE ends the call with the count
        // and no SIGPIPE, as in the kernel's one blocking call.
        r = raw_syscall(SYS_sendto, fd, reinterpret_cast<long>(static_cast<char*>(op.addr) + p->done),
                        static_cast<long>(op.len - p->done), op.flags | MSG_DONTWAIT | (p->done ? MSG_NOSIGNAL : 0), 0, 0);
        if (r >= 0) {
          p->done += static_cast<uint64_t>(r);
          if (r > 0 && !caller_nowait && p->done < p->total) continue;
          p->res = static_cast<int>(p->done);
          return Step::kDone;
        }
        break;
      case IoOp::kSendmsg: {
        auto* m = static_cast<const msghdr*>(op.addr);
        if (p->done == 0) {
          r = raw_syscall(SYS_sendmsg, fd, reinterpret_cast<long>(m), op.flags | MSG_DONTWAIT);
        } else {
          // The rest of a stream: no address, no ancillary data (they went
          // with the first bytes, as in the kernel's blocking send).
          iovec rest[64];
          msghdr h{};
          h.msg_iov = rest;
          h.msg_iovlen = static_cast<size_t>(advance_iov(m->msg_iov, static_cast<int>(m->msg_iovlen), p->done, rest, 64));
          r = raw_syscall(SYS_sendmsg, fd, reinterpret_cast<long>(&h), op.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        if (r >= 0) {
          p->done += static_cast<uint64_t>(r);
          if (r > 0 && !caller_nowait && p->done < p->total) continue;
          p->res = static_cast<int>(p->done);
          return Step::kDone;
        }
        break;
      }
      case IoOp::kRead:
      case IoOp::kReadv:
      case IoOp::kWrite:
      case IoOp::kWritev: {
        bool vec = op.kind == IoOp::kReadv || op.kind == IoOp::kWritev;
        iovec one{static_cast<char*>(op.addr) + p->done, static_cast<size_t>(op.len - (vec ? 0 : p->done))};
        const iovec* v = &one;
        int n = 1;
        iovec rest[64];
        if (vec) {
          v = static_cast<const iovec*>(op.addr);
          n = static_cast<int>(op.len);
          if (p->done) {
            n = advance_iov(v, n, p->done, rest, 64);
            v = rest;
          }
        }
        long pos = op.off == kCurrentPos ? -1 : static_cast<long>(op.off + p->done);
        if (!input && p->done && !p->not_socket) {
          // The rest of a write on a socket: sendmsg, so that an EPIPE now
          // ends it with the count and no SIGPIPE, as the kernel's one
          // blocking write does (a pipe's write raises it even then: the
          // pwritev2 below).
          msghdr h{};
          h.msg_iov = const_cast<iovec*>(v);
          h.msg_iovlen = static_cast<size_t>(n);
          r = raw_syscall(SYS_sendmsg, fd, reinterpret_cast<long>(&h), MSG_DONTWAIT | MSG_NOSIGNAL);
          if (r == -ENOTSOCK) {
            p->not_socket = true;
          } else {
            if (r >= 0) {
              p->done += static_cast<uint64_t>(r);
              if (r > 0 && p->done < p->total) continue;
              p->res = static_cast<int>(p->done);
              return Step::kDone;
            }
            break;
          }
        }
        // RWF_NOWAIT: sockets, pipes (Linux 5.8+), eventfd (6.x) and regular
        // files' cached pages answer without sleeping; ttys, timerfd,
        // signalfd and older pipes refuse with EOPNOTSUPP.
        r = raw_syscall(input ? SYS_preadv2 : SYS_pwritev2, fd, reinterpret_cast<long>(v), n, pos, 0, RWF_NOWAIT);
        if (r >= 0) {
          p->done += static_cast<uint64_t>(r);
          if (r > 0 && p->done < p->total) {
            if (!input) continue;
            // A short read is final for a pipe or socket; a regular file's
            // blocking read would have read on from the disk.
            if (is_regular(fd)) return Step::kPool;
          }
          p->res = static_cast<int>(p->done);
          return Step::kDone;
        }
        if (r == -EOPNOTSUPP) {
          p->want = input ? EPOLLIN : EPOLLOUT;
          return Step::kReadyPool;
        }
        break;
      }
      default:
        p->res = -EINVAL;
        return Step::kDone;
    }
    // r < 0
    if (r == -EAGAIN && !caller_nowait) {
      p->want = input ? EPOLLIN : EPOLLOUT;
      return Step::kWait;
    }
    p->res = p->done ? static_cast<int>(p->done) : static_cast<int>(r);
    return Step::kDone;
  }
  // Still moving after the bound: let the loop run other work, come back
  // when the fd says it is writable (or readable) again. No EAGAIN was
  // seen, so an edge-triggered registration may never report again: the
  // level is checked when it waits (`unsure`).
  p->want = input ? EPOLLIN : EPOLLOUT;
  p->unsure = true;
  return Step::kWait;
}

void EpollEngine::finish_step(Pending* p, Step s, int fd) {
  switch (s) {
    case Step::kDone:
      return complete(p, p->res);
    case Step::kWait:
      return wait_or_pool(p, fd, p->want, kModeRetry);
    case Step::kReadyPool:
      return wait_or_pool(p, fd, p->want, kModePool);
    case Step::kPool:
      return to_pool(p, fd);
  }
}

// Owner. Waits for `events` on fd; a file epoll refuses (EPERM: regular
// files, directories) goes to the helper pool, or for a poll is always
// ready, as poll(2) reports it.
void EpollEngine::wait_or_pool(Pending* p, int fd, uint32_t events, uint8_t mode) {
  int r = wait_on(p, fd, events, mode);
  if (r == 0) return;
  if (r == -EPERM) {
    if (mode == kModePoll) {
      return complete(p, static_cast<int>(events & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)));
    }
    return to_pool(p, fd);
  }
  complete(p, p->done ? static_cast<int>(p->done) : r);
}

int EpollEngine::wait_on(Pending* p, int fd, uint32_t events, uint8_t mode) {
  int err = 0;
  FdState* fs = fd_state(fd, p->multishot, &err);
  if (!fs) return err;
  p->fs = fs;
  p->fnext = nullptr;
  p->fprev = fs->tail;
  if (fs->tail) fs->tail->fnext = p;
  else fs->head = p;
  fs->tail = p;
  p->state = Pending::kFdWait;
  ++fd_waiters_;
  if (p->urgent) ++urgent_waiting_;
  p->mode = mode;
  p->want = events;
  // An edge-triggered registration made before the attempt reports every
  // change after it, so a retry waiter that saw EAGAIN needs nothing. One
  // that did not try (accept, connect, poll, a tty) or stopped at the
  // progress bound needs the current level: EPOLL_CTL_MOD checks it.
  // So does a receive on a socket whose receive side was shut while nobody
  // waited (on_ready): its edge is gone, the level answers it.
  if (fs->persistent && fs->added && (mode != kModeRetry || p->unsure || (fs->rdhup && (events & EPOLLIN)))) {
    fs->recheck = true;
  }
  int r = update(fs);
  if (r < 0) {
    unlink_waiter(p);
    if (!fs->head && !fs->busy) release(fs);
    p->state = Pending::kStarting;
    return r;
  }
  if (p->deadline && p->heap < 0) heap_add(0, p);
  return 0;
}

// ---- registrations ------------------------------------------------------------------------

std::atomic<EpollEngine::FdState*>* EpollEngine::slot(int fd, bool create) {
  if (fd < 0 || (fd >> kSlotBits) >= kSlotChunks) return nullptr;
  int ci = fd >> kSlotBits;
  std::atomic<FdState*>* chunk = slots_[ci].load(std::memory_order_acquire);
  if (!chunk) {
    if (!create) return nullptr;
    chunk = alloc_objects<std::atomic<FdState*>>(kSlots);
    if (!chunk) return nullptr;
    for (int i = 0; i < kSlots; ++i) chunk[i].store(nullptr, std::memory_order_relaxed);
    // Release pairs with the acquire loads here and in forget_remote: a
    // reader that finds the chunk finds it zeroed.
    slots_[ci].store(chunk, std::memory_order_release);
    if (ci + 1 > slot_chunks_hi_.load(std::memory_order_relaxed)) slot_chunks_hi_.store(ci + 1, std::memory_order_release);
  }
  return &chunk[fd & (kSlots - 1)];
}

EpollEngine::FdState* EpollEngine::table_get(int fd) const {
  if (fd < 0 || (fd >> kSlotBits) >= kSlotChunks) return nullptr;
  std::atomic<FdState*>* chunk = slots_[fd >> kSlotBits].load(std::memory_order_acquire);
  // Acquire pairs with the owner's release store of a new registration:
  // its dup and word are visible.
  return chunk ? chunk[fd & (kSlots - 1)].load(std::memory_order_acquire) : nullptr;
}

// Owner: the registration an epoll tag names, or null if the entry is stale
// (the record was freed, or reused: its generation moved on).
EpollEngine::FdState* EpollEngine::tagged(uint64_t tag) const {
  uint32_t id = static_cast<uint32_t>(tag) - kTagFsBase;
  if (id / kFsChunk >= static_cast<uint32_t>(nfs_chunks_)) return nullptr;
  FdState* fs = &fs_chunks_[id / kFsChunk][id % kFsChunk];
  return fs->used && fs->gen == static_cast<uint32_t>(tag >> 32) ? fs : nullptr;
}

EpollEngine::FdState* EpollEngine::alloc_fdstate() {
  if (!fs_free_) {
    FdState* chunk = alloc_objects<FdState>(kFsChunk);
    auto* list = static_cast<FdState**>(realloc(fs_chunks_, sizeof(FdState*) * static_cast<size_t>(nfs_chunks_ + 1)));
    if (list) fs_chunks_ = list;
    if (!chunk || !list) {
      free(chunk);
      return nullptr;
    }
    for (int i = 0; i < kFsChunk; ++i) {
      chunk[i].id = static_cast<uint32_t>(nfs_chunks_ * kFsChunk + i);
      chunk[i].next_free = fs_free_;
      fs_free_ = &chunk[i];
    }
    fs_chunks_[nfs_chunks_++] = chunk;
  }
  FdState* fs = fs_free_;
  fs_free_ = fs->next_free;
  fs->engine = this;
  fs->fd = fs->dup = -1;
  fs->own_dup = fs->added = fs->live = fs->edge = fs->persistent = fs->recheck = fs->in_lru = fs->idle_by_number = fs->detached =
      fs->rdhup = false;
  fs->used = true;
  fs->rescue.store(-1, std::memory_order_relaxed);
  ++fs->gen;
  fs->armed = 0;
  fs->busy = 0;
  fs->head = fs->tail = nullptr;
  fs->next_free = fs->lru_prev = fs->lru_next = fs->dnext = nullptr;
  return fs;
}

void EpollEngine::free_fdstate(FdState* fs) {
  // A closer that read this record from the table before it was reused
  // fails its CAS: the word no longer holds its fd with a state it takes.
  fs->word.store(kStFree, std::memory_order_release);
  fs->used = false;
  fs->next_free = fs_free_;
  fs_free_ = fs;
}

// Owner: fs leaves the idle cache (used again, or dropped).
void EpollEngine::lru_unlink(FdState* fs) {
  if (fs->idle_by_number) {
    fs->idle_by_number = false;
    --idle_by_number_;
  }
  if (!fs->in_lru) return;
  if (fs->lru_prev) fs->lru_prev->lru_next = fs->lru_next;
  else lru_head_ = fs->lru_next;
  if (fs->lru_next) fs->lru_next->lru_prev = fs->lru_prev;
  else lru_tail_ = fs->lru_prev;
  fs->lru_prev = fs->lru_next = nullptr;
  fs->in_lru = false;
  --cached_idle_;
}

// Owner. The last user of a persistent registration left: keep it, armed,
// for the next wait on the same fd, unless the program closed the fd
// meanwhile (kStForgotten): then it goes now, and the file with it.
void EpollEngine::go_idle(FdState* fs) {
  uint64_t w = st_word(fs->fd, kStBusy);
  // The cache's descriptors go back near the limit; one on the program's
  // number holds none and stays.
  if (fs->own_dup && g_cache_off.load(std::memory_order_relaxed)) {
    release(fs);
    return;
  }
  // Release pairs with a closer's acquire CAS: it then sees the entry as
  // the owner left it (it uses only dup, own_dup and engine, set before
  // publication).
  if (fs->fd >= 0 && fs->word.compare_exchange_strong(w, st_word(fs->fd, kStIdle), std::memory_order_acq_rel)) {
    fs->recheck = false;
    if (!fs->own_dup) {  // nothing to evict: not in the LRU
      fs->idle_by_number = true;
      ++idle_by_number_;
      return;
    }
    fs->idle_since = now_ns(CLOCK_MONOTONIC_COARSE);
    fs->in_lru = true;
    fs->lru_next = nullptr;
    fs->lru_prev = lru_tail_;
    if (lru_tail_) lru_tail_->lru_next = fs;
    else lru_head_ = fs;
    lru_tail_ = fs;
    ++cached_idle_;
    return;
  }
  release(fs);
}

// Any thread, holding fs in kStClosing: takes its entry off the owner's
// epoll set and closes its duplicate (the file really closes if the
// program's fd is gone too). One made on the program's number has no
// duplicate: the caller runs before the program's close, while the number
// still names the file, so the DEL finds the entry.
void EpollEngine::drop_duplicate(FdState* fs) {
  raw_syscall(SYS_epoll_ctl, fs->engine->epfd_, EPOLL_CTL_DEL, fs->dup, 0);
  if (!fs->own_dup) return;
  close_dup(fs->dup);
}

// Any thread, after winning Idle -> Closing: the entry leaves the epoll set
// (before the close: another descriptor of the file would keep the entry,
// reporting for a record that is gone) and the duplicate is closed; the
// owner reclaims the record from its dead_ stack.
void EpollEngine::close_taken(FdState* fs) {
  EpollEngine* e = fs->engine;
  drop_duplicate(fs);
  FdState* head = e->dead_.load(std::memory_order_relaxed);
  do {
    fs->dnext = head;
    // Release pairs with drain_dead's acquire exchange.
  } while (!e->dead_.compare_exchange_weak(head, fs, std::memory_order_release, std::memory_order_relaxed));
}

// Owner: a record that left the epoll set and lost its duplicate.
void EpollEngine::reclaim(FdState* fs) {
  lru_unlink(fs);
  // A rescue no owner adopted (handed to a record that had a duplicate of
  // its own after all) is closed with the record.
  int r = fs->rescue.exchange(-1, std::memory_order_relaxed);
  if (r >= 0) {
    close_dup(r);
  }
  if (fs->fd >= 0) {
    std::atomic<FdState*>* s = slot(fs->fd, false);
    FdState* expect = fs;
    if (s) s->compare_exchange_strong(expect, nullptr, std::memory_order_relaxed);
  }
  free_fdstate(fs);
}

void EpollEngine::drain_dead() {
  if (!dead_.load(std::memory_order_relaxed)) return;
  FdState* list = dead_.exchange(nullptr, std::memory_order_acquire);  // pairs with close_taken's release
  while (list) {
    FdState* n = list->dnext;
    reclaim(list);
    list = n;
  }
}

// Owner: the duplicate budget is spent; frees the oldest idle cached
// registration of this engine if it has been unused for kEvictIdleNs.
// False if there is none.
bool EpollEngine::evict_idle() {
  int64_t now = -1;
  while (FdState* fs = lru_head_) {
    if (now < 0) now = now_ns(CLOCK_MONOTONIC_COARSE);
    if (now - fs->idle_since < kEvictIdleNs && (fs->word.load(std::memory_order_relaxed) & kStMask) == kStIdle) return false;
    uint64_t w = st_word(fs->fd, kStIdle);
    if (!fs->word.compare_exchange_strong(w, st_word(fs->fd, kStClosing), std::memory_order_acq_rel)) {
      lru_unlink(fs);  // a closer has it: reclaimed from dead_
      continue;
    }
    drop_duplicate(fs);
    reclaim(fs);
    return true;
  }
  return false;
}

// Any thread. True if it closed an idle registration's duplicate.
//
// A registration on the program's number that operations wait in (Busy)
// would lose its file with the program's close: the closer duplicates the
// number first (it still names the file) and hands the duplicate over with
// the Busy -> Forgotten CAS; the owner adopts it (adopt_rescue) before its
// next use of the record, so the waits stay on the file as with a
// duplicate of their own. The kernel's entry, keyed by the old number,
// lives on while the duplicate holds the file and goes on reporting to the
// record.
bool EpollEngine::forget_slot(int fd, FdState* fs, bool idle_only, bool closing) {
  uint64_t w = fs->word.load(std::memory_order_acquire);
  int rescue = -1;      // made by this call, not (or no longer) handed over
  bool placed = false;  // rescue is in fs->rescue
  bool closed = false;
  for (;;) {
    if ((w & ~kStMask) != st_word(fd, 0)) break;  // reused for another number meanwhile
    uint64_t st = w & kStMask;
    if (st == kStIdle) {
      if (idle_only && !fs->own_dup) break;  // holds no descriptor to give back
      // Acquire pairs with go_idle's release.
      if (fs->word.compare_exchange_strong(w, st_word(fd, kStClosing), std::memory_order_acq_rel)) {
        close_taken(fs);
        closed = true;
        break;
      }
      continue;
    }
    if (st != kStBusy || idle_only) break;
    // Only while fd still names the file (closing), and never with the
    // duplicates' range unknown (it would take the program's next number).
    if (closing && !placed && !fs->own_dup && fs->engine->dup_base_ > 0) {
      if (rescue < 0) {
        // In the duplicates' range, else in the quarter below it (the
        // program's own numbers come lowest first; the cache turns off
        // before they reach there).
        long d = make_dup(fd, fs->engine->dup_base_);
        if (d == -EMFILE) d = make_dup(fd, g_high_water.load(std::memory_order_relaxed));
        if (d >= 0) {
          rescue = static_cast<int>(d);
          g_dups.fetch_add(1, std::memory_order_relaxed);
        }
      }
      int none = -1;
      // Another closer of the same fd may have handed one already: then
      // that one serves, and this call's is closed below.
      if (rescue >= 0) placed = fs->rescue.compare_exchange_strong(none, rescue, std::memory_order_relaxed);
    }
    // Release: the owner that sees Forgotten sees the rescue.
    if (fs->word.compare_exchange_strong(w, st_word(fd, kStForgotten), std::memory_order_acq_rel)) {
      if (placed) rescue = -1;  // handed over
      break;
    }
    // w is the word now. Forgotten by another closer: a placed rescue is
    // handed over by that CAS. Otherwise (gone idle, reused) take it back.
    if ((w & ~kStMask) == st_word(fd, 0) && (w & kStMask) == kStForgotten) {
      if (placed) rescue = -1;
      break;
    }
    if (placed) {
      int mine = rescue;
      if (!fs->rescue.compare_exchange_strong(mine, -1, std::memory_order_relaxed)) rescue = -1;  // adopted meanwhile
      placed = false;
    }
  }
  if (rescue >= 0) {  // not needed after all
    close_dup(rescue);
  }
  return closed;
}

// Owner: a registration on the program's number that the program closed
// while operations waited takes the closer's duplicate (forget_slot) as its
// own. True if it did (fs->dup changed).
bool EpollEngine::adopt_rescue(FdState* fs) {
  if (fs->own_dup || (fs->word.load(std::memory_order_acquire) & kStMask) != kStForgotten) return false;
  int d = fs->rescue.exchange(-1, std::memory_order_relaxed);
  if (d < 0) return false;
  fs->dup = d;
  fs->own_dup = true;
  // The entry is keyed by the old number: a new one on the duplicate (same
  // tag) is what EPOLL_CTL_MOD and DEL can name from now on.
  fs->added = false;
  fs->live = false;
  return true;
}

// Owner: a registration on the program's number whose number is no longer
// its file's (closed or replaced while in use, and no duplicate came):
// nothing may be asked of the number any more (it may name a new file).
bool EpollEngine::number_gone(const FdState* fs) {
  return !fs->own_dup && (fs->detached || (fs->word.load(std::memory_order_acquire) & kStMask) == kStForgotten);
}

// Any thread: forget_slot on every registration of an fd in [first, last].
// Returns how many idle duplicates it closed.
int EpollEngine::forget_slots(unsigned first, unsigned last, bool idle_only) {
  int n = 0;
  int hi = slot_chunks_hi_.load(std::memory_order_acquire);
  for (int ci = static_cast<int>(first >> kSlotBits); ci < hi && static_cast<unsigned>(ci) <= (last >> kSlotBits); ++ci) {
    std::atomic<FdState*>* chunk = slots_[ci].load(std::memory_order_acquire);
    if (!chunk) continue;
    for (int i = 0; i < kSlots; ++i) {
      unsigned fd = static_cast<unsigned>(ci) << kSlotBits | static_cast<unsigned>(i);
      if (fd < first || fd > last) continue;
      FdState* fs = chunk[i].load(std::memory_order_acquire);
      if (fs && forget_slot(static_cast<int>(fd), fs, idle_only, !idle_only)) ++n;
    }
  }
  return n;
}

int EpollEngine::release_idle_remote() {
  g_cache_off.store(true, std::memory_order_relaxed);
  return forget_slots(0, ~0U, true);
}

void EpollEngine::forget_remote(int fd, bool closing) {
  if (fd >= g_high_water.load(std::memory_order_relaxed) && !g_cache_off.load(std::memory_order_relaxed)) {
    release_idle_remote();
  }
  if (FdState* fs = table_get(fd)) forget_slot(fd, fs, false, closing);
}

void EpollEngine::forget_range_remote(unsigned first, unsigned last) { forget_slots(first, last, false); }

int EpollEngine::duplicates_held() { return g_dups.load(std::memory_order_relaxed); }

// Owner. The registration to wait on fd in: the one the table holds for fd
// (waited in now, or cached idle), else a new one with its own duplicate.
// The table is kept true by forget_remote (the hooks call it when the
// program closes or replaces fd), not by comparing files: no kcmp.
EpollEngine::FdState* EpollEngine::fd_state(int fd, bool edge, int* err) {
  bool in_table = !edge && fd >= 0;
  if (in_table) {
    if (FdState* old = table_get(fd)) {
      uint64_t w = old->word.load(std::memory_order_acquire);
      if ((w & kStMask) == kStBusy) return old;
      if ((w & kStMask) == kStIdle &&
          old->word.compare_exchange_strong(w, st_word(fd, kStBusy), std::memory_order_acq_rel)) {
        lru_unlink(old);
        return old;
      }
      // Forgotten (its waiters keep it; dropped when they leave) or taken
      // by a closer (reclaimed from dead_): no longer fd's.
      if ((old->word.load(std::memory_order_acquire) & kStMask) == kStForgotten) {
        old->fd = -1;
        old->detached = true;
      }
      slot(fd, false)->store(nullptr, std::memory_order_relaxed);
    }
  }
  FdState* fs = alloc_fdstate();
  if (!fs) {
    *err = -ENOMEM;
    return nullptr;
  }
  fs->edge = edge;
  // Duplicates are budgeted (init): past the budget, idle cached
  // registrations give theirs back first (the oldest of this engine's).
  long d = -EMFILE;
  int budget = g_dup_budget.load(std::memory_order_relaxed);
  // With the cache off (the program is near its descriptor limit) a kept
  // registration goes on the number at once: a duplicate would be made and
  // closed again on every wait (4 system calls), and the descriptors are
  // the program's to use.
  bool on_number = in_table && g_cache_off.load(std::memory_order_relaxed);
  bool counted = false;
  if (!on_number) {
    counted = g_dups.fetch_add(1, std::memory_order_relaxed) < budget;
    if (!counted) {
      g_dups.fetch_sub(1, std::memory_order_relaxed);
      if (budget > 0 && evict_idle()) {
        counted = g_dups.fetch_add(1, std::memory_order_relaxed) < budget;
        if (!counted) g_dups.fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }
  if (counted) {
    d = make_dup(fd, dup_base_);
    if (d == -EMFILE && evict_idle()) d = make_dup(fd, dup_base_);
    if (d < 0) g_dups.fetch_sub(1, std::memory_order_relaxed);
  }
  if (d == -EBADF || (d < 0 && raw_syscall(SYS_fcntl, fd, F_GETFD) == -EBADF)) {
    free_fdstate(fs);
    *err = -EBADF;
    return nullptr;
  }
  if (d >= 0) {
    fs->dup = static_cast<int>(d);
    fs->own_dup = true;
  } else {
    // Over the budget, or no descriptor left: register the program's number
    // itself (kept all the same); a close of it while this waits hands the
    // wait a duplicate the closer makes (forget_slot).
    fs->dup = fd;
    number_regs_.store(number_regs_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  if (in_table) {
    if (std::atomic<FdState*>* s = slot(fd, true)) {
      fs->fd = fd;
      fs->persistent = true;
      // Release: a closer that reads this word (acquire) sees dup and own_dup.
      fs->word.store(st_word(fd, kStBusy), std::memory_order_release);
      s->store(fs, std::memory_order_release);  // pairs with table_get's acquire
    }
  }
  return fs;
}

// Owner: the events fs's waiters wait for, in *want; returns how many
// waiters may be armed for. One helper-thread job per registration at a
// time: a waiter for the pool is left out while one runs (a second acceptor
// handed the same pending connection would block its thread).
int EpollEngine::waiters_want(const FdState* fs, uint32_t* want) {
  int armable = 0;
  for (Pending* p = fs->head; p; p = p->fnext) {
    if (p->mode == kModePool && fs->busy) continue;
    *want |= p->want;
    ++armable;
  }
  return armable;
}

// Owner: EPOLL_CTL_ADD or _MOD of fs's entry for `events`. An ADD that
// finds the entry there modifies it; a MOD that finds none (its number was
// closed and given to a new file behind the hooks' back) adds the number's
// file afresh.
long EpollEngine::arm(FdState* fs, int op, uint32_t events) {
  epoll_event e{};
  e.events = events;
  e.data.u64 = fs_tag(fs);
  long r = raw_syscall(SYS_epoll_ctl, epfd_, op, fs->dup, reinterpret_cast<long>(&e));
  if (r == -EEXIST) r = raw_syscall(SYS_epoll_ctl, epfd_, EPOLL_CTL_MOD, fs->dup, reinterpret_cast<long>(&e));
  else if (r == -ENOENT && op == EPOLL_CTL_MOD) r = raw_syscall(SYS_epoll_ctl, epfd_, EPOLL_CTL_ADD, fs->dup, reinterpret_cast<long>(&e));
  return r;
}

// Owner. Arms what the waiters wait for; drops (or, persistent, caches)
// the registration when nobody waits and no helper thread uses its dup.
// `fs` may be freed on return.
int EpollEngine::update(FdState* fs) {
  adopt_rescue(fs);
  if (number_gone(fs)) {  // no epoll_ctl on a number that is not its file's
    if (!fs->head && !fs->busy) release(fs);
    return 0;
  }
  if (fs->persistent) return update_persistent(fs);
  if (!fs->head && !fs->busy) {
    release(fs);
    return 0;
  }
  uint32_t desired = 0;
  if (!waiters_want(fs, &desired) || (fs->live && fs->armed == desired)) return 0;
  long r = arm(fs, fs->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, desired | (fs->edge ? EPOLLET : EPOLLONESHOT));
  if (r < 0) return static_cast<int>(r);
  fs->added = true;
  fs->live = true;
  fs->armed = desired;
  return 0;
}

// Owner. A persistent registration is armed once for everything,
// edge-triggered: an edge reports every change after it, so a waiter whose
// attempt saw EAGAIN needs no system call. EPOLL_CTL_MOD (which checks the
// current level and reports it) only when a waiter needs the level
// (`recheck`) or asks for more bits than are armed (a poll for EPOLLPRI).
int EpollEngine::update_persistent(FdState* fs) {
  if (!fs->head && !fs->busy) {
    go_idle(fs);
    return 0;
  }
  uint32_t want = 0;
  int armable = waiters_want(fs, &want);
  uint32_t desired = fs->armed | kPersistEvents | want;
  int op;
  if (!fs->added) op = EPOLL_CTL_ADD;
  else if (armable && (fs->recheck || (desired & ~fs->armed))) op = EPOLL_CTL_MOD;
  else return 0;
  long r = arm(fs, op, desired | EPOLLET);
  if (r < 0) return static_cast<int>(r);
  fs->added = true;
  fs->live = true;
  fs->armed = desired;
  fs->recheck = false;
  return 0;
}

// Owner. Drops a registration: off the epoll set, its duplicate closed, out
// of the table.
void EpollEngine::release(FdState* fs) {
  adopt_rescue(fs);  // then closed below with the record
  // Registered by number, and the program closed or replaced that number
  // meanwhile: a DEL of it now would remove whatever entry the number's
  // new file has. The old file's entry is gone with the file, or stale
  // (its generation check drops what it reports).
  if (fs->added && !number_gone(fs)) raw_syscall(SYS_epoll_ctl, epfd_, EPOLL_CTL_DEL, fs->dup, 0);
  if (fs->own_dup) {
    close_dup(fs->dup);
  }
  reclaim(fs);
}

void EpollEngine::unlink_waiter(Pending* p) {
  FdState* fs = p->fs;
  if (!fs) return;
  if (p->fprev) p->fprev->fnext = p->fnext;
  else fs->head = p->fnext;
  if (p->fnext) p->fnext->fprev = p->fprev;
  else fs->tail = p->fprev;
  p->fnext = p->fprev = nullptr;
  p->fs = nullptr;
  --fd_waiters_;
  if (p->urgent) --urgent_waiting_;
}

// Owner, from poll_events. `fs` may be freed on return.
// kick: retry the operations that have a non-blocking form, whatever they
// wait for (kick_remote); the registration stays armed.
void EpollEngine::on_ready(FdState* fs, uint32_t revents, bool kick) {
  if (revents & EPOLLRDHUP) fs->rdhup = true;
  // A persistent registration reports edges while nobody waits (cached
  // idle, or taken by a closer since epoll_wait returned): nothing to do.
  if (fs->persistent && !fs->head) return;
  adopt_rescue(fs);
  // Its waiters wait on (as on a file the kernel dropped) until their
  // timeout or cancellation: no attempt on a number that is not theirs.
  if (number_gone(fs)) return;
  if (!fs->edge && !fs->persistent && !kick) fs->live = false;  // EPOLLONESHOT: disarmed until update re-arms it
  const uint32_t always = EPOLLERR | EPOLLHUP;
  bool dry_in = false, dry_out = false;
  bool tried_out = false;  // an output operation was attempted on this report
  for (Pending *p = fs->head, *next; p; p = next) {
    next = p->fnext;
    if (kick && p->mode != kModeRetry) continue;
    if (!kick && !(revents & (p->want | always))) continue;
    switch (p->mode) {
      case kModePoll: {
        uint32_t bits = revents & (p->want | always);
        if (p->multishot) {
          p->events |= bits;
          enqueue(p);
        } else {
          unlink_waiter(p);
          complete(p, static_cast<int>(bits));
        }
        break;
      }
      case kModeConnect: {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        long r = raw_syscall(SYS_getsockopt, fs->dup, SOL_SOCKET, SO_ERROR, reinterpret_cast<long>(&soerr),
                             reinterpret_cast<long>(&len));
        unlink_waiter(p);
        complete(p, r < 0 ? static_cast<int>(r) : -soerr);
        break;
      }
      case kModePool:
        if (fs->busy) break;
        unlink_waiter(p);
        p->hold = fs;
        ++fs->busy;
        to_pool(p, fs->dup);
        break;
      case kModeRetry: {
        bool in = (p->want & EPOLLIN) != 0;
        bool shut = in && (revents & EPOLLRDHUP);
        if ((in ? dry_in : dry_out) && !(revents & always) && !kick && !shut) break;
        bool first_out = !in && !tried_out;
        if (!in) tried_out = true;
        Step s = attempt(p, fs->dup);
        // The program's close came between the state check and the
        // attempt: the same operation on the closer's duplicate.
        if (s == Step::kDone && p->res == -EBADF && adopt_rescue(fs)) s = attempt(p, fs->dup);
        // Writable by epoll's account, yet the send moved nothing, with no
        // other operation before it on this report: the socket's poll does
        // not describe what the send waits for. A unix datagram sender
        // polls writable by its own buffer while its receiver's queue is
        // full (unix_dgram_poll), so waiting for EPOLLOUT again would spin.
        // The second time, the kernel's blocking call waits on a helper
        // thread instead (unix_wait_for_peer), as io_uring hands such an
        // operation to its worker threads. Only for a send that has moved
        // nothing at all (a datagram is sent whole or not): a stream send
        // that wrote part and then met EAGAIN is an ordinary wait.
        if (s == Step::kWait && p->done == 0 && first_out && !kick && !p->unsure &&
            (revents & EPOLLOUT) && ++p->false_ready >= 2) {
          s = Step::kPool;
        }
        // Nothing to receive on a shut receive side: a datagram socket's
        // non-blocking receive says EAGAIN, its blocking one returns 0
        // (__skb_wait_for_more_packets), as the call does here.
        if (s == Step::kWait && shut && !p->unsure) {
          p->res = static_cast<int>(p->done);
          s = Step::kDone;
        }
        if (s == Step::kWait) {
          // EAGAIN: the direction is dry; the next edge wakes the rest.
          // Stopped at the progress bound instead: no edge may come, the
          // level is checked again (persistent registrations).
          if (p->unsure) fs->recheck = true;
          else (in ? dry_in : dry_out) = true;
          break;
        }
        unlink_waiter(p);
        if (s == Step::kDone) {
          complete(p, p->res);
        } else {
          p->hold = fs;
          ++fs->busy;
          to_pool(p, fs->dup);
        }
        break;
      }
    }
  }
  update(fs);
}

void EpollEngine::to_pool(Pending* p, int fd) {
  p->pool_fd = fd;
  p->state = Pending::kPoolQueued;
  if (p->deadline && p->heap < 0) heap_add(0, p);
  pool_queued_.fetch_add(1, std::memory_order_relaxed);
  pool_submit(p);
}

// Owner. A blocking socket's connect, made non-blocking without a per-call
// flag: O_NONBLOCK is set on the open file description for the connect()
// call alone (three system calls) and cleared again, then EPOLLOUT and
// SO_ERROR give the result. The one place the engine touches the program's
// flags; docs/DESIGN.md (section 9, the epoll engine) weighs it against a helper thread per connect.
void EpollEngine::connect_start(Pending* p) {
  const IoOp& op = p->op;
  long fl = raw_syscall(SYS_fcntl, op.fd, F_GETFL);
  if (fl < 0) return complete(p, static_cast<int>(fl));
  if (fl & O_NONBLOCK) {
    return complete(p, static_cast<int>(raw_syscall(SYS_connect, op.fd, reinterpret_cast<long>(op.addr),
                                                    static_cast<long>(op.len))));
  }
  raw_syscall(SYS_fcntl, op.fd, F_SETFL, fl | O_NONBLOCK);
  long r = raw_syscall(SYS_connect, op.fd, reinterpret_cast<long>(op.addr), static_cast<long>(op.len));
  long now = raw_syscall(SYS_fcntl, op.fd, F_GETFL);
  if (now >= 0) raw_syscall(SYS_fcntl, op.fd, F_SETFL, now & ~O_NONBLOCK);
  if (r == -EINPROGRESS) return wait_or_pool(p, op.fd, EPOLLOUT, kModeConnect);
  // AF_UNIX with the listener's backlog full: no readiness says when it
  // frees, so the blocking call runs on a helper thread.
  if (r == -EAGAIN) return to_pool(p, op.fd);
  complete(p, static_cast<int>(r));
}

// ---- completion ---------------------------------------------------------------------------

void EpollEngine::enqueue(Pending* p) {
  if (p->queued) return;
  p->queued = true;
  p->rnext = nullptr;
  if (ready_tail_) ready_tail_->rnext = p;
  else ready_head_ = p;
  ready_tail_ = p;
  ready_count_.store(ready_count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (p->urgent) ++urgent_ready_;
}

void EpollEngine::complete(Pending* p, int res) {
  if (p->heap >= 0) heap_remove(p);
  p->res = res;
  p->state = Pending::kReady;
  enqueue(p);
}

// Owner: cancel or linked timeout.
void EpollEngine::stop(Pending* p) {
  int res = p->done ? static_cast<int>(p->done) : -ECANCELED;
  switch (p->state) {
    case Pending::kFdWait: {
      FdState* fs = p->fs;
      unlink_waiter(p);
      update(fs);
      complete(p, res);
      break;
    }
    case Pending::kPoolQueued:
      if (pool_remove(p)) {
        pool_queued_.fetch_sub(1, std::memory_order_relaxed);
        if (FdState* fs = p->hold) {
          p->hold = nullptr;
          --fs->busy;
          fs->recheck = true;  // acceptors left waiting need the level
          update(fs);
        }
        complete(p, res);
      }
      break;
    case Pending::kPoolRunning:
      interrupt_helper(p);  // its result comes: -ECANCELED, or its own if the call had finished
      break;
    default:  // finished, or a timer: its own result comes
      break;
  }
}

// Owner. Stops the call a helper runs for p (see unblock_cp_syscall): the
// flag first, then the tid, so either the helper sees the flag before its
// call or the signal finds it.
void EpollEngine::interrupt_helper(Pending* p) {
  __atomic_store_n(&p->interrupt, 1, __ATOMIC_SEQ_CST);
  int tid = __atomic_load_n(&p->helper_tid, __ATOMIC_SEQ_CST);
  if (tid > 0) signals::send_marker_to(tid);
}

void EpollEngine::cancel(Completion* c) {
  for (Pending* p = all_; p; p = p->anext) {
    if (p->c == c && !p->timer) {
      stop(p);
      return;
    }
  }
}

void EpollEngine::drain_pool() {
  Pending* list = done_.exchange(nullptr, std::memory_order_acquire);  // pairs with push_done's release
  Pending* rev = nullptr;
  while (list) {
    Pending* n = list->rnext;
    list->rnext = rev;
    rev = list;
    list = n;
  }
  while (rev) {
    Pending* p = rev;
    rev = rev->rnext;
    FdState* fs = p->hold;
    p->hold = nullptr;
    complete(p, p->res);
    if (fs) {
      --fs->busy;
      // Edges that came while the helper ran were skipped: waiters left
      // (more acceptors) need the current level.
      fs->recheck = true;
      update(fs);
    }
  }
}

void EpollEngine::poll_events(int timeout_ms) {
  epoll_event evs[64];
  count_enter();
  long n = raw_syscall(SYS_epoll_pwait, epfd_, reinterpret_cast<long>(evs), 64, timeout_ms, 0, 8);
  for (long i = 0; i < n; ++i) {
    uint64_t tag = evs[i].data.u64;
    if (tag == kTagEvent) {
      uint64_t v;
      raw_syscall(SYS_read, event_fd_, reinterpret_cast<long>(&v), sizeof v);
    } else if (tag >= kTagHeap && tag < kTagHeap + 3) {
      heaps_[tag - kTagHeap].fired = true;
    } else if (FdState* fs = tagged(tag)) {
      on_ready(fs, evs[i].events);
    } else {
      stale_events_.store(stale_events_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }
  if (kick_pending_.load(std::memory_order_acquire)) take_kicks();  // pairs with kick_remote's release
  drain_dead();
  drain_pool();
  expire_timers();
}

void EpollEngine::kick_remote(int fd) {
  {
    SpinGuard g(kick_lock_);
    if (nkicks_ < static_cast<int>(sizeof kicks_ / sizeof kicks_[0])) kicks_[nkicks_++] = fd;
    else kick_all_ = true;
    kick_pending_.store(true, std::memory_order_release);
  }
  notify();
}

void EpollEngine::take_kicks() {
  int fds[16];
  int n;
  bool all;
  {
    SpinGuard g(kick_lock_);
    n = nkicks_;
    for (int i = 0; i < n; ++i) fds[i] = kicks_[i];
    all = kick_all_;
    nkicks_ = 0;
    kick_all_ = false;
    kick_pending_.store(false, std::memory_order_relaxed);
  }
  // Registrations are found through the table (every one made for an fd
  // number is there); a retry that finds nothing changed just waits on.
  if (all) {
    int hi = slot_chunks_hi_.load(std::memory_order_relaxed);
    for (int ci = 0; ci < hi; ++ci) {
      std::atomic<FdState*>* chunk = slots_[ci].load(std::memory_order_relaxed);
      if (!chunk) continue;
      for (int i = 0; i < kSlots; ++i) {
        if (FdState* fs = chunk[i].load(std::memory_order_relaxed)) on_ready(fs, 0, true);
      }
    }
    return;
  }
  for (int k = 0; k < n; ++k) {
    if (FdState* fs = table_get(fds[k])) on_ready(fs, 0, true);
  }
}

void EpollEngine::wait() {
  bool now = ready_head_ || done_.load(std::memory_order_relaxed);
  poll_events(now ? 0 : -1);
  just_polled_ = true;
}

int EpollEngine::reap() {
  drain_dead();
  drain_pool();
  // After wait() the set was just asked: the scheduler's wait-then-reap
  // costs one epoll_wait, not two.
  if (fd_waiters_ && !just_polled_) poll_events(0);
  else expire_timers();
  just_polled_ = false;
  unsigned n = ready_count_.load(std::memory_order_relaxed);
  int delivered = 0;
  for (unsigned i = 0; i < n && ready_head_; ++i) {
    Pending* p = ready_head_;
    ready_head_ = p->rnext;
    if (!ready_head_) ready_tail_ = nullptr;
    p->queued = false;
    ready_count_.store(ready_count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    if (p->urgent) --urgent_ready_;
    Completion* c = p->c;
    ++delivered;
    if (p->events) {  // a multishot poll's readiness: more follow
      uint32_t ev = p->events;
      p->events = 0;
      bool last = p->state == Pending::kReady;
      c->on_complete(c, static_cast<int>(ev), kMore);
      if (!last) continue;
      // Its end was due too (cancel or error): delivered next round.
      enqueue(p);
      continue;
    }
    int res = p->res;
    free_pending(p);
    c->on_complete(c, res, 0);
  }
  return delivered;
}

bool EpollEngine::urgent_ready() {
  if (!urgent_inflight_) return false;
  if (urgent_ready_ > 0 || done_.load(std::memory_order_relaxed) != nullptr) return true;
  // An accept waiting for readiness would otherwise learn of a connection
  // only at the round's end (one accept per round on a busy worker). Ask
  // epoll, at most every kUrgentPollNs.
  if (!urgent_waiting_) return false;
  int64_t now = now_ns(CLOCK_MONOTONIC);
  if (now - last_urgent_poll_ < kUrgentPollNs) return false;
  last_urgent_poll_ = now;
  poll_events(0);
  return urgent_ready_ > 0 || done_.load(std::memory_order_relaxed) != nullptr;
}

void EpollEngine::notify() {
  uint64_t one = 1;
  raw_syscall(SYS_write, event_fd_, reinterpret_cast<long>(&one), sizeof one);
}

void EpollEngine::occupancy(unsigned* sq, unsigned* cq) const {
  *sq = pool_queued_.load(std::memory_order_relaxed);
  *cq = ready_count_.load(std::memory_order_relaxed);
}

// ---- timers -------------------------------------------------------------------------------

void EpollEngine::arm_timer(TimerOp* t, clockid_t clock, const timespec& abs) {
  Pending* p = alloc_pending();
  p->timer = true;
  p->c = t;
  inflight_.store(inflight_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  int which = clock == CLOCK_REALTIME ? 1 : clock == CLOCK_BOOTTIME ? 2 : 0;
  // A deadline past what nanoseconds hold (a timeout of centuries) waits
  // at the last one; 0 would disarm the timerfd.
  int64_t d = abs.tv_sec >= INT64_MAX / 1000000000 ? INT64_MAX : static_cast<int64_t>(abs.tv_sec) * 1000000000 + abs.tv_nsec;
  p->deadline = d > 0 ? d : 1;
  p->state = Pending::kTimer;
  t->ts.tv_sec = static_cast<long long>(reinterpret_cast<intptr_t>(p));
  t->ts.tv_nsec = 0;
  heap_add(which, p);
}

void EpollEngine::cancel_timer(TimerOp* t) {
  auto* p = reinterpret_cast<Pending*>(static_cast<intptr_t>(t->ts.tv_sec));
  // A timer armed on another worker's engine (its fiber moved since) is not
  // ours to touch: it fires there, as a timeout_remove sent to the wrong
  // ring finds nothing and the timer's -ETIME comes from its own ring.
  // Records never move between engines, so p->engine is stable to read.
  if (!p || p->engine != this) return;
  if (p->c != t || !p->timer || p->state != Pending::kTimer) return;
  complete(p, -ECANCELED);
}

void EpollEngine::heap_add(int which, Pending* p) {
  Heap& h = heaps_[which];
  if (h.n == h.cap) {
    int cap = h.cap ? h.cap * 2 : 64;
    auto* v = static_cast<Pending**>(realloc(h.v, sizeof(Pending*) * static_cast<size_t>(cap)));
    if (!v) {
      LOG_ERROR("epoll engine: out of memory for a timer");
      abort();
    }
    h.v = v;
    h.cap = cap;
  }
  int i = h.n++;
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (h.v[parent]->deadline <= p->deadline) break;
    h.v[i] = h.v[parent];
    h.v[i]->heap_idx = i;
    i = parent;
  }
  h.v[i] = p;
  p->heap = which;
  p->heap_idx = i;
  if (i == 0) sync_timerfd(which);
}

void EpollEngine::heap_remove(Pending* p) {
  Heap& h = heaps_[p->heap];
  int i = p->heap_idx;
  Pending* last = h.v[--h.n];
  p->heap = p->heap_idx = -1;
  if (last == p) return;
  // Put `last` at i, then move it up or down. The timerfd is left as it
  // is: an early expiry finds nothing due and re-arms it.
  while (i > 0 && h.v[(i - 1) / 2]->deadline > last->deadline) {
    h.v[i] = h.v[(i - 1) / 2];
    h.v[i]->heap_idx = i;
    i = (i - 1) / 2;
  }
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    int64_t md = last->deadline;
    if (l < h.n && h.v[l]->deadline < md) {
      m = l;
      md = h.v[l]->deadline;
    }
    if (r < h.n && h.v[r]->deadline < md) m = r;
    if (m == i) break;
    h.v[i] = h.v[m];
    h.v[i]->heap_idx = i;
    i = m;
  }
  h.v[i] = last;
  last->heap_idx = i;
}

void EpollEngine::sync_timerfd(int which) {
  Heap& h = heaps_[which];
  int64_t want = h.n ? h.v[0]->deadline : -1;
  if (want == h.armed && !h.fired) return;
  if (h.tfd < 0) {
    if (want < 0) return;
    long t = -EBADF;
    // adopt() fails only if the program closed the new number in the
    // instant before it was moved (a sweep): make another.
    for (int tries = 0; tries < 3 && t == -EBADF; ++tries) {
      t = raw_syscall(SYS_timerfd_create, h.clock, TFD_CLOEXEC | TFD_NONBLOCK);
      if (t >= 0 && (t = own_fds::adopt(static_cast<int>(t))) < 0) t = -EBADF;
    }
    if (t < 0) {
      LOG_ERROR("epoll engine: timerfd_create failed (%ld)", -t);
      abort();
    }
    h.tfd = static_cast<int>(t);
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.u64 = kTagHeap + static_cast<uint64_t>(which);
    raw_syscall(SYS_epoll_ctl, epfd_, EPOLL_CTL_ADD, h.tfd, reinterpret_cast<long>(&e));
  }
  // Setting the time also clears the expirations a fired timerfd counted,
  // so no read is needed to quiet it.
  itimerspec its{};
  if (want > 0) {
    its.it_value.tv_sec = want / 1000000000;
    its.it_value.tv_nsec = want % 1000000000;
  }
  raw_syscall(SYS_timerfd_settime, h.tfd, TFD_TIMER_ABSTIME, reinterpret_cast<long>(&its), 0);
  h.armed = want;
  h.fired = false;
}

void EpollEngine::expire_timers() {
  for (int which = 0; which < 3; ++which) {
    Heap& h = heaps_[which];
    if (h.n) {
      int64_t now = now_ns(h.clock);
      while (h.n && h.v[0]->deadline <= now) {
        Pending* p = h.v[0];
        heap_remove(p);
        if (p->timer) complete(p, -ETIME);
        else stop(p);  // a linked timeout: the operation ends with -ECANCELED
      }
    }
    if (h.n || h.fired) sync_timerfd(which);
  }
}

}  // namespace unblock
