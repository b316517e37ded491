// Allocation for the runtime's own objects: malloc and placement new.
//
// Not `new (std::nothrow)`: libstdc++ implements it as the throwing new
// inside a try block, so a failed allocation throws std::bad_alloc and
// unwinds, and libgcc's unwinder then takes locks and allocates memory of
// its own. With memory short that hung a poll over 1,500 descriptors
// (tests/preload/io/poll_no_memory.c). These return nullptr instead.
// Any thread or fiber; not async-signal-safe (malloc).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace unblock {

template <typename T>
T* alloc_objects(size_t n = 1) {
  size_t align = alignof(T) < alignof(std::max_align_t) ? alignof(std::max_align_t) : alignof(T);
  size_t bytes = (sizeof(T) * n + align - 1) / align * align;
  if (n && bytes / n < sizeof(T)) return nullptr;  // overflow
  void* p = aligned_alloc(align, bytes ? bytes : align);
  if (!p) return nullptr;
  T* t = static_cast<T*>(p);
  for (size_t i = 0; i < n; ++i) new (&t[i]) T;
  return t;
}

}  // namespace unblock
