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

void resolve_all() {
#define UNBLOCK_REAL(ret, name, params, args) \
  if (!name##_ptr.load(std::memory_order_relaxed)) name##_slow();
#include "shim/real_symbols.def"
#undef UNBLOCK_REAL
}

}  // namespace unblock::real
