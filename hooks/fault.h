// The hooks' view of the fault layer (fault/, DESIGN.md section 11): which
// hooks are faultable and what they are called.
//
// A faultable hook is defined with UNBLOCK_FAULTABLE instead of UNBLOCK_HOOK
// and has a row in fault/wrappers.def. With the fault layer built
// (UNBLOCK_FAULTS=ON, the default) the declarations below give each such
// name an asm label: the hook is emitted as the hidden symbol
// unblock_hook_<name>, and the exported <name> is the fault layer's wrapper
// (armed test, injection, then a call of the hook). Because the label is on
// the declaration, every call the hooks' own code makes to such a name
// (recvfrom -> recv, pread -> pread64, __read_chk -> read) reaches the hook
// directly: the library never calls back into its exported wrappers, and an
// internal call never passes through a fault point. With the layer left out
// (UNBLOCK_FAULTS=OFF) nothing is renamed and the hooks are the exports.
//
// Include this after the system headers of the file (the labels must be the
// first thing that binds a call to these names in it).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "hooks/hook.h"

#if UNBLOCK_WITH_FAULTS

// The symbol a faultable hook is emitted as (for alias attributes).
#define UNBLOCK_HOOK_SYMBOL(name) "unblock_hook_" #name
#define UNBLOCK_FAULTABLE extern "C" __attribute__((visibility("hidden")))

#define UNBLOCK_FAULT_DECL_(ret, name, params) \
  extern "C" __attribute__((visibility("hidden"))) ret name params __asm__(UNBLOCK_HOOK_SYMBOL(name));
#define FAULT_UNPAREN_(...) __VA_ARGS__
#define FAULT_IO(ret, name, params, ...) UNBLOCK_FAULT_DECL_(ret, name, params)
#define FAULT_IOV(ret, name, params, ...) UNBLOCK_FAULT_DECL_(ret, name, params)
#define FAULT_MSG(ret, name, params, ...) UNBLOCK_FAULT_DECL_(ret, name, params)
#define FAULT_CALL(ret, name, params, ...) UNBLOCK_FAULT_DECL_(ret, name, params)
#define FAULT_OPEN(name, params, ...) UNBLOCK_FAULT_DECL_(int, name, (FAULT_UNPAREN_ params, ...))
#include "fault/wrappers.def"
#undef FAULT_IO
#undef FAULT_IOV
#undef FAULT_MSG
#undef FAULT_CALL
#undef FAULT_OPEN
#undef FAULT_UNPAREN_
#undef UNBLOCK_FAULT_DECL_

#else

#define UNBLOCK_HOOK_SYMBOL(name) #name
#define UNBLOCK_FAULTABLE UNBLOCK_HOOK

#endif

// An alias of a faultable hook: UNBLOCK_FAULTABLE int open64(...) UNBLOCK_ALIAS_OF(open);
#define UNBLOCK_ALIAS_OF(name) __attribute__((alias(UNBLOCK_HOOK_SYMBOL(name))))
