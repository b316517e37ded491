#include "shim/real.h"

#include <dlfcn.h>

#include "shim/log.h"

namespace unblock::real {

void* resolve(const char* name) {
  void* p = dlsym(RTLD_NEXT, name);
  if (!p) p = dlsym(RTLD_DEFAULT, name);
  if (!p) log::always("cannot resolve libc's %s; the program cannot continue", name);
  return p;
}

#define UNBLOCK_REAL(ret, name, params, args)                                 \
  std::atomic<name##_fn> name##_ptr{nullptr};                                 \
  name##_fn name##_slow() {                                                   \
    auto f = reinterpret_cast<name##_fn>(resolve(#name));                     \
    if (!f) __builtin_trap();                                                 \
    name##_ptr.store(f, std::memory_order_relaxed);                           \
    return f;                                                                 \
  }
#include "shim/real_symbols.def"
#undef UNBLOCK_REAL

std::atomic<void*> unblock_real_syscall_ptr{nullptr};

void* resolve_syscall() {
  void* p = unblock_real_syscall_ptr.load(std::memory_order_relaxed);
  if (p) return p;
  p = resolve("syscall");
  if (!p) __builtin_trap();
  unblock_real_syscall_ptr.store(p, std::memory_order_relaxed);
  return p;
}

long syscall6(long nr, long a, long b, long c, long d, long e, long f) {
  void* p = unblock_real_syscall_ptr.load(std::memory_order_relaxed);
  if (__builtin_expect(p == nullptr, 0)) p = resolve_syscall();
  return reinterpret_cast<long (*)(long, ...)>(p)(nr, a, b, c, d, e, f);
}

void resolve_all() {
#define UNBLOCK_REAL(ret, name, params, args) \
  if (!name##_ptr.load(std::memory_order_relaxed)) name##_slow();
#include "shim/real_symbols.def"
#undef UNBLOCK_REAL
  resolve_syscall();
}

}  // namespace unblock::real
