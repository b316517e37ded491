// Fiber stack regions: allocation, guard regions, pooling, overflow reports.
//
// A region is [guard | stack ... | TLS + TCB]: the fiber's TCB sits at the top
// (as glibc places a thread's), the stack grows down from below it, and an
// inaccessible guard region lies below the stack. Guards use
// MADV_GUARD_INSTALL where the kernel has it (6.13+: no extra VMA, so
// vm.max_map_count does not cap the fiber count) and mprotect(PROT_NONE)
// otherwise. Freed regions are kept in a pool by size and reused; the unused
// part of a returned stack is given back to the kernel.
//
// A SIGSEGV on a guard region is reported as a stack overflow of that thread
// (handler on a per-thread alternate stack), then the process dies with
// SIGSEGV as it would have.
#pragma once

#include <cstddef>

namespace unblock {

struct StackRegion {
  char* base = nullptr;   // lowest address (start of the guard)
  size_t size = 0;        // whole mapping
  size_t guard = 0;       // guard bytes at base
  char* top() const { return base + size; }
  char* stack_low() const { return base + guard; }
};

namespace stacks {

// stack_size: the usable stack the program asked for; the region adds the
// guard and room for the TCB. guard: the guard the program asked for
// (pthread_attr_setguardsize); the region's guard is the larger of it, rounded
// up to pages, and UNBLOCK_GUARD_SIZE. Any thread. May allocate / mmap.
bool allocate(size_t stack_size, StackRegion* out, size_t guard = 0);
void release(const StackRegion& r);

// Installs the overflow reporter (process-wide SIGSEGV/SIGBUS handler, kept
// in front of any handler the program installs). Bootstrap only.
void install_overflow_reporter();
// Gives the calling OS thread an alternate signal stack. Once per OS thread.
void setup_altstack();

}  // namespace stacks
}  // namespace unblock
