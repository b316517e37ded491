#include "runtime/io.h"

#include <cerrno>

#include "runtime/cancel.h"
#include "runtime/fiber.h"
#include "runtime/inspect.h"
#include "runtime/scheduler.h"

namespace unblock::io {
namespace {

struct Waiter : Completion {
  Fiber* fiber = nullptr;
  int res = 0;
  std::atomic<bool> done{false};
  __kernel_timespec ts{};
};

void on_done(Completion* c, int res, uint32_t) {
  auto* w = static_cast<Waiter*>(c);
  w->res = res;
  // Pairs with the fiber's acquire load of done.
  w->done.store(true, std::memory_order_release);
  w->fiber->parker.unpark();
}

}  // namespace

int run(Fiber* f, const IoOp& op, int64_t timeout_ns, bool interruptible, bool* interrupted) {
  // Every blocking I/O call is a cancellation point.
  cancel::point();
  Waiter w;
  w.fiber = f;
  w.on_complete = on_done;
  // Set only while waiting: a handler that leaves with siglongjmp after
  // the wait (run_pending) must not leave it set.
  f->wake_urgent = op.urgent;
  Worker* worker = sched::enter(f);
  worker->engine.submit_op(op, &w, timeout_ns, &w.ts);
  bool cancelled = false;
  f->wait_op = static_cast<uint8_t>(static_cast<int>(kWaitIoBase) + static_cast<int>(op.kind));
  f->wait_arg = op.fd;
  while (!w.done.load(std::memory_order_acquire)) {
    ParkResult r = f->parker.park(Deadline::never(), WaitReason::kIo, interruptible && !cancelled);
    if (r == ParkResult::kInterrupted && !cancelled) {
      // We are still inside the runtime on the carrier driving `worker`, the
      // ring the operation was queued on.
      f->carrier->worker->engine.cancel(&w);
      cancelled = true;
      if (interrupted) *interrupted = true;
    }
  }
  f->wake_urgent = false;
  sched::leave(f);
  // ERESTARTSYS (512) is the kernel's own "restart this call", never meant
  // for user space; a blocking operation in io_uring's worker pool (a FIFO
  // open) interrupted by our cancellation may end with it.
  constexpr int kErestartsys = 512;
  if (w.res == -kErestartsys || (cancelled && w.res == -ECANCELED)) return -EINTR;
  return w.res;
}

}  // namespace unblock::io
