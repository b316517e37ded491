// System calls without libc: no errno, no cancellation point, no interposed
// symbol (a hooked write() must never see the library's own writes).
// Returns the kernel's result: >= 0, or -errno.
#pragma once

#include <sys/syscall.h>

#include <cerrno>

namespace unblock {

inline long raw_syscall(long nr, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0, long f = 0) {
  long ret;
  register long r10 asm("r10") = d;
  register long r8 asm("r8") = e;
  register long r9 asm("r9") = f;
  asm volatile("syscall"
               : "=a"(ret)
               : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}

// The same with libc's convention (-1 and errno), for the library's own
// calls that read errno: never the exported syscall() hook, which would
// answer SYS_gettid and the thread-id calls for the calling fiber.
template <typename... Args>
inline long errno_syscall(long nr, Args... args) {
  long r = raw_syscall(nr, (long)(args)...);
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

}  // namespace unblock
