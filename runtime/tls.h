// Per-fiber thread-local storage: every fiber owns a real glibc TCB.
//
// Design (docs/DESIGN.md, "Thread-local storage"): a fiber gets its own
// static TLS block + struct pthread, built by ld.so's _dl_allocate_tls at
// the top of its stack region, and the worker points the FS base register at
// it on every switch (wrfsbase where the CPU offers FSGSBASE, otherwise
// arch_prctl). errno, __thread/thread_local, pthread_self(), pthread keys,
// C++ exception globals and uselocale() are then per fiber for free, and a
// fiber may resume on any worker because its TLS addresses never change.
//
// What depends on glibc's internals, and how it is checked at start-up:
//   - ld.so's _dl_get_tls_static_info/_dl_allocate_tls/_dl_deallocate_tls
//     and libc's __ctype_init/__call_tls_dtors (GLIBC_PRIVATE exports);
//   - struct pthread field offsets, read from libc's own libthread_db
//     descriptors (_thread_db_pthread_*), and the robust-list/specific fields
//     next to them, verified against the calling thread's live descriptor;
//   - malloc's per-thread cache pointer, located by a probe (see tls.cpp).
// If any check fails, init() returns false and the library passes every
// call through: the program then runs on ordinary threads.
//
// Must not: allocate on the switch path, or touch TLS between set_tp() and
// the context jump that follows it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace unblock::tls {

// Discovers and verifies the layout. Bootstrap only. False: unsupported.
bool init();

// Finds just the thread-identity field (cheap; used by the preload
// constructor so current_thread_id() is a plain load from the start).
bool init_identity();
bool g_off_tid_unknown();

// Why init() failed (static string), for the log.
const char* failure();

// True when FS is switched with wrfsbase (else arch_prctl).
bool fast_switch();

// Bytes at the top of a fiber's region needed for its TCB and static TLS.
size_t reserve();

// Builds a TCB whose top is at region_top (exclusive). Stores the highest
// usable stack address below the static TLS into *stack_top. tid is the
// fiber's unique identity (fake, above any kernel tid). Returns the thread
// pointer, or nullptr on allocation failure. Runs on a worker's own TCB or a
// plain thread; may allocate (the DTV).
void* create(char* region_top, char** stack_top, int tid);

// Runs glibc's thread-exit duties that must execute ON the dying fiber's TCB:
// C++ thread_local destructors. Fiber only, before its last switch.
void run_exit_destructors();

// Frees what create() allocated. Must not run on the TCB being freed.
void destroy(void* tp);

// The current thread pointer (FS base).
inline void* current_tp() {
  void* tp;
  asm volatile("mov %%fs:0, %0" : "=r"(tp));
  return tp;
}

// Points FS at tp. Async-signal-safe. Nothing may use TLS between this and
// the jump to the context owning tp.
void set_tp(void* tp);

// The thread identity stored in a TCB (glibc's pd->tid).
int tid_of(void* tp);
void set_tid(void* tp, int tid);

// Hands the carrier's malloc per-thread cache to a fiber TCB (before running
// it) and takes it back afterwards, so fibers never own a tcache that would
// leak at their exit. No-ops if the probe did not find the field.
void lend_malloc_cache(void* carrier_tp, void* fiber_tp);
// Prefetches the cache lines of the TCB at tp that every switch to it and
// every hooked call touch (the header with the stack guard, the tid, the
// malloc cache slot, the cancellation word). Any thread; never faults.
void prefetch_tcb(void* tp);
void return_malloc_cache(void* carrier_tp, void* fiber_tp);
// A fiber switching straight to another passes the carrier's cache on:
// to_tp gets it, from_tp's slot is cleared.
inline void pass_malloc_cache(void* to_tp, void* from_tp) { return_malloc_cache(to_tp, from_tp); }

// Registers the buffer glibc's pthread_exit unwinds to (pd->cleanup_jmp_buf).
// False if that field could not be verified at init.
bool set_cleanup_buffer(void* tp, void* buf);

// Address of pd->robust_head (the thread's robust-mutex list), or nullptr if
// that field was not verified at init.
void* robust_head_of(void* tp);

// Address of pd->cancelhandling (the SIGSETXID trampoline, runtime/cancel.cpp),
// or nullptr if glibc does not describe it. Before the runtime started, the
// first call looks the offset up (dlsym): not from a signal handler then.
// Inline: every blocking call reaches it two to four times (callgrind: the
// out-of-line call with its frame was ~40 instructions per echoed message).
extern long g_off_cancelhandling;  // -1 until known
int* cancelhandling_lookup(void* tp);
inline int* cancelhandling_of(void* tp) {
  long off = __atomic_load_n(&g_off_cancelhandling, __ATOMIC_RELAXED);
  if (__builtin_expect(off >= 0, 1)) return reinterpret_cast<int*>(static_cast<char*>(tp) + off);
  return cancelhandling_lookup(tp);
}

// Address of pd->cleanup_jmp_buf (the innermost buffer glibc's forced unwind
// ends at), or nullptr if that field could not be verified at init.
void** cleanup_buffer_slot(void* tp);

}  // namespace unblock::tls

namespace unblock {
// The unique identity of the calling fiber or OS thread (nonzero).
// Any context, async-signal-safe.
int current_thread_id();
}  // namespace unblock
