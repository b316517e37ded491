// The real libc functions behind every hooked name.
//
// Each entry of real_symbols.def becomes unblock::real::NAME(...), which calls
// the next definition after libunblock.so (dlsym(RTLD_NEXT)), resolved on
// first use and cached. resolve_all() resolves the table eagerly during
// bootstrap so that later calls are a load and an indirect call.
// Any thread, any fiber; resolution itself may allocate (dlsym), so it must
// not first happen inside a signal handler: resolve_all() runs at bootstrap.
#pragma once

#include <dirent.h>
#include <netdb.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

namespace unblock::real {

void* resolve(const char* name);
void resolve_all();

#define UNBLOCK_REAL(ret, name, params, args)                                 \
  using name##_fn = ret(*) params;                                            \
  extern std::atomic<name##_fn> name##_ptr;                                   \
  name##_fn name##_slow();                                                    \
  inline ret name params {                                                    \
    name##_fn fn_ = name##_ptr.load(std::memory_order_relaxed);               \
    if (__builtin_expect(fn_ == nullptr, 0)) fn_ = name##_slow();             \
    return fn_ args;                                                          \
  }
#include "shim/real_symbols.def"
#undef UNBLOCK_REAL

// glibc's variadic syscall(), which the table cannot describe: the hook
// (hooks/futex.cpp) jumps to it for every number but SYS_futex, so it is
// kept where its assembly stub can load it.
extern "C" std::atomic<void*> unblock_real_syscall_ptr;
// Calls glibc's syscall() with six arguments; returns its result (-1 with
// errno set on failure). Any thread, any fiber.
long syscall6(long nr, long a, long b, long c, long d, long e, long f);
// Resolves glibc's syscall() (dlsym; may allocate). Bootstrap, or the first
// call of the hook.
void* resolve_syscall();

}  // namespace unblock::real
