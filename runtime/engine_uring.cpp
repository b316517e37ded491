#include "runtime/engine_uring.h"

#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/alloc.h"
#include "runtime/own_fds.h"
#include "shim/log.h"
#include "shim/raw_syscall.h"

namespace unblock::engine {

namespace {
// user_data with this value marks a completion nobody waits for.
constexpr uint64_t kIgnore = 1;
// Set in an urgent completion's user_data (Completions are 8-byte aligned).
constexpr uint64_t kUrgentBit = 2;
// user_data bit of arm_background_poll's operation: not counted in inflight_.
constexpr uint64_t kBackgroundBit = 4;

uint64_t user_data(const Completion* c) { return reinterpret_cast<uint64_t>(c) | (c->urgent ? kUrgentBit : 0); }
}  // namespace

bool Uring::init(unsigned entries, int* why) {
  auto* ring = static_cast<io_uring*>(calloc(1, sizeof(io_uring)));
  if (!ring) {
    *why = ENOMEM;
    return false;
  }
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = entries * 4;
  int ret = io_uring_queue_init_params(entries, ring, &p);
  if (ret == -EINVAL) {
    // Older kernels: no cooperative task running / submit-all flags.
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;
    ret = io_uring_queue_init_params(entries, ring, &p);
  }
  if (ret < 0) {
    free(ring);
    *why = -ret;
    return false;
  }
  if (!(p.features & IORING_FEAT_NODROP)) {
    LOG_WARN("io_uring without IORING_FEAT_NODROP: completions could be dropped; not using it");
    io_uring_queue_exit(ring);
    free(ring);
    *why = ENOTSUP;
    return false;
  }
  // Blocking on purpose: io_uring then waits for the counter instead of
  // failing a read of a non-blocking fd with -EAGAIN.
  int efd = eventfd(0, EFD_CLOEXEC);
  if (efd < 0) {
    *why = errno;
    io_uring_queue_exit(ring);
    free(ring);
    return false;
  }
  // Out of the program's numbers (runtime/own_fds.h). liburing keeps the
  // ring's descriptor in two fields (no registered ring fd here).
  int ring_fd = own_fds::adopt(ring->ring_fd);
  efd = own_fds::adopt(efd);
  if (ring_fd < 0 || efd < 0) {  // closed by the program meanwhile: not ours to use
    *why = EBADF;
    if (efd >= 0) {
      own_fds::release(efd);
      raw_syscall(SYS_close, efd);
    }
    if (ring_fd >= 0) own_fds::release(ring_fd);
    ring->ring_fd = ring->enter_ring_fd = ring_fd;  // queue_exit closes it (or nothing: -1)
    io_uring_queue_exit(ring);
    free(ring);
    return false;
  }
  ring->ring_fd = ring->enter_ring_fd = ring_fd;
  ring_ = ring;
  event_fd_ = efd;
  event_completion_.on_complete = on_eventfd;
  event_completion_.engine = this;
  arm_eventfd();
  return true;
}

void Uring::shutdown() {
  if (!ring_) return;
  own_fds::release(ring_->ring_fd);
  io_uring_queue_exit(ring_);
  free(ring_);
  ring_ = nullptr;
  own_fds::release(event_fd_);
  raw_syscall(SYS_close, event_fd_);
  event_fd_ = -1;
}

io_uring_sqe* Uring::sqe() {
  for (;;) {
    io_uring_sqe* s = io_uring_get_sqe(ring_);
    if (s) {
      ++queued_;
      add_inflight(1);
      return s;
    }
    // Full: hand the queue to the kernel. -EBUSY means completions must be
    // reaped first (CQ backpressure); do so and try again.
    count_enter();
    int ret = io_uring_submit(ring_);
    if (ret >= 0) queued_ = 0;
    else if (ret == -EBUSY || ret == -EAGAIN) reap();
  }
}

void Uring::flush() {
  if (!queued_ && !(IO_URING_READ_ONCE(*ring_->sq.kflags) & IORING_SQ_TASKRUN)) return;
  count_enter();
  int ret = io_uring_submit(ring_);
  if (ret >= 0) queued_ = 0;
}

void Uring::wait() {
  count_enter();
  int ret = io_uring_submit_and_wait(ring_, 1);
  if (ret >= 0) queued_ = 0;
}

int Uring::reap() {
  io_uring_cqe* cqes[64];
  int total = 0;
  for (;;) {
    unsigned n = io_uring_peek_batch_cqe(ring_, cqes, 64);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) {
      uint64_t data = cqes[i]->user_data;
      int res = cqes[i]->res;
      // The engine-neutral flag (engine.h): more completions follow.
      uint32_t flags = (cqes[i]->flags & IORING_CQE_F_MORE) ? Completion::kMore : 0;
      // Advance first: the callback may free the completion's memory
      // (by waking its fiber) and may queue new SQEs.
      io_uring_cqe_seen(ring_, cqes[i]);
      if (data == kIgnore || data == 0) {
        add_inflight(-1);
        continue;
      }
      if (data & kBackgroundBit) {
        auto* c = reinterpret_cast<Completion*>(data & ~kBackgroundBit);
        c->on_complete(c, res, flags);
        continue;
      }
      if (!(flags & Completion::kMore)) {
        add_inflight(-1);
        if (data & kUrgentBit) --urgent_inflight_;
      }
      auto* c = reinterpret_cast<Completion*>(data & ~kUrgentBit);
      c->on_complete(c, res, flags);
    }
    total += static_cast<int>(n);
  }
  // Everything before the head is consumed: urgent_ready starts here.
  urgent_scanned_ = *ring_->cq.khead;
  return total;
}

