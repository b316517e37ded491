// Shared by the hooks that send a signal to one thread (hooks/signal.cpp,
// hooks/thread_ids.cpp).
#pragma once

#include <signal.h>

#include "runtime/fiber.h"

namespace unblock::hooks {

// pthread_kill's rules for a signal to fiber `target` (a thread of the
// emulation): 0 for signal 0, EINVAL for glibc's own signals or an invalid
// number, SIGKILL/SIGSTOP to the process, else delivered through the
// emulation (before returning if target is the caller). Returns 0 or a
// positive errno. Any thread; may be called under the registry lock for
// another fiber (it never blocks then).
int thread_signal(Fiber* target, const siginfo_t& si);

}  // namespace unblock::hooks
