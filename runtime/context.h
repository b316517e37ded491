// Execution contexts: the only file that includes Boost.Context.
//
// A thin veneer over boost::context's fcontext primitives (make_fcontext /
// jump_fcontext), which save and restore callee-saved registers, the stack
// pointer and the FPU control words as the ABI requires. Nothing here knows
// about fibers, TLS or scheduling.
#pragma once

#include <cstddef>

namespace unblock::ctx {

using Handle = void*;

struct Transfer {
  Handle from;  // the context that jumped here, to jump back to
  void* data;
};

using Entry = void (*)(Transfer);

// Prepares a context that will run entry(Transfer) on [stack_top - size, stack_top).
Handle make(void* stack_top, size_t size, Entry entry);

// Suspends the caller and resumes `to`; returns when someone jumps back.
Transfer jump(Handle to, void* data);

}  // namespace unblock::ctx
