// Kept for the fault hooks (hooks/fault.cpp) until the fault layer replaces
// them: the I/O protocol itself now lives in the runtime (runtime/api.h).
#pragma once

#include "hooks/hook.h"

namespace unblock::hooks {

// Raises SIGPIPE for the calling thread, as the kernel does on EPIPE.
inline void raise_sigpipe() { rt::raise_sigpipe(); }

}  // namespace unblock::hooks
