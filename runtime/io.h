// Blocking I/O as io_uring operations, for hooks.
//
// io::run() queues one operation on the calling fiber's worker ring (flushed
// with the rest of the scheduling round), parks the fiber, and returns the
// completion's result (>= 0, or -errno). Memory the operation points to
// (buffers, iovecs, msghdr, the linked timeout) lives on the caller's stack
// and stays valid: the fiber cannot return before the completion arrives,
// even when interrupted or timed out - cancellation waits for it.
//
// timeout_ns > 0 links an IORING_OP_LINK_TIMEOUT: the operation then ends
// with -ECANCELED if nothing happened in time (hooks map that to EAGAIN, as
// SO_RCVTIMEO/SO_SNDTIMEO do).
// interruptible: a signal handler for this fiber, or its cancellation
// request (runtime/cancel.h), cancels the operation (IORING_OP_ASYNC_CANCEL);
// if the kernel had already finished it, its result is returned; otherwise
// -EINTR. *interrupted tells the caller to run signals::run_pending (EINTR or
// restart) and then cancel::point(). A cancellation request due at entry
// unwinds before anything is queued.
//
// Fiber only; may suspend; does not allocate.
#pragma once

#include <cstdint>

#include "runtime/engine.h"

namespace unblock {
class Fiber;
namespace io {

int run(Fiber* f, const IoOp& op, int64_t timeout_ns, bool interruptible, bool* interrupted);

}  // namespace io
}  // namespace unblock