bool Uring::urgent_ready() {
  if (!urgent_inflight_) return false;
  unsigned tail = io_uring_smp_load_acquire(ring_->cq.ktail);
  unsigned i = *ring_->cq.khead;
  if (static_cast<int>(urgent_scanned_ - i) > 0) i = urgent_scanned_;
  for (; i != tail; ++i) {
    if (ring_->cq.cqes[i & ring_->cq.ring_mask].user_data & kUrgentBit) return true;
  }
  urgent_scanned_ = tail;
  return false;
}

void Uring::notify() {
  uint64_t one = 1;
  // Raw syscall: never through a hooked write().
  errno_syscall(SYS_write, event_fd_, &one, sizeof one);
}

void Uring::arm_background_poll(int fd, Completion* c) {
  io_uring_sqe* s = sqe();
  add_inflight(-1);  // sqe() counted it
  io_uring_prep_poll_add(s, fd, POLLIN);
  io_uring_sqe_set_data64(s, reinterpret_cast<uint64_t>(c) | kBackgroundBit);
}

void Uring::occupancy(unsigned* sq, unsigned* cq) const {
  if (!ring_) {
    *sq = *cq = 0;
    return;
  }
  *sq = ring_->sq.sqe_tail - io_uring_smp_load_acquire(ring_->sq.khead);
  *cq = io_uring_smp_load_acquire(ring_->cq.ktail) - IO_URING_READ_ONCE(*ring_->cq.khead);
}

void Uring::arm_eventfd() {
  io_uring_sqe* s = sqe();
  io_uring_prep_read(s, event_fd_, &event_buf_, sizeof event_buf_, 0);
  io_uring_sqe_set_data(s, &event_completion_);
}

void Uring::on_eventfd(Completion* self, int res, uint32_t) {
  (void)res;
  static_cast<EventCompletion*>(self)->engine->arm_eventfd();
}

void Uring::arm_timer(TimerOp* t, clockid_t clock, const timespec& abs) {
  t->ts.tv_sec = abs.tv_sec;
  t->ts.tv_nsec = abs.tv_nsec;
  io_uring_sqe* s = sqe();
  unsigned flags = IORING_TIMEOUT_ABS;
  if (clock == CLOCK_REALTIME) flags |= IORING_TIMEOUT_REALTIME;
  else if (clock == CLOCK_BOOTTIME) flags |= IORING_TIMEOUT_BOOTTIME;
  io_uring_prep_timeout(s, &t->ts, 0, flags);
  io_uring_sqe_set_data(s, t);
}

void Uring::submit(Op* o) {
  const IoOp& op = o->io;
  Completion* c = o;
  io_uring_sqe* s = sqe();
  switch (op.kind) {
    case IoOp::kRead:
      io_uring_prep_read(s, op.fd, op.addr, static_cast<unsigned>(op.len), op.off);
      break;
    case IoOp::kWrite:
      io_uring_prep_write(s, op.fd, op.addr, static_cast<unsigned>(op.len), op.off);
      break;
    case IoOp::kReadv:
      io_uring_prep_readv(s, op.fd, static_cast<const iovec*>(op.addr), static_cast<unsigned>(op.len), op.off);
      break;
    case IoOp::kWritev:
      io_uring_prep_writev(s, op.fd, static_cast<const iovec*>(op.addr), static_cast<unsigned>(op.len), op.off);
      break;
    case IoOp::kRecv:
      io_uring_prep_recv(s, op.fd, op.addr, op.len, static_cast<int>(op.flags));
      break;
    case IoOp::kSend:
      io_uring_prep_send(s, op.fd, op.addr, op.len, static_cast<int>(op.flags));
      break;
    case IoOp::kRecvmsg:
      io_uring_prep_recvmsg(s, op.fd, static_cast<msghdr*>(op.addr), op.flags);
      break;
    case IoOp::kSendmsg:
      io_uring_prep_sendmsg(s, op.fd, static_cast<const msghdr*>(op.addr), op.flags);
      break;
    case IoOp::kAccept:
      io_uring_prep_accept(s, op.fd, static_cast<sockaddr*>(op.addr), reinterpret_cast<socklen_t*>(op.off),
                           static_cast<int>(op.flags));
      break;
    case IoOp::kConnect:
      io_uring_prep_connect(s, op.fd, static_cast<const sockaddr*>(op.addr), static_cast<socklen_t>(op.len));
      break;
    case IoOp::kPollAdd:
      if (op.flags & IoOp::kPollMultishot) io_uring_prep_poll_multishot(s, op.fd, static_cast<unsigned>(op.len));
      else io_uring_prep_poll_add(s, op.fd, static_cast<unsigned>(op.len));
      break;
    case IoOp::kOpenat:
      io_uring_prep_openat(s, op.fd, static_cast<const char*>(op.addr), static_cast<int>(op.flags),
                           static_cast<mode_t>(op.len));
      break;
    case IoOp::kFsync:
      io_uring_prep_fsync(s, op.fd, op.flags);
      break;
    case IoOp::kClose:
      io_uring_prep_close(s, op.fd);
      break;
    case IoOp::kSplice:
      io_uring_prep_splice(s, op.fd_in, op.off_in, op.fd, static_cast<int64_t>(op.off),
                           static_cast<unsigned>(op.len), op.flags);
      break;
  }
  c->urgent = op.urgent;
  io_uring_sqe_set_data64(s, user_data(c));
  if (c->urgent) ++urgent_inflight_;
  if (op.blocking_async) s->flags |= IOSQE_ASYNC;
  if (o->timeout_ns > 0) {
    // The timespec must stay valid until the SQE is consumed: in the Op.
    static_assert(sizeof(__kernel_timespec) <= sizeof o->engine_data);
    auto* ts = reinterpret_cast<__kernel_timespec*>(o->engine_data);
    int64_t timeout_ns = o->timeout_ns;
    s->flags |= IOSQE_IO_LINK;
    ts->tv_sec = timeout_ns / 1000000000;
    ts->tv_nsec = timeout_ns % 1000000000;
    io_uring_sqe* t = sqe();
    io_uring_prep_link_timeout(t, ts, 0);
    io_uring_sqe_set_data64(t, kIgnore);
  }
  if (op.urgent) flush();  // not at the round's end
}

void Uring::cancel(Op* c) {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, user_data(c), 0);
  io_uring_sqe_set_data64(s, kIgnore);
}

void Uring::cancel_timer(TimerOp* t) {
  io_uring_sqe* s = sqe();
  io_uring_prep_timeout_remove(s, reinterpret_cast<uint64_t>(t), 0);
  io_uring_sqe_set_data64(s, kIgnore);
}

}  // namespace unblock::engine
